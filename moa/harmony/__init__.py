"""moa.harmony: the Harmony text format of gpt-oss, without a vocabulary file.

    from moa import harmony as h
    conv = h.Conversation([h.system_message(), h.developer_message("Fix the bug.", h.AGENT_TOOLS),
                           h.user("tests fail"), h.tool_call("run_tests", {}), ...])
    text = h.render(conv, "training")      # SFT target: the final answer ends with <|return|>
    assert h.parse(text).messages == conv.messages
    problems = h.validate(h.parse(text))   # [] for a well-formed agent trajectory
    out = h.parse_output(sampled)          # what a model generated: tolerant (see output.py)

`moa.harmony.patch` holds the apply_patch format the agent edits files with.

Imports nothing else of moa.
"""

from moa.harmony.errors import HarmonyError
from moa.harmony.model import (
    Conversation,
    Message,
    Mode,
    analysis,
    final,
    preamble,
    tool_call,
    tool_result,
    user,
)
from moa.harmony.output import Delta, ParsedOutput, StreamParser, parse_output
from moa.harmony.parse import parse, parse_completion
from moa.harmony.render import developer_message, render, render_message, system_message
from moa.harmony.tools import AGENT_TOOLS, Tool, ToolCall, parse_call, render_tools
from moa.harmony.validate import Problem, check_text, validate

__all__ = [
    "AGENT_TOOLS",
    "Conversation",
    "Delta",
    "HarmonyError",
    "Message",
    "Mode",
    "ParsedOutput",
    "Problem",
    "StreamParser",
    "Tool",
    "ToolCall",
    "analysis",
    "check_text",
    "developer_message",
    "final",
    "parse",
    "parse_call",
    "parse_completion",
    "parse_output",
    "preamble",
    "render",
    "render_message",
    "render_tools",
    "system_message",
    "tool_call",
    "tool_result",
    "user",
    "validate",
]
