"""Pretraining text for the tiny model (`moa dev tiny-model --pretrain`): real code and Harmony
agent episodes over it.

A random model cannot learn a tool-call format from the few dozen trajectories of a demo: it
has to learn what code and a Harmony conversation look like first, as a real base model has.
So the tiny model is first trained on:

- the source files of the spec's sources (fetched and verified like `moa datagen mutate` does;
  the files the language's plugin owns, cut into windows), and
- agent episodes over those same files in the exact Harmony format the agent speaks (system and
  developer prompt with the agent tools, a user's report, then run_tests / read_file / search /
  apply_patch calls with real file contents as observations, and a final answer).

The episodes are shape, not skill: the patches change a random line of real code, they do not
fix a bug (there is none), and the test outputs are made up. What the model learns from them is
the format; SFT on the real trajectories then teaches it what to do.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moa import harmony as h
from moa.agent.tasks import INSTRUCTIONS
from moa.api.records import SourceRef
from moa.languages.registry import get as get_plugin
from moa.languages.sources import fetch

WINDOW_CHARS = 1500  # a code window: about what one read_file of a function shows
MAX_FILE_CHARS = 60_000  # generated or vendored giants teach nothing about code


@dataclass(frozen=True)
class CodeFile:
    package: str
    path: str  # relative to the source root
    text: str


def code_files(sources: Sequence[SourceRef | str], extensions: Sequence[str]) -> list[CodeFile]:
    """The files with `extensions` of each source (fetched on first use), in a stable order."""
    out = []
    for source in sources:
        ref = SourceRef.parse(source) if isinstance(source, str) else source
        root = fetch(ref)
        for file in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in extensions):
            text = file.read_text(encoding="utf-8", errors="replace")
            if 0 < len(text) <= MAX_FILE_CHARS:
                out.append(CodeFile(ref.name, str(file.relative_to(root)), text))
    return out


def windows(text: str, size: int = WINDOW_CHARS) -> list[str]:
    """Consecutive windows of whole lines, each at most about `size` characters."""
    out, current = [], ""
    for line in text.splitlines(keepends=True):
        if current and len(current) + len(line) > size:
            out.append(current)
            current = ""
        current += line
    return [*out, current] if current else out


def numbered(lines: list[str], start: int) -> str:
    return "".join(f"{start + i:>4}| {line}" for i, line in enumerate(lines))


def episode(file: CodeFile, language: str, rng: random.Random) -> str:
    """One agent episode over `file`, rendered as Harmony training text."""
    lines = file.text.splitlines(keepends=True)
    at = rng.randrange(len(lines))
    start, end = max(1, at + 1 - 12), min(len(lines), at + 1 + 12)
    old = lines[at].rstrip("\n")
    new = old.replace(" + ", " - ") if " + " in old else old + "  # checked"
    test = f"test_{rng.choice(['basic', 'edge_cases', 'roundtrip', 'errors', 'defaults'])}"
    failing = f"FAILED tests/test_{Path(file.path).stem}.py::{test}\n1 failed, {rng.randint(3, 90)} passed"
    patch = f"*** Begin Patch\n*** Update File: {file.path}\n@@\n-{old}\n+{new}\n*** End Patch"
    calls: list[h.Message] = [
        h.analysis("Run the tests to see what fails."),
        h.tool_call("run_tests", {}),
        h.tool_result("run_tests", failing),
    ]
    if rng.random() < 0.5:
        word = next((w for w in old.split() if w.isidentifier()), "def")
        calls += [
            h.tool_call("search", {"pattern": word}),
            h.tool_result("search", f"{file.path}:{at + 1}: {old.strip()}"),
        ]
    calls += [
        h.tool_call("read_file", {"path": file.path, "start_line": start, "end_line": end}),
        h.tool_result("read_file", numbered(lines[start - 1 : end], start)),
        h.analysis(f"Line {at + 1} of {file.path} looks wrong; change it."),
        h.tool_call("apply_patch", {"patch": patch}),
        h.tool_result("apply_patch", f"patch applied: 1 file changed ({file.path})"),
        h.tool_call("run_tests", {}),
        h.tool_result("run_tests", f"all tests passed ({rng.randint(4, 91)} passed)"),
        h.final(f"Fixed line {at + 1} of {file.path}; the tests pass now."),
    ]
    messages = [
        h.system_message(),
        h.developer_message(INSTRUCTIONS.format(language=language), h.AGENT_TOOLS),
        h.user(f"The test suite of {file.package} is failing ({test}). Please find the bug and fix it."),
        *calls,
    ]
    return h.render(h.Conversation(messages), "training")


def corpus(language: str, sources: Sequence[SourceRef | str], episodes: int, seed: int = 0) -> list[str]:
    """Code windows of the sources' files plus `episodes` agent episodes over them, shuffled."""
    plugin = get_plugin(language)
    files = code_files(sources, plugin.extensions)
    texts = [w for f in files for w in windows(f.text)] + list(plugin.code_samples)
    rng = random.Random(seed)
    if files:
        texts += [episode(rng.choice(files), language, rng) for _ in range(episodes)]
    rng.shuffle(texts)
    return texts


def write(texts: Sequence[str], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path
