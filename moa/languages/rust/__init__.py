"""The Rust language plugin."""

from moa.languages.base import Evaluator, LanguagePlugin


def _evaluator() -> Evaluator:
    from moa.languages.rust.evaluator import RustEvaluator

    return RustEvaluator()


plugin = LanguagePlugin(
    name="rust",
    extensions=(".rs",),
    markers={r"\bfn\s+\w+\s*[<(]": 2, r"\blet\s+mut\b": 2, r"\bimpl\b": 1, r"::": 1, r"\bpub\s+(fn|struct|enum)\b": 2, r"#\[derive": 2},
    evaluator=_evaluator,
)
