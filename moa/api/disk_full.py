"""One line for a full disk, whichever stage and library hit it: the file being written, the
space left there and what to do next (the `moa` command's error handler uses it).

A write that fails for lack of space surfaces in many shapes: `OSError(ENOSPC)` naming its file
(an `open`), the same without a name (a `write` on an open file: trajectories' rows, a report),
or another library's own error carrying the OS text (safetensors: "I/O error: No space left on
device (os error 28)"). The file is then found where the write happened: the innermost frame of
the traceback holding a file object open for writing, or a path argument of the writing call.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import FrameType, TracebackType

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
FULL_TEXTS = (os.strerror(errno.ENOSPC), os.strerror(errno.EDQUOT))
# Names the writing call gives its destination (open, json.dump, torch.save, safetensors' save_file).
PATH_ARGUMENTS = ("filename", "file", "path", "f", "fp", "fh", "fname")


def describe(exc: BaseException) -> str | None:
    """The error line for `exc` if it (or what caused it) is a full disk, else None."""
    cause = next((e for e in _chain(exc) if _is_full(e)), None)
    if cause is None:
        return None
    path = _written(cause) or _written(exc)
    where = f"writing {path}" if path else "writing a file moa could not name (see --debug)"
    free = _free(path) if path else None
    return (
        f"the disk is full {where}: {str(exc).strip() or cause}. "
        + (f"That file system has {free} free now. " if free else "")
        + "Free some space there (or give the run a larger volume) and run the same command "
        "again: finished work is kept and the stage continues from it."
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in FULL_ERRNOS or any(t in str(exc) for t in FULL_TEXTS)


def _written(exc: BaseException) -> str | None:
    filename = getattr(exc, "filename", None)
    if filename:
        return os.fsdecode(filename)
    for frame in reversed(list(_frames(exc.__traceback__))):  # innermost first
        for name, value in frame.f_locals.items():
            mode = getattr(value, "mode", None)
            if isinstance(mode, str) and any(c in mode for c in "wax+") and isinstance(value.name, str):
                return value.name  # a file object open for writing
            if name in PATH_ARGUMENTS and isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
    return None


def _frames(tb: TracebackType | None) -> Iterator[FrameType]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _free(path: str) -> str | None:
    folder = Path(path).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = float(shutil.disk_usage(folder).free)
    except OSError:
        return None
    units = ["bytes", "KiB", "MiB", "GiB"]
    while free >= 1024 and len(units) > 1:
        free /= 1024
        units.pop(0)
    return f"{free:.0f} bytes" if units[0] == "bytes" else f"{free:.1f} {units[0]}"
