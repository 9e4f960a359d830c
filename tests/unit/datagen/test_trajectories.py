"""Trajectories from real mutation records (idna, toolz from PyPI) through the real executor,
and the OpenAI-compatible teacher against a real HTTP server on loopback that replays
scripted tool-calling responses (a recorded-response server: no model can run here)."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from python_mutations import GRPO_FRACTION, oracle_dataset, write_mutations
from report_plots import assert_plots

from moa import harmony as h
from moa.agent.executor import Executor
from moa.agent.tasks import Bug, prompt_messages
from moa.agent.workspace import RepoState, Workspace
from moa.api.records import FailingTest, MutationRecord
from moa.datagen.chat_teachers import AnthropicTeacher, OpenAITeacher
from moa.datagen.teachers import make_teacher
from moa.datagen.trajectories import (
    PROGRESS,
    Options,
    eval_packages,
    generate,
    package_of,
    read_mutations,
    record_id,
)
from moa.harmony.patch import make_patch


def _record(
    source: str = "pypi:x@1", diff: str = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
) -> MutationRecord:
    return MutationRecord(
        language="python", source=source, version="1", file="x.py", operator="op", diff=diff, status="caught"
    )


def test_malformed_records_are_reported_with_file_and_line(tmp_path: Path) -> None:
    good = _record().model_dump_json()
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mutations.jsonl").write_text(
        f'{good}\n{{broken\n\n{good[:-1]}, "status": "maybe"}}\n{good}\n'
    )
    loaded = read_mutations(tmp_path)
    assert len(loaded.records) == 2 and loaded.lines == 4
    path = tmp_path / "a" / "mutations.jsonl"
    assert loaded.errors[0] == f"{path}:2: not valid JSON"
    assert loaded.errors[1].startswith(f"{path}:4: status: ")


def test_split_is_by_package_across_versions() -> None:
    packages = [package_of(f"pypi:p{i}@{v}") for i in range(20) for v in ("1.0", "2.0")]
    held = eval_packages(packages, 0.25, seed=1)
    assert len(held) == 5 and held <= set(packages)
    assert held == eval_packages(reversed(packages), 0.25, seed=1)  # order does not matter
    assert held != eval_packages(packages, 0.25, seed=2)
    assert eval_packages(["pypi:only"], 0.5, seed=1) == set()  # one package: nothing to hold out
    assert len(eval_packages(["pypi:a", "pypi:b"], 0.99, seed=1)) == 1  # never all of them


def test_prompt_names_the_failing_tests_and_is_stable_per_task() -> None:
    task = Bug(
        "ab12cd34ef56",
        _record().model_copy(update={"failing_tests": [FailingTest(name="tests/test_x.py::test_y")]}),
    )
    a, b = prompt_messages(task), prompt_messages(task)
    assert a == b and "tests/test_x.py::test_y" in a[-1].content and "read_file" in a[1].content
    assert Bug("1", _record("path:/home/me/src/calc/")).package == "calc"
    assert Bug("1", _record("git:https://example.com/org/repo.git#v1")).package == "repo"
    assert Bug("1", _record("go:github.com/google/uuid@v1.6.0")).package == "github.com/google/uuid"


@pytest.mark.slow
def test_oracle_trajectories_from_real_mutations_crash_resume_and_split() -> None:
    root, crashed, resumed = oracle_dataset()
    assert resumed.exit_code == 0, resumed.output
    mutations = root / "data" / "python" / "mutations" / "idna-3.6" / "mutations.jsonl"
    for log in (crashed, resumed.output.splitlines()):
        assert any(f"{mutations}:3: not valid JSON" in s for s in log)
        assert any(f"{mutations}:4: " in s for s in log)
    assert "resuming: 2 episodes already done" in resumed.output
    core = root / "data" / "python" / "core_agent"
    metrics = json.loads((core / "metrics.json").read_text())["metrics"]
    assert not (core / ".progress.jsonl").exists()
    assert metrics["malformed_records"] == 2 and metrics["caught"] == 5
    train = [json.loads(s) for s in (core / "train" / "trajectories.jsonl").read_text().splitlines()]
    evals = [json.loads(s) for s in (core / "eval" / "trajectories.jsonl").read_text().splitlines()]
    tasks = [json.loads(s) for s in (root / "data/python/grpo/tasks/tasks.jsonl").read_text().splitlines()]
    assert metrics["kept"] == len(train) + len(evals) == metrics["attempted"] == 5 - len(tasks)
    assert train and evals and tasks
    # Split by package: no package on both sides; GRPO tasks come from training packages.
    assert {package_of(t["source"]) for t in train}.isdisjoint({package_of(t["source"]) for t in evals})
    assert {package_of(t["source"]) for t in tasks} <= {package_of(t["source"]) for t in train} | {"none"}
    for t in train + evals:
        assert h.check_text(t["text"]) == []
        assert (
            t["text"].endswith("<|return|>")
            and t["n_tool_calls"] >= 4
            and t["turns"] == t["n_tool_calls"] + 1
        )
        conv = h.parse(t["text"])
        results = [m.content for m in conv.messages if m.role == "tool"]
        assert results[0].startswith("FAILED") and results[-1].startswith("PASSED")  # real observations
        assert "/work/" not in t["text"] and "moa-ws-" not in t["text"]  # no host paths leak in
    analyses = [
        m.content for t in train + evals for m in h.parse(t["text"]).messages if m.channel == "analysis"
    ]
    assert len(set(analyses)) > len(analyses) * 0.6  # varied, not one template
    assert_plots(root / "reports" / "python" / "trajectories", ["n_tool_calls", "turns"])
    for task in tasks:
        assert task["prompt"].endswith("<|start|>assistant") and task["diff"] and task["source"]
        # The file a rollout reads (itertoolz.py: about 28k characters) dominates the estimate.
        assert 8192 < task["context_tokens"] <= task["bucket"] == 16384
    # A completed stage is a no-op.
    from click.testing import CliRunner

    from moa.cli import cli

    again = CliRunner().invoke(cli, ["datagen", "trajectories", "--config", str(root / "trajectories.yaml")])
    assert again.exit_code == 0 and "already complete" in again.output
    assert GRPO_FRACTION > 0


# ------------------------------------------------------------------------------ model teachers


class Replay(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted response and records the request."""

    script: list[dict[str, Any]]
    requests: list[tuple[str, dict[str, str], dict[str, Any]]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, dict(self.headers), body))
        data = json.dumps(self.script.pop(0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[type[Replay]]:
    handler = type("Handler", (Replay,), {"script": [], "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    httpd.shutdown()


CALC = "def sub(a, b):\n    return a - b\n"
TEST = "from calc import sub\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n"
BUGGY = CALC.replace("a - b", "a + b")
DIFF = (
    "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def sub(a, b):\n-    return a - b\n+    return a + b\n"
)


PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "calc"
version = "0"

[tool.setuptools]
py-modules = ["calc"]
"""


@pytest.fixture
def calc_ws(tmp_path: Path) -> Iterator[Workspace]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "calc.py").write_text(CALC)
    (tmp_path / "src" / "test_calc.py").write_text(TEST)
    with Workspace.create(
        RepoState("python", f"path:{tmp_path / 'src'}", DIFF), tree=tmp_path / "src", parent=tmp_path
    ) as ws:
        yield ws


def _openai_call(cid: str, name: str, args: dict[str, Any], reasoning: str = "") -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
        ],
    }
    if reasoning:
        message["reasoning_content"] = reasoning
    return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


@pytest.mark.slow
def test_openai_compatible_teacher_against_a_recorded_response_server(
    server: type[Replay], calc_ws: Workspace
) -> None:
    fix = make_patch({"calc.py": (BUGGY, CALC)})
    server.script += [
        _openai_call("c1", "run_tests", {}, reasoning="Run the tests first."),
        _openai_call("c2", "read_file", {"path": "calc.py"}),
        _openai_call("c3", "apply_patch", {"patch": fix}, reasoning="sub adds instead of subtracting."),
        {
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Fixed `sub`: it now subtracts."},
                    "finish_reason": "stop",
                }
            ]
        },
    ]
    teacher = OpenAITeacher("replayed-model", endpoint=server.url + "/v1")  # type: ignore[attr-defined]
    task = Bug("0123456789abcdef", _record("path:calc", DIFF))
    prompt = prompt_messages(task)
    episode = teacher.demonstrate(task, prompt, Executor(calc_ws), rng=None)  # type: ignore[arg-type]
    assert episode.passed and episode.reason == "" and episode.n_tool_calls == 3
    assert h.validate(h.Conversation([*prompt, *episode.messages])) == []
    paths = [p for p, _, _ in server.requests]
    assert paths == ["/v1/chat/completions"] * 4
    first, last = server.requests[0][2], server.requests[-1][2]
    assert [t["function"]["name"] for t in first["tools"]] == [t.name for t in h.AGENT_TOOLS]
    assert first["model"] == "replayed-model" and first["messages"][1]["role"] == "user"
    tool_msgs = [m for m in last["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["c1", "c2", "c3"]
    assert tool_msgs[0]["content"].startswith("FAILED") and "Success" in tool_msgs[2]["content"]
    assert episode.messages[0] == h.analysis("Run the tests first.")


@pytest.mark.slow
def test_model_episode_that_ends_red_or_calls_badly_is_not_kept(
    server: type[Replay], calc_ws: Workspace
) -> None:
    server.script += [
        _openai_call("c1", "read_file", {"file": "calc.py"}),  # breaks the schema
        {
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}
            ]
        },
    ]
    teacher = OpenAITeacher("m", endpoint=server.url + "/v1")  # type: ignore[attr-defined]
    task = Bug("0123456789abcdef", _record("path:calc", DIFF))
    episode = teacher.demonstrate(task, prompt_messages(task), Executor(calc_ws), rng=None)  # type: ignore[arg-type]
    assert not episode.passed and "invalid tool call" in episode.reason


def test_anthropic_teacher_wire_format_offline(
    server: type[Replay], calc_ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Anthropic API cannot be reached from here: this checks our side of the
    documented Messages API (headers, tools, tool_result blocks) against the replay server."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    server.script += [
        {
            "content": [
                {"type": "thinking", "thinking": "Look around.", "signature": "s"},
                {"type": "tool_use", "id": "t1", "name": "list_files", "input": {}},
            ],
            "stop_reason": "tool_use",
        },
        {"content": [{"type": "text", "text": "Nothing to change."}], "stop_reason": "end_turn"},
    ]
    teacher = AnthropicTeacher("claude-test", endpoint=server.url)  # type: ignore[attr-defined]
    task = Bug("0123456789abcdef", _record("path:calc", DIFF))
    history = teacher.start("Fix it.", "Tests fail.")
    turn = teacher.complete(history)
    assert turn.reasoning == "Look around." and turn.calls == [("t1", "list_files", "{}")]
    teacher.extend(history, turn, [("t1", "calc.py\ntest_calc.py", False)])
    final = teacher.complete(history)
    assert final.text == "Nothing to change." and not final.calls
    path, headers, body = server.requests[-1]
    assert (
        path == "/v1/messages"
        and headers["x-api-key"] == "test-key"
        and headers["anthropic-version"] == "2023-06-01"
    )
    assert body["messages"][1]["content"][0]["type"] == "thinking"  # sent back unchanged
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "calc.py\ntest_calc.py", "is_error": False}
    ]
    assert [t["name"] for t in body["tools"]] == [t.name for t in h.AGENT_TOOLS] and "input_schema" in body[
        "tools"
    ][0]
    assert task.package == "calc"


def test_write_mutations_helper_is_deterministic(tmp_path: Path) -> None:
    recs = [_record(), _record("pypi:y@2")]
    folder = write_mutations(tmp_path, recs)
    assert sorted(record_id(r) for r in read_mutations(folder).records) == sorted(record_id(r) for r in recs)


POS = "def is_pos(x):\n    return x > 0\n"
POS_TEST = "from pos import is_pos\n\n\ndef test_is_pos():\n    assert not is_pos(0)\n    assert is_pos(0.5) and is_pos(3)\n"
POS_DIFF = (
    "--- a/pos.py\n+++ b/pos.py\n@@ -1,2 +1,2 @@\n def is_pos(x):\n-    return x > 0\n+    return x >= 0\n"
)


@pytest.mark.slow
def test_oracle_first_guess_is_real_and_wrong_then_the_fix(tmp_path: Path) -> None:
    from moa.datagen.oracle import OracleTeacher

    src = tmp_path / "src"
    src.mkdir()
    (src / "pos.py").write_text(POS)
    (src / "test_pos.py").write_text(POS_TEST)
    record = _record("path:pos", POS_DIFF).model_copy(update={"file": "pos.py", "function": "is_pos"})
    task = Bug("fedcba9876543210", record)
    with Workspace.create(RepoState("python", f"path:{src}", POS_DIFF), tree=src, parent=tmp_path) as ws:
        prompt = prompt_messages(task)
        episode = OracleTeacher(wrong_first_fraction=1.0).demonstrate(
            task, prompt, Executor(ws), random.Random(3)
        )
        assert (ws.root / "pos.py").read_text() == POS
    assert episode.passed, episode.reason
    assert h.validate(h.Conversation((*prompt, *episode.messages), "training")) == []
    calls = [(m.function, m.content) for m in episode.messages if m.is_tool_call]
    patches = [json.loads(c)["patch"] for f, c in calls if f == "apply_patch"]
    assert len(patches) == 2 and "+    return x >= 1" in patches[0] and "+    return x > 0" in patches[1]
    results = [m.content for m in episode.messages if m.role == "tool" and m.function == "run_tests"]
    assert (
        results[0].startswith("FAILED")
        and results[-2].startswith("FAILED")
        and results[-1].startswith("PASSED")
    )
    assert "x >= 1" in " ".join(m.content for m in episode.messages if m.channel == "analysis")


def _calc_task(tmp_path: Path, source: str) -> Options:
    """The calc package under tmp_path/calc, one caught mutant of it recorded as coming from
    SOURCE, and the oracle's options over it."""
    package = tmp_path / "calc"
    (package / "tests").mkdir(parents=True)
    (package / "calc.py").write_text(CALC)
    (package / "tests" / "test_calc.py").write_text(TEST)
    (package / "pyproject.toml").write_text(PYPROJECT)
    record = _record(source=source, diff=DIFF).model_copy(
        update={"file": "calc.py", "failing_tests": [FailingTest(name="tests/test_calc.py::test_sub")]}
    )
    (tmp_path / "mutations").mkdir()
    (tmp_path / "mutations" / "mutations.jsonl").write_text(record.model_dump_json() + "\n")
    return Options(
        language="python",
        mutations=tmp_path / "mutations",
        output=tmp_path / "out",
        grpo_output=tmp_path / "grpo",
        teacher=make_teacher("oracle"),
        teacher_name="oracle",
        grpo_fraction=0.0,
    )


def test_an_episode_that_cannot_run_fails_the_stage_and_is_retried(tmp_path: Path) -> None:
    """A workspace that cannot be built (here: a local source that is gone; in a pod: a prepare
    that needs the network) is not a verdict on the task. The stage fails naming the cause,
    records nothing for it, and a re-run, once the cause is fixed, runs it."""
    package = tmp_path / "calc"
    opts = _calc_task(tmp_path, f"path:{package}-moved")
    with pytest.raises(RuntimeError, match=r"1 of 1 episodes could not run \(.*is not a directory"):
        generate(opts, echo=lambda _: None)
    assert not (opts.output / "metrics.json").exists()
    assert (opts.output / PROGRESS).read_text() == ""  # nothing recorded: a re-run retries it
    package.rename(f"{package}-moved")  # the cause fixed: the re-run runs the episode
    summary = generate(opts, echo=lambda _: None)
    assert summary.metrics["attempted"] == summary.metrics["kept"] == 1


def test_a_test_run_that_cannot_start_is_the_environments_fault_not_a_green_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pod whose image lacked an evaluator tool, installing it at run time hit the read-only
    root: every run_tests call failed to start, and the oracle dropped each task as if its tests
    were already green. The run that cannot start is simulated here (the failure a read-only
    tools folder raises); the stage must fail naming it and record nothing."""

    def read_only_tools(language: str) -> Any:
        def run(repo: Path, tests: Any, timeout_s: float) -> Any:
            raise PermissionError(13, "Permission denied", "/opt/moa/tools/.node-lint.partial")

        return run

    monkeypatch.setattr("moa.agent.executor.test_runner", read_only_tools)
    opts = _calc_task(tmp_path, f"path:{tmp_path / 'calc'}")
    with pytest.raises(RuntimeError, match=r"1 of 1 episodes could not run \(.*run_tests could not run"):
        generate(opts, echo=lambda _: None)
    assert (opts.output / PROGRESS).read_text() == ""
