"""Cross-check against OpenAI's own renderer, where it can run.

openai-harmony renders to token ids, so it needs the `o200k_base.tiktoken` vocabulary,
which it downloads on first use; machines here reach no such host. The test runs where
the package is installed and the vocabulary is already present (TIKTOKEN_ENCODINGS_BASE,
or the tiktoken-rs cache), and says why it skipped otherwise.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from moa import harmony as h

VOCAB_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


def _vocab_present() -> bool:
    base = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if base and (Path(base) / "o200k_base.tiktoken").is_file():
        return True
    cache = Path(os.environ.get("TIKTOKEN_RS_CACHE_DIR") or Path(tempfile.gettempdir()) / "tiktoken-rs-cache")
    return (cache / hashlib.sha1(VOCAB_URL.encode()).hexdigest()).is_file()


oh = pytest.importorskip(
    "openai_harmony", reason="openai-harmony is not installed (pip install openai-harmony)"
)
if not _vocab_present():
    pytest.skip(
        "openai-harmony needs o200k_base.tiktoken, which it cannot download here: put it in "
        "$TIKTOKEN_ENCODINGS_BASE (or the tiktoken-rs cache) to run this cross-check",
        allow_module_level=True,
    )


def test_rendering_matches_openai_harmony() -> None:
    encoding = oh.load_harmony_encoding(oh.HarmonyEncodingName.HARMONY_GPT_OSS)
    tools = [oh.ToolDescription.new(t.name, t.description, parameters=t.parameters) for t in h.AGENT_TOOLS]
    system = (
        oh.SystemContent.new()
        .with_reasoning_effort(oh.ReasoningEffort.HIGH)
        .with_conversation_start_date("2025-06-28")
        .with_knowledge_cutoff("2024-06")
        .with_required_channels(["analysis", "commentary", "final"])
    )
    developer = (
        oh.DeveloperContent.new().with_instructions("Fix the failing test.").with_function_tools(tools)
    )
    theirs = oh.Conversation.from_messages(
        [
            oh.Message.from_role_and_content(oh.Role.SYSTEM, system),
            oh.Message.from_role_and_content(oh.Role.DEVELOPER, developer),
            oh.Message.from_role_and_content(oh.Role.USER, "tests fail"),
            oh.Message.from_role_and_content(oh.Role.ASSISTANT, "Run them.").with_channel("analysis"),
            oh.Message.from_role_and_content(oh.Role.ASSISTANT, '{"tests": ["add"]}')
            .with_channel("commentary")
            .with_recipient("functions.run_tests")
            .with_content_type("<|constrain|>json"),
            oh.Message.from_author_and_content(oh.Author.new(oh.Role.TOOL, "functions.run_tests"), "1 failed")
            .with_channel("commentary")
            .with_recipient("assistant"),
            oh.Message.from_role_and_content(oh.Role.ASSISTANT, "Fixed.").with_channel("final"),
        ]
    )
    config = oh.RenderConversationConfig(auto_drop_analysis=False)  # moa trains on the chain of thought
    their_text = encoding.decode_utf8(encoding.render_conversation_for_training(theirs, config))
    ours = h.Conversation(
        [
            h.system_message(current_date="2025-06-28"),
            h.developer_message("Fix the failing test.", h.AGENT_TOOLS),
            h.user("tests fail"),
            h.analysis("Run them."),
            h.tool_call("run_tests", {"tests": ["add"]}),
            h.tool_result("run_tests", "1 failed"),
            h.final("Fixed."),
        ],
        "training",
    )
    # The library writes the call's recipient before the channel, gpt-oss writes it after:
    # both read back to the same conversation, and every other message is byte-identical.
    assert h.parse(their_text) == ours
    ours_text = h.render(ours)
    their_call = their_text.split("<|start|>")[5]
    assert their_text.replace(their_call, "") == ours_text.replace(ours_text.split("<|start|>")[5], "")
