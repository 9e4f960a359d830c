"""moa.languages: everything moa knows about a programming language, and nothing outside it.

The plugin protocol (`base`: `LanguagePlugin` with its optional hooks and small optional
interfaces), discovery through entry points (`registry`), the sandbox untrusted code runs in
(`sandbox`), the evaluators' shared ladder (`evaluators`, `evaluation`), the source cache
(`sources`), tool installs (`tools`), and one plugin per language (`rust`, `python`,
`typescript`, `go`). Code elsewhere asks a plugin; it never names a language.

May import: `moa.api`, `moa.harmony`.
"""
