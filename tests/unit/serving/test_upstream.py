"""The upstream engine against a second `moa serve` (runtime LoRA endpoints, raw completions),
and the vLLM flags for the current production set. (No GPU here: vLLM itself is not run.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from click.testing import CliRunner

from moa.serving.cli import serve
from tests.unit.serving.conftest import Server, Workdir, start, stop
from tests.unit.serving.tiny_adapters import LOOKUP

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def chain(
    served_workdir: Workdir, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    logs = tmp_path_factory.mktemp("upstream-logs")
    generator = start(
        ["--allow-runtime-lora", "--base", str(served_workdir.base)],
        logs / "a.log",
        ready_with_no_adapter=True,
    )
    try:
        router = start(
            [
                "--engine",
                "upstream",
                "--upstream",
                generator.url,
                "--workdir",
                str(served_workdir.root),
                "--poll-interval",
                "0.3",
            ],
            logs / "b.log",
        )
    except Exception:
        stop(generator)
        raise
    yield generator, router
    stop(router)
    stop(generator)


def test_upstream_routes_and_loads_adapters_on_the_generator(chain: tuple[Server, Server]) -> None:
    generator, router = chain
    loaded = {m["id"] for m in httpx.get(generator.url + "/v1/models").json()["data"]}
    assert {"rust-coding", "go-coding", "typescript-coding"} <= loaded  # loaded there at run time
    client = openai.OpenAI(base_url=router.url + "/v1", api_key="unused", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="moa-auto",
        messages=[{"role": "user", "content": "```rust\nfn main() {}\n```"}],
        temperature=0,
        max_tokens=40,
    )
    assert raw.headers["x-moa-adapter"] == "rust-coding"
    assert raw.parse().choices[0].message.content == "adapter rust"
    stream = client.chat.completions.create(
        model="typescript",
        messages=[{"role": "user", "content": "How do I reverse a list?"}],
        tools=[LOOKUP],
        temperature=0,
        max_tokens=40,
        stream=True,
    )
    calls = [c.choices[0].delta.tool_calls[0] for c in stream if c.choices and c.choices[0].delta.tool_calls]
    assert json.loads("".join(c.function.arguments or "" for c in calls)) == {"adapter": "typescript"}


def test_print_vllm_args(served_workdir: Workdir) -> None:
    result = CliRunner().invoke(serve, ["--workdir", str(served_workdir.root), "--print-vllm-args"])
    assert result.exit_code == 0, result.output
    args = result.output.split()
    assert args[:2] == ["vllm", "serve"] and "--enable-lora" in args
    assert args[args.index("--max-lora-rank") + 1] == "8"
    modules = args[args.index("--lora-modules") + 1 :]
    assert any(m.startswith("rust-coding=") and Path(m.split("=", 1)[1]).is_dir() for m in modules)
