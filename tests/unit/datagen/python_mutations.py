"""Real mutation records for the datagen tests: two small PyPI packages (idna, toolz; both
ship their tests in the sdist, need no dependencies and pass) with hand-made one-line
mutations, written as `moa datagen mutate` writes them (data/python/mutations/{slug}/).

The diffs are computed from the fetched sources at test time (difflib, fixed -> buggy), so
they always match the real files."""

from __future__ import annotations

import atexit
import difflib
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from click.testing import Result as CliResult

from moa.api.records import MutationRecord, SourceRef
from moa.datagen.diffcheck import DiffChecker
from moa.languages.python.functions import functions
from moa.languages.python.mutation import bug_class
from moa.languages.sources import fetch


def local_package(root: Path, name: str, files: dict[str, str]) -> Path:
    """A pip-installable package `name` at `root` (a `path:` source) holding `files`."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n'
    )
    return root


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
        rec = MutationRecord(
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
            operator_class=bug_class(diff),
        )
        # checked like the mutate stage checks every record: against a parse of the real file
        scoped = DiffChecker(fetch(source), functions).problem(rec) is None
        out.append(rec.model_copy(update={"function_scoped": scoped}))
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


def stage_config(root: Path, stage: str, **data: object) -> Path:
    """A StageConfig with the tiny thresholds these tests use (never other code paths)."""
    from moa.api.stages import StageConfig
    from moa.api.training import AdapterTrainingSpec

    spec = AdapterTrainingSpec.model_validate(
        {
            "language": "python",
            "data": {
                "evalFraction": 0.5,
                "limits": {"jobs": 2, "timeouts": {"testSeconds": 120}},
                **data,
                "gates": {  # a caller's gates are laid over these
                    "minCaughtMutations": 5,
                    "minMultiToolFraction": 0.8,
                    "maxDuplicatePairs": 0,
                    "minAverageTurns": 3,
                    "minValidHarmonyFraction": 1.0,
                    "maxEvalOverlap": 0,
                    "minNamedTestFraction": 0.0,  # hand-made records: no test was run to name one
                    **data.get("gates", {}),
                },
            },
        }
    )
    cfg = StageConfig(stage=stage, root=str(root), name="python-test", spec=spec)  # type: ignore[arg-type]
    return cfg.write(root / f"{stage}.yaml")


class Interrupted(Exception):
    """Stands in for a crash (a killed pod) in the middle of the trajectories stage."""


class CrashingTeacher:
    """The real oracle for the first `after` episodes, then a crash."""

    name = "oracle"

    def __init__(self, after: int) -> None:
        from moa.datagen.oracle import OracleTeacher

        self.oracle, self.left = OracleTeacher(), after

    def demonstrate(self, *args: Any) -> Any:
        if self.left <= 0:
            raise Interrupted("simulated crash")
        self.left -= 1
        return self.oracle.demonstrate(*args)


GRPO_FRACTION = 0.3


@functools.cache
def oracle_dataset() -> tuple[Path, list[str], CliResult]:
    """Real oracle trajectories for MUTANTS (plus two corrupted lines), made the hard way: the
    stage crashes after two episodes and is resumed by the real command. Built once per test
    process and shared by the trajectories and gate tests. Returns (root, the crashed run's
    log, the resumed run's CLI result)."""
    from click.testing import CliRunner

    from moa.cli import cli
    from moa.datagen.trajectories import Options, generate

    root = Path(tempfile.mkdtemp(prefix="moa-oracle-"))
    atexit.register(shutil.rmtree, root, True)
    folder = write_mutations(root)
    with (folder / "idna-3.6" / "mutations.jsonl").open("a") as fh:
        fh.write("{not json\n")
        fh.write('{"language": "python", "status": "caught", "source": "pypi:idna@3.6"}\n')
    config = stage_config(root, "trajectories")
    core = root / "data" / "python" / "core_agent"
    crashed: list[str] = []
    opts = Options(
        language="python",
        mutations=folder,
        output=core,
        grpo_output=root / "data" / "python" / "grpo" / "tasks",
        teacher=CrashingTeacher(after=2),  # type: ignore[arg-type]
        teacher_name="oracle",
        eval_fraction=0.5,
        grpo_fraction=GRPO_FRACTION,
        jobs=1,
        test_timeout_s=120,
    )
    try:
        generate(opts, echo=crashed.append)
    except Interrupted:
        pass
    else:
        raise AssertionError("the simulated crash did not happen")
    resumed = CliRunner().invoke(
        cli, ["datagen", "trajectories", "--config", str(config), "--grpo-fraction", str(GRPO_FRACTION)]
    )
    return root, crashed, resumed
