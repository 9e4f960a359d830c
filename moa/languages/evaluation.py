"""Evaluate model-written patches against a repository state: copy, apply, judge, cache.

    outcome = evaluate_patch("rust", buggy_repo, patch_text)               # one candidate
    outcomes = evaluate_many("rust", [(buggy_repo, p) for p in samples])   # N in parallel

Why this shape:
- The repository state is never touched: each evaluation copies it into a *slot*, a work
  folder that persists per (repository state, worker) together with the toolchain's
  build cache (cargo target dir), so the second evaluation of a crate rebuilds only the
  crate itself, not its dependencies. Prepared dependencies are linked, not copied
  (each entry of `node_modules` is a symlink into the prepared state, read-only in the
  sandbox, so a patch cannot alter it; the folder itself is writable, for tool caches).
- Identical candidates are evaluated once: the outcome is cached under
  ~/.cache/moa/eval/outcomes keyed by hash(repository tree, patch, toolchain versions),
  and a per-key lock makes concurrent identical evaluations wait for the first. The
  reward is recomputed from the caller's table on every read, so one cache serves any
  reward table.
- A patch that cannot be parsed is an invalid tool call (-1.0). A patch that parses but
  does not apply (context lines that are not in the file, a path outside the repo) is
  `patch_failed`, which the roadmap table also scores as an invalid tool call (-1.0): in
  the agent loop apply_patch rejects it, exactly like malformed arguments, and the
  repository never changes. Scoring it above a compile error (-0.3) would make "edit
  lines that do not exist" a cheaper way to fail than writing code that does not build.
  The table keeps it a separate key so a spec can still price it differently.
- Lint is judged against the state before the patch: findings the repository already had
  do not count against a fix (computed once per state, only when tests pass, cached).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from moa.api.records import EvalOutcome
from moa.harmony.patch import PatchError, apply, parse_patch
from moa.languages import registry
from moa.languages.base import Evaluator, LintBaseline, Versioned
from moa.languages.evaluators import (
    RewardTable,
    eval_root,
    get_evaluator,
    invalid_call,
    rejudge_lint,
    rescore,
    reward_table,
)
from moa.languages.tools import file_lock

STATE_FILE = "state"  # in a work folder: the repository state its slots copy


def linked() -> frozenset[str]:
    """Folders of prepared dependencies (the plugins' `dependency_dirs`): linked into a work
    slot, never hashed file by file. Their identity enters the key through lock files."""
    return registry.dependency_dirs()


def skipped() -> frozenset[str]:
    """Build output (the plugins' `build_dirs`), version control and moa's source marker:
    left out of a slot's copy and of the hash."""
    return registry.build_dirs() | {".git", ".moa-source.json"}


DEFAULT_TIMEOUT_S = 600.0
# Part of every cache key: bump it when a change to the evaluators changes verdicts.
CACHE_VERSION = "1"


def evaluate_patch(
    language: str,
    repo_state: Path,
    patch_text: str,
    *,
    rewards: RewardTable = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cache_dir: Path | None = None,
) -> EvalOutcome:
    """Apply `patch_text` (apply_patch format) to a copy of `repo_state` and judge it.
    Outcomes are cached under `cache_dir` (default ~/.cache/moa/eval/outcomes)."""
    try:
        patch = parse_patch(patch_text)
    except PatchError as exc:
        return invalid_call(f"apply_patch: {exc}", rewards)
    repo_state = Path(repo_state).resolve()
    evaluator = get_evaluator(language)
    state = tree_hash(repo_state)
    toolchain = _toolchain(evaluator)
    key = _digest(CACHE_VERSION, language, state, patch_text, toolchain)
    entry = (cache_dir or eval_root() / "outcomes") / key[:2] / f"{key}.json"
    with file_lock(entry.with_suffix(".lock")):
        if entry.is_file():
            return rescore(EvalOutcome.model_validate_json(entry.read_text()), rewards).model_copy(
                update={"cached": True}
            )
        with _slot(language, repo_state) as slot:
            work = _fresh_copy(repo_state, slot / "repo")
            try:
                apply(patch, work)
            except PatchError as exc:
                outcome = EvalOutcome(
                    applied=False,
                    outcome="patch_failed",
                    reward=reward_table(rewards).reward("patch_failed"),
                    output=f"apply_patch did not apply: {exc}",
                )
            else:
                outcome = evaluator.evaluate(work, timeout_s)
                if outcome.outcome == "lint_warnings":
                    baseline = _baseline_findings(
                        language, evaluator, repo_state, state, toolchain, slot, timeout_s
                    )
                    outcome = rejudge_lint(outcome, baseline, rewards)
        if not outcome.timed_out:  # a verdict of the clock, maybe of a busy machine: re-run next time
            _store(entry, outcome)
    return rescore(outcome, rewards)


def evaluate_many(
    language: str,
    candidates: Sequence[tuple[Path, str]],
    *,
    rewards: RewardTable = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    workers: int | None = None,
    cache_dir: Path | None = None,
) -> list[EvalOutcome]:
    """Evaluate (repo_state, patch_text) pairs in parallel, in order; `workers` defaults to
    the number of cores. Identical candidates share one evaluation through the cache lock."""
    reward_table(rewards)  # refuse a bad table before any work starts
    prune_work()
    workers = max(1, min(workers or os.cpu_count() or 1, len(candidates) or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            pool.map(
                lambda c: evaluate_patch(
                    language, c[0], c[1], rewards=rewards, timeout_s=timeout_s, cache_dir=cache_dir
                ),
                candidates,
            )
        )


def tree_hash(repo: Path) -> str:
    """A content hash of a source tree: every file's path, mode bit x and bytes, skipping
    build output; dependency folders count by their lock file only."""
    h = hashlib.sha256()
    for path in sorted(_files(repo)):
        rel = path.relative_to(repo).as_posix()
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\0".encode())
            continue
        h.update(f"F {rel} {os.access(path, os.X_OK):d}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for rel in sorted(registry.dependency_locks()):
        if (repo / rel).is_file():
            h.update((repo / rel).read_bytes())
    return h.hexdigest()


def _files(repo: Path) -> Iterator[Path]:
    skip, link = skipped(), linked()
    for root, dirs, files in os.walk(repo):
        dirs[:] = [d for d in dirs if d not in skip and not (Path(root) == repo and d in link)]
        for name in files:
            if name not in skip:
                yield Path(root) / name


def _fresh_copy(src: Path, dst: Path) -> Path:
    """`dst` becomes a copy of `src`'s sources, with dependency folders linked and its
    own incremental build output (the plugins' `incremental_dirs`) kept warm. Files get fresh modification times (no
    copy2): mtime-based build tools (cargo) must see every file as possibly changed, or a
    previous evaluation's build of a different patch would pass for this one's."""
    skip, link, kept = skipped(), linked(), registry.incremental_dirs()
    if dst.is_dir():
        for child in dst.iterdir():
            if child.name in kept:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    shutil.copytree(
        src,
        dst,
        symlinks=True,
        copy_function=shutil.copy,
        dirs_exist_ok=True,
        ignore=lambda d, names: [n for n in names if n in skip or (Path(d) == src and n in link)],
    )
    for name in sorted(link):
        if (src / name).is_dir():
            (dst / name).mkdir()
            for entry in (src / name).iterdir():
                if entry.name.startswith(".") and entry.name != ".bin" and entry.is_dir():
                    continue  # tool caches (.vite, .cache): each workspace starts its own
                (dst / name / entry.name).symlink_to(entry)
    return dst


def _baseline_findings(
    language: str,
    evaluator: Evaluator,
    repo_state: Path,
    state: str,
    toolchain: str,
    slot: Path,
    timeout_s: float,
) -> list[str]:
    """Lint findings of the unpatched state, computed once per (state, toolchain)."""
    key = _digest(CACHE_VERSION, "baseline-lint", language, state, toolchain)
    entry = eval_root() / "baselines" / f"{key}.json"
    if entry.is_file():
        return list(json.loads(entry.read_text()))
    findings: list[str] = (
        evaluator.lint_state(_fresh_copy(repo_state, slot / "base"), timeout_s)
        if isinstance(evaluator, LintBaseline)
        else []
    )
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(findings))
    tmp.replace(entry)
    return findings


def _toolchain(evaluator: Evaluator) -> str:
    return evaluator.toolchain() if isinstance(evaluator, Versioned) else type(evaluator).__qualname__


def _digest(*parts: str) -> str:
    # surrogatepass: a model-written patch may hold lone surrogates (it then fails to apply).
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _store(entry: Path, outcome: EvalOutcome) -> None:
    """Write atomically: a crash never leaves a half entry that later reads as a verdict."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(outcome.model_dump_json())
    tmp.replace(entry)


@contextlib.contextmanager
def _slot(language: str, repo_state: Path) -> Iterator[Path]:
    """The first free work folder for this repository state; slots (and the build caches
    inside them) persist, one per concurrent evaluation, across processes."""
    base = eval_root() / "work" / f"{language}-{repo_state.name}-{_digest(str(repo_state))[:12]}"
    base.mkdir(parents=True, exist_ok=True)
    (base / STATE_FILE).write_text(str(repo_state))
    n = 0
    while True:
        with file_lock(base / f"slot-{n}.lock", blocking=False) as mine:
            if mine:
                yield base / f"slot-{n}"
                return
        n += 1


def prune_work() -> list[Path]:
    """Remove the work slots of repository states that no longer exist (temporary
    checkouts), so the build caches of finished tasks do not pile up. Returns them."""
    removed = []
    for base in sorted((eval_root() / "work").glob("*/")):
        state = base / STATE_FILE
        if state.is_file() and not Path(state.read_text()).exists():
            shutil.rmtree(base, ignore_errors=True)
            removed.append(base)
    return removed
