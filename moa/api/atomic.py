"""Write a file so that readers see the old content or the new, never a half: a temporary name
beside it, then a rename. When the disk fills up mid-write the temporary file is removed, the
old content stays, and the error says which file could not be written."""

from __future__ import annotations

import contextlib
from pathlib import Path


def write_text(path: Path, text: str, encoding: str = "utf-8", errors: str = "strict") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding=encoding, errors=errors)
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OSError(
            exc.errno, f"could not write {path} ({exc.strerror}); its previous content is unchanged"
        ) from exc
    return path
