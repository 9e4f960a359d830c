"""Teachers write agent episodes: the messages between the prompt and the final answer.

Every teacher acts through the same `Executor`, so every observation in the data is real:
the oracle scripts its *actions* from the known fix but never its observations; the API
teachers (`openai`: any OpenAI-compatible `/chat/completions` with tool calling;
`anthropic`: the Messages API with tool use) let a model choose the actions. An episode is
worth keeping only if the tests end green, which the caller checks on `Episode.passed`.

The oracle varies what a good engineer varies -- whether to list or search first, how much
of the file to read, whether to open the failing test, and on some fraction a first fix
that is wrong (a real edit, a real red test run) before the right one -- and writes its
analysis from the actual failing test names and output, so no two episodes share a template.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

import httpx

from moa import harmony as h
from moa.api.records import MutationRecord, SourceRef
from moa.datagen.executor import Executor
from moa.datagen.workspace import FileDiff, apply_hunks, parse_unified_diff
from moa.harmony.patch import make_patch

INSTRUCTIONS = (
    "You are a coding agent working in a {language} repository. Find and fix the bug the user "
    "reports. Use the tools to run the tests, read and search the code, and edit files with "
    "apply_patch. Make the smallest correct change, keep the project's style, and run the tests "
    "again before you answer."
)

_ASKS = (
    "The test suite of {package} is failing{tests}. Please find the bug and fix it.",
    "Some tests in this repository ({package}) started failing{tests}. Can you track down the cause and fix it?",
    "CI is red for {package}{tests}. Fix the underlying bug, not the tests.",
    "I think a recent change broke {package}: tests fail{tests}. Please investigate and repair it.",
    "Running the tests of {package} gives failures{tests}. Find what is wrong in the code and fix it.",
)


@dataclass(frozen=True)
class Task:
    """One repair task: a caught mutation, identified by `id`."""

    id: str
    record: MutationRecord

    @property
    def package(self) -> str:
        """The name a user would call the project by (never a host path)."""
        ref = SourceRef.parse(self.record.source)
        if ref.registry in ("path", "git"):
            return PurePosixPath(ref.name.rstrip("/")).name.removesuffix(".git")
        return ref.name


def prompt_messages(task: Task, variant: int | None = None) -> list[h.Message]:
    """System, developer and user messages of a task. `variant` picks the user's wording
    (default: fixed by the task id, so GRPO and eval prompts are reproducible)."""
    names = [t.name for t in task.record.failing_tests][:3]
    tests = f" ({', '.join(names)})" if names else ""
    if variant is None:
        variant = int(task.id[:8], 16) if re.fullmatch(r"[0-9a-f]{8,}", task.id) else len(task.id)
    ask = _ASKS[variant % len(_ASKS)].format(package=task.package, tests=tests)
    return [
        h.system_message(),
        h.developer_message(INSTRUCTIONS.format(language=task.record.language), h.AGENT_TOOLS),
        h.user(ask),
    ]


@dataclass
class Episode:
    messages: list[h.Message] = field(default_factory=list)  # after the prompt
    passed: bool = False
    reason: str = ""  # why it is not usable, when it is not

    @property
    def n_tool_calls(self) -> int:
        return sum(m.is_tool_call for m in self.messages)

    @property
    def turns(self) -> int:
        """Sampling turns: each ends on a tool call or on the final answer."""
        return self.n_tool_calls + sum(m.channel == "final" for m in self.messages if m.role == "assistant")


class Teacher(Protocol):
    name: str

    def episode(
        self, task: Task, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Episode: ...


def _act(episode: Episode, executor: Executor, name: str, args: dict[str, Any]) -> str:
    episode.messages.append(h.tool_call(name, args))
    obs = executor.call(name, json.dumps(args))
    episode.messages.append(h.tool_result(name, obs.text))
    return obs.text


# ------------------------------------------------------------------------------ the oracle


@dataclass(frozen=True)
class _Fix:
    """What the known fix is, in the agent's terms (buggy workspace -> fixed source)."""

    path: str
    buggy_line: int  # 1-based line of the first changed line in the buggy file
    buggy: tuple[str, ...]  # lines as they are now
    fixed: tuple[str, ...]  # lines as they should be


def _fix_of(executor: Executor, record: MutationRecord) -> tuple[_Fix, str]:
    """The fix, located in the workspace's buggy file, and that file's fixed contents."""
    fd = parse_unified_diff(record.diff)[0]
    reverse = FileDiff(
        fd.new_path, fd.old_path, tuple((start, tuple(_flip(s) for s in body)) for start, body in fd.hunks)
    )
    buggy_text = executor.workspace.path(fd.path).read_text()
    clean = apply_hunks(buggy_text, reverse)
    a, b = buggy_text.splitlines(), clean.splitlines()
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    # fixed -> buggy: '-' lines are the fix, '+' lines the bug.
    body = [s for _, hunk in fd.hunks[:1] for s in hunk]
    fix = _Fix(
        fd.path,
        first + 1,
        tuple(s[1:] for s in body if s[0] == "+"),
        tuple(s[1:] for s in body if s[0] == "-"),
    )
    return fix, clean


def _flip(line: str) -> str:
    return {"+": "-", "-": "+"}.get(line[0], " ") + line[1:]


_WRONG_EDITS = (
    (r"<=", "<"),
    (r">=", ">"),
    (r"(?<![<>=!])<(?![<=])", "<="),
    (r"(?<![<>=!-])>(?![>=])", ">="),
    (r"==", "!="),
    (r"!=", "=="),
    (r"\+ 1\b", "- 1"),
    (r"- 1\b", "+ 1"),
    (r"\b0\b", "1"),
    (r"\b1\b", "2"),
    (r"\bTrue\b", "False"),
    (r"\bFalse\b", "True"),
    (r"\btrue\b", "false"),
    (r"\bfalse\b", "true"),
    (r"\band\b", "or"),
    (r"\bor\b", "and"),
    (r"&&", "||"),
    (r"\|\|", "&&"),
    (r"\bnot ", ""),
)


def _wrong_variant(line: str, fixed: Sequence[str], rng: random.Random) -> str | None:
    """A plausible but different edit of the buggy line (a real engineer's first guess)."""
    options = []
    for pattern, repl in _WRONG_EDITS:
        for m in re.finditer(pattern, line):
            candidate = line[: m.start()] + repl + line[m.end() :]
            if candidate != line and candidate not in fixed:
                options.append(candidate)
    return rng.choice(options) if options else None


_CLUE_RE = r"^(E\s|assert|AssertionError|Error|panicked|thread '.*' panicked|expected|got|Expected|Received|\w+Error:)"


def _interesting_output(output: str, path: str, limit: int = 3) -> list[str]:
    """Lines of test output that say what went wrong: assertion and error lines, and the
    lines pointing into the mutated file."""
    name = PurePosixPath(path).name
    picked = []
    for line in output.splitlines():
        s = line.strip()
        if not s or len(s) > 200:
            continue
        telling = re.match(_CLUE_RE, s) or (name in s and re.search(r":\d+", s))
        if telling and s not in picked:
            picked.append(s)
        if len(picked) == limit:
            break
    return picked


def _say(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


class OracleTeacher:
    """Scripted actions from the known fix; every observation comes from the executor."""

    name = "oracle"

    def __init__(self, wrong_first_fraction: float = 0.2) -> None:
        self.wrong_first_fraction = wrong_first_fraction

    def episode(
        self, task: Task, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Episode:
        ep = Episode()
        fix, clean = _fix_of(executor, task.record)
        path, fn = fix.path, task.record.function
        say = ep.messages.append

        # 1. Reproduce.
        say(
            h.analysis(
                _say(
                    rng,
                    "Let me start by running the test suite to see what fails.",
                    "First I want to reproduce the failure, so I'll run the tests.",
                    "I'll run the tests to see the actual failure before reading any code.",
                    "Reproduce first: run the tests and look at the failing output.",
                )
            )
        )
        _act(ep, executor, "run_tests", {})
        first = executor.last_tests
        if first is None or first.passed:
            ep.reason = "the tests already pass on the buggy state (nothing to fix)"
            return ep
        failing = list(first.failing)
        clues = _interesting_output(first.output, path)
        notes = []
        if failing:
            shown = ", ".join(failing[:3]) + (f" and {len(failing) - 3} more" if len(failing) > 3 else "")
            notes.append(
                _say(
                    rng,
                    f"{len(failing)} test(s) fail: {shown}.",
                    f"The failing tests are {shown}.",
                    f"Failures: {shown}.",
                )
            )
        else:
            notes.append("The run fails, but the runner does not name the failing tests.")
        if clues:
            notes.append(
                _say(
                    rng, "The output says:", "Relevant lines from the output:", "The key part of the output:"
                )
                + " "
                + " | ".join(clues)
            )
        # 2. Locate.
        if fn and rng.random() < 0.6:
            notes.append(
                _say(
                    rng,
                    f"Let me find where `{fn}` is defined.",
                    f"I'll search for `{fn}` to locate the code under test.",
                    f"Searching for the definition of `{fn}`.",
                )
            )
            say(h.analysis(" ".join(notes)))
            _act(
                ep,
                executor,
                "search",
                {"pattern": _definition_pattern(fn, task.record.language), "path": "."},
            )
        elif rng.random() < 0.5:
            folder = str(PurePosixPath(path).parent)
            notes.append(
                _say(
                    rng,
                    "Let me look at the layout of the project.",
                    "I'll list the files to orient myself.",
                    f"Let me see what is in {folder or 'the root'}.",
                )
            )
            say(h.analysis(" ".join(notes)))
            _act(ep, executor, "list_files", {"path": folder or ".", "max_depth": rng.choice([1, 2, 3])})
        else:
            notes.append(
                _say(
                    rng,
                    f"The traceback points at {path}.",
                    f"This looks like it comes from {path}.",
                    f"{path} is the module these tests exercise.",
                )
            )
            say(h.analysis(" ".join(notes)))
        test_file = _test_file(failing)
        if test_file and rng.random() < 0.4 and executor.workspace.root.joinpath(test_file).is_file():
            say(
                h.analysis(
                    _say(
                        rng,
                        f"Let me read the failing test in {test_file} to see what it expects.",
                        f"First, what does {test_file} check?",
                    )
                )
            )
            _act(ep, executor, "read_file", {"path": test_file})
        # 3. Read the code.
        before, after = rng.randint(5, 30), rng.randint(10, 40)
        start = max(1, fix.buggy_line - before)
        say(
            h.analysis(
                _say(
                    rng,
                    f"Reading {path} around line {fix.buggy_line}.",
                    f"Let me open {path}.",
                    f"I'll read the relevant part of {path}.",
                )
            )
        )
        _act(
            ep, executor, "read_file", {"path": path, "start_line": start, "end_line": fix.buggy_line + after}
        )
        buggy = " / ".join(s.strip() for s in fix.buggy) or "(a removed line)"
        fixed = " / ".join(s.strip() for s in fix.fixed) or "(nothing)"
        where = f" in `{fn}`" if fn else ""
        # 4. Optionally a wrong first attempt, then 5. the fix.
        buggy_path = executor.workspace.path(path)
        lead = ""
        if fix.buggy and rng.random() < self.wrong_first_fraction:
            lead = self._wrong_attempt(ep, executor, fix, where, failing, rng)
        say(
            h.analysis(
                lead
                + _say(
                    rng,
                    f"The bug is{where} at line {fix.buggy_line}: `{buggy}` should be `{fixed}`.",
                    f"Found it: {path} has `{buggy}`{where}, which is wrong; the correct code is `{fixed}`.",
                    f"`{buggy}`{where} is the mistake. Replacing it with `{fixed}`, which is what the tests expect.",
                )
            )
        )
        _act(ep, executor, "apply_patch", {"patch": make_patch({path: (buggy_path.read_text(), clean)})})
        # 6. Verify.
        say(
            h.analysis(
                _say(
                    rng,
                    "Now run the tests again.",
                    "Re-running the tests to confirm.",
                    "Let me verify with the full suite.",
                )
            )
        )
        _act(ep, executor, "run_tests", {})
        ep.passed = executor.last_tests is not None and executor.last_tests.passed
        if not ep.passed:
            ep.reason = "the tests are still red after the known fix"
            return ep
        names = ", ".join(failing[:3]) if failing else "the failing tests"
        say(
            h.final(
                _say(
                    rng,
                    f"Fixed the bug{where} in `{path}`: `{buggy}` is now `{fixed}`. {names} pass again and the whole suite is green.",
                    f"The problem was in `{path}`{where}: it had `{buggy}` instead of `{fixed}`. I changed that line; all tests pass now.",
                    f"`{path}`{where} used `{buggy}`; the correct code is `{fixed}`. After the change the test suite passes ({names} included).",
                )
            )
        )
        return ep

    def _wrong_attempt(
        self, ep: Episode, executor: Executor, fix: _Fix, where: str, failing: list[str], rng: random.Random
    ) -> str:
        """A plausible first guess, applied and tested for real; returns the words that lead
        into the right fix ("" when no guess fits the line)."""
        path = executor.workspace.path(fix.path)
        current = path.read_text()
        lines = current.split("\n")
        idx = fix.buggy_line - 1
        wrong = _wrong_variant(fix.buggy[0], fix.fixed, rng)
        if wrong is None or not 0 <= idx < len(lines) or lines[idx] != fix.buggy[0]:
            return ""
        ep.messages.append(
            h.analysis(
                _say(
                    rng,
                    f"Line {fix.buggy_line}{where} reads `{fix.buggy[0].strip()}`. My first guess is that it should be `{wrong.strip()}`.",
                    f"I suspect `{fix.buggy[0].strip()}`{where}; trying `{wrong.strip()}` instead.",
                )
            )
        )
        lines[idx] = wrong
        _act(ep, executor, "apply_patch", {"patch": make_patch({fix.path: (current, "\n".join(lines))})})
        selected = failing[:5] if failing and rng.random() < 0.5 else []
        _act(ep, executor, "run_tests", {"tests": selected} if selected else {})
        if selected and executor.last_tests is not None and executor.last_tests.passed:
            ep.messages.append(h.analysis("Those tests pass now; running the whole suite to be sure."))
            _act(ep, executor, "run_tests", {})
        if executor.last_tests is not None and executor.last_tests.passed:
            return (
                f"The tests pass with `{wrong.strip()}`, but that bends the code around the tests "
                f"rather than restoring what it means to do. "
            )
        return _say(
            rng,
            "Still failing, so that was not it. Looking at the line again: ",
            "That did not fix it; the tests are still red. Reconsidering: ",
            "No, the tests still fail, so my guess was wrong. ",
        )


def _definition_pattern(function: str, language: str) -> str:
    name = re.escape(function.split(".")[-1].split("::")[-1])
    return {
        "python": rf"def {name}\b",
        "rust": rf"fn {name}\b",
        "go": rf"func (\([^)]*\) )?{name}\b",
    }.get(language, rf"\b{name}\b")


def _test_file(failing: Sequence[str]) -> str | None:
    for name in failing:
        head = name.split("::")[0]
        if "/" in head or head.endswith((".py", ".ts", ".js", ".rs", ".go")):
            return head
    return None


# ------------------------------------------------------------------------------ model teachers


@dataclass
class ModelTurn:
    reasoning: str
    text: str
    calls: list[tuple[str, str, str]]  # (call id, tool name, arguments JSON)


class ChatTeacher:
    """A model that chooses the actions; subclasses speak one wire format."""

    name = "chat"
    default_endpoint = ""
    key_env = ""

    def __init__(
        self,
        model: str,
        endpoint: str | None = None,
        max_turns: int = 16,
        temperature: float = 0.2,
        timeout_s: float = 120.0,
    ) -> None:
        self.model = model
        self.endpoint = (endpoint or self.default_endpoint).rstrip("/")
        self.max_turns = max_turns
        self.temperature = temperature
        self.api_key = os.environ.get("MOA_TEACHER_API_KEY") or os.environ.get(self.key_env, "")
        self.client = httpx.Client(timeout=timeout_s)

    def episode(
        self, task: Task, prompt: Sequence[h.Message], executor: Executor, rng: random.Random
    ) -> Episode:
        ep = Episode()
        instructions = (
            "\n\n".join(m.content for m in prompt if m.role == "developer")
            .split("# Tools")[0]
            .replace("# Instructions", "")
            .strip()
        )
        history = self.start(instructions, next(m.content for m in prompt if m.role == "user"))
        for _ in range(self.max_turns):
            turn = self.complete(history)
            if turn.reasoning.strip():
                ep.messages.append(h.analysis(turn.reasoning.strip()))
            if not turn.calls:
                ep.messages.append(h.final(turn.text.strip() or "Done."))
                break
            if turn.text.strip():
                ep.messages.append(h.preamble(turn.text.strip()))
            results = []
            for call_id, name, args in turn.calls:
                obs = executor.call(name, args)
                try:
                    parsed = json.loads(args)
                except ValueError:
                    parsed = None
                if obs.invalid or not isinstance(parsed, dict):
                    ep.reason = f"invalid tool call to {name}: {obs.text[:200]}"
                ep.messages.append(
                    h.tool_call(name, parsed)
                    if isinstance(parsed, dict)
                    else h.Message(
                        "assistant",
                        args,
                        channel="commentary",
                        recipient=f"functions.{name}",
                        content_type="json",
                    )
                )
                ep.messages.append(h.tool_result(name, obs.text))
                results.append((call_id, obs.text, not obs.ok))
            if ep.reason:  # not usable as training data: stop spending API calls on it
                return ep
            self.extend(history, turn, results)
        else:
            ep.reason = f"no final answer within {self.max_turns} turns"
            return ep
        executor.call("run_tests", "{}")  # judge the end state ourselves, whatever the model claimed
        ep.passed = executor.last_tests is not None and executor.last_tests.passed
        ep.reason = "" if ep.passed else "the tests are red at the end"
        return ep

    def post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        for attempt in range(4):
            resp = self.client.post(url, json=body, headers=headers)
            if resp.status_code in (429, 500, 502, 503, 504, 529) and attempt < 3:
                time.sleep(min(8.0, 0.5 * 2**attempt))
                continue
            if resp.status_code >= 400:
                raise RuntimeError(
                    f"{self.name} teacher: {url} -> HTTP {resp.status_code}: {resp.text[:300]}"
                )
            data: dict[str, Any] = resp.json()
            return data
        raise AssertionError("unreachable")

    # wire format ---------------------------------------------------------------------------------
    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        raise NotImplementedError

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        raise NotImplementedError

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        raise NotImplementedError


class OpenAITeacher(ChatTeacher):
    """`POST {endpoint}/chat/completions` with `tools` (OpenAI and compatible servers: vLLM,
    llama.cpp, SGLang...). `endpoint` is the base URL including `/v1`. Reasoning, where the
    server returns it (`reasoning_content` / `reasoning`), becomes the analysis channel."""

    name = "openai"
    default_endpoint = "https://api.openai.com/v1"
    key_env = "OPENAI_API_KEY"

    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        return {"messages": [{"role": "system", "content": instructions}, {"role": "user", "content": ask}]}

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        tools = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in h.AGENT_TOOLS
        ]
        body = {
            "model": self.model,
            "messages": history["messages"],
            "tools": tools,
            "temperature": self.temperature,
        }
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        data = self.post(f"{self.endpoint}/chat/completions", body, headers)
        message = data["choices"][0]["message"]
        history["last"] = message
        calls = [
            (c["id"], c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
        return ModelTurn(str(reasoning), message.get("content") or "", calls)

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        last = history.pop("last")
        history["messages"].append({k: v for k, v in last.items() if k in ("role", "content", "tool_calls")})
        history["messages"] += [
            {"role": "tool", "tool_call_id": cid, "content": text} for cid, text, _ in results
        ]


class AnthropicTeacher(ChatTeacher):
    """The Messages API (`POST {endpoint}/v1/messages`, `x-api-key`, `anthropic-version`)
    with tool use. Thinking blocks become the analysis channel and are sent back unchanged,
    as the API requires during tool use."""

    name = "anthropic"
    default_endpoint = "https://api.anthropic.com"
    key_env = "ANTHROPIC_API_KEY"
    version = "2023-06-01"

    def start(self, instructions: str, ask: str) -> dict[str, Any]:
        return {"system": instructions, "messages": [{"role": "user", "content": ask}]}

    def complete(self, history: dict[str, Any]) -> ModelTurn:
        tools = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in h.AGENT_TOOLS
        ]
        body = {
            "model": self.model,
            "max_tokens": 4096,
            "system": history["system"],
            "messages": history["messages"],
            "tools": tools,
            "temperature": self.temperature,
        }
        headers = {"x-api-key": self.api_key, "anthropic-version": self.version}
        data = self.post(f"{self.endpoint}/v1/messages", body, headers)
        blocks = data.get("content") or []
        history["last"] = blocks
        return ModelTurn(
            "\n".join(b.get("thinking", "") for b in blocks if b.get("type") == "thinking"),
            "\n".join(b.get("text", "") for b in blocks if b.get("type") == "text"),
            [
                (b["id"], b["name"], json.dumps(b.get("input", {})))
                for b in blocks
                if b.get("type") == "tool_use"
            ],
        )

    def extend(self, history: dict[str, Any], turn: ModelTurn, results: list[tuple[str, str, bool]]) -> None:
        history["messages"].append({"role": "assistant", "content": history.pop("last")})
        history["messages"].append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": cid, "content": text, "is_error": err}
                    for cid, text, err in results
                ],
            }
        )


def make_teacher(
    kind: str, model: str | None = None, endpoint: str | None = None, max_turns: int = 16
) -> Teacher:
    if kind == "oracle":
        return OracleTeacher()
    if not model:
        raise ValueError(f"the {kind} teacher needs a model (spec.data.teacher.model or --model)")
    if kind == "openai":
        return OpenAITeacher(model, endpoint, max_turns)
    if kind == "anthropic":
        return AnthropicTeacher(model, endpoint, max_turns)
    raise ValueError(f"unknown teacher {kind!r}; expected oracle, openai or anthropic")
