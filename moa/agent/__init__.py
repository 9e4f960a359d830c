"""The agent runtime that data generation, training and evaluation all drive.

Owns: the agent's world (`workspace`: a private copy of a repository state), its tools
(`executor`), repair tasks and their prompts (`tasks`), a model writing turns (`policy`, with
the one loader of base + adapter), episodes (`rollout`), the judge that executes what an
episode left behind (`judge`), ranking candidates into preferences (`ranking`), and the
JSONL reader every stage uses (`records`).

May import: `moa.api`, `moa.harmony`, `moa.languages`. Imported by `moa.datagen`,
`moa.trainer` and `moa.serving`, which never import each other. Heavy imports (torch,
transformers, peft) only inside `policy`'s functions.
"""
