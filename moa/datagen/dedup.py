"""Duplicate mutations: the same change in the same place, however the tool numbered or spaced it.

Tools report one edit several ways (two operators giving the same text, a re-run shifting line
numbers); a duplicate (buggy, fixed) pair would leak between train and eval and fails the data gate,
so the hash ignores hunk headers, line numbers and whitespace, and keeps the file and the change.
"""

from __future__ import annotations

import hashlib
import re

_WS = re.compile(r"\s+")


def normalise_diff(diff: str) -> str:
    """The file path(s) and the +/-/context lines of a unified diff, with whitespace collapsed."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("--- ", "+++ ")):
            path = line[4:].split("\t")[0].strip()
            out.append(line[:4] + re.sub(r"^[ab]/", "", path))
        elif line.startswith("@@") or line.startswith("\\ No newline"):
            continue
        else:
            body = _WS.sub(" ", line[1:]).strip()
            if body:
                out.append(line[:1] + body)
    return "\n".join(out)


def diff_hash(diff: str) -> str:
    return hashlib.sha256(normalise_diff(diff).encode()).hexdigest()[:20]
