"""The Harmony special tokens, as text.

gpt-oss was trained on these exact strings (each is one token of the `o200k_harmony`
encoding). moa works on text, not token ids, so that data generation and validation need
no vocabulary file; a tokenizer turns the same text into the same ids later.
"""

from __future__ import annotations

import re

START = "<|start|>"
END = "<|end|>"
MESSAGE = "<|message|>"
CHANNEL = "<|channel|>"
CONSTRAIN = "<|constrain|>"
RETURN = "<|return|>"  # ends the final answer of a training target (a stop token)
CALL = "<|call|>"  # ends an assistant message addressed to a tool (a stop token)

# The tokens that give a text its structure; content may never contain them.
STRUCTURAL = (START, END, MESSAGE, CHANNEL, CONSTRAIN, RETURN, CALL)
TERMINATORS = (END, CALL, RETURN)

# Other special tokens of o200k_harmony. They are not structure in the text format, but a
# tokenizer that honours special tokens would turn them into control ids, so the
# validator flags them inside content.
RESERVED_RE = re.compile(
    r"<\|(?:startoftext|endoftext|endofprompt|refusal|untrusted|end_untrusted|meta_sep|meta_end"
    r"|fim_prefix|fim_middle|fim_suffix|reserved_\d+)\|>"
)

# Any structural token, for scanning.
STRUCTURAL_RE = re.compile("|".join(re.escape(t) for t in STRUCTURAL))

CHANNELS = ("analysis", "commentary", "final")
ROLES = ("system", "developer", "user", "assistant", "tool")
