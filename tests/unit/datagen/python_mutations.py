"""Real mutation records for the datagen tests: two small PyPI packages (idna, toolz; both
ship their tests in the sdist, need no dependencies and pass) with hand-made one-line
mutations, written as `moa datagen mutate` writes them (data/python/mutations/{slug}/).

The diffs are computed from the fetched sources at test time (difflib, fixed -> buggy), so
they always match the real files."""

from __future__ import annotations

import difflib
from pathlib import Path

from moa.api.records import MutationRecord, SourceRef
from moa.datagen.sources import fetch

# (source, file, function, fixed line, buggy line, operator)
MUTANTS = (
    (
        "pypi:idna@3.6",
        "idna/core.py",
        "valid_label_length",
        "    if len(label) > 63:",
        "    if len(label) > 64:",
        "number",
    ),
    (
        "pypi:idna@3.6",
        "idna/core.py",
        "check_hyphen_ok",
        "    if label[0] == '-' or label[-1] == '-':",
        "    if label[0] == '-' and label[-1] == '-':",
        "boolean",
    ),
    (
        "pypi:toolz@0.12.1",
        "toolz/itertoolz.py",
        "frequencies",
        "        d[item] += 1",
        "        d[item] += 2",
        "number",
    ),
    (
        "pypi:toolz@0.12.1",
        "toolz/itertoolz.py",
        "nth",
        "        return seq[n]",
        "        return seq[n + 1]",
        "arithmetic",
    ),
    (
        "pypi:toolz@0.12.1",
        "toolz/itertoolz.py",
        "last",
        "    return tail(1, seq)[0]",
        "    return tail(2, seq)[0]",
        "number",
    ),
)


def mutation_diff(tree: Path, file: str, fixed: str, buggy: str) -> tuple[str, int]:
    old = (tree / file).read_text().splitlines(keepends=True)
    line = next(i for i, s in enumerate(old) if s.rstrip("\n") == fixed)
    new = [*old[:line], buggy + "\n", *old[line + 1 :]]
    return "".join(difflib.unified_diff(old, new, f"a/{file}", f"b/{file}")), line + 1


def records(mutants: tuple[tuple[str, str, str, str, str, str], ...] = MUTANTS) -> list[MutationRecord]:
    out = []
    for source, file, function, fixed, buggy, operator in mutants:
        diff, line = mutation_diff(fetch(source), file, fixed, buggy)
        out.append(
            MutationRecord(
                language="python",
                source=source,
                version=SourceRef.parse(source).version,
                file=file,
                function=function,
                line=line,
                operator=operator,
                diff=diff,
                status="caught",
                tool="hand-made",
            )
        )
    return out


def write_mutations(root: Path, recs: list[MutationRecord] | None = None) -> Path:
    """data/python/mutations/{slug}/mutations.jsonl under `root`; returns the mutations folder."""
    folder = root / "data" / "python" / "mutations"
    by_source: dict[str, list[str]] = {}
    for r in recs if recs is not None else records():
        by_source.setdefault(SourceRef.parse(r.source).slug, []).append(r.model_dump_json())
    for slug, lines in by_source.items():
        (folder / slug).mkdir(parents=True, exist_ok=True)
        (folder / slug / "mutations.jsonl").write_text("\n".join(lines) + "\n")
    return folder
