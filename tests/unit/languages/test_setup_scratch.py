"""Trusted setup commands (pip, `python -m venv`) get a private TMPDIR: removed after the command,
and, when a stage was SIGKILLed mid-install (pip's build and unpack folders left behind), removed
by the next process's first setup command, as the sandbox does for its own scratch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from moa.languages import tools

# A stage's setup command, in its own process: it writes where pip writes, then hangs.
INSTALL = """
import sys
from pathlib import Path
from moa.languages.tools import check_call
check_call(["sh", "-c", 'mkdir "$TMPDIR/pip-unpack-x" && echo "$TMPDIR" > ' + sys.argv[1] + " && sleep 300"], Path("."))
"""


def test_a_killed_install_leaves_scratch_that_the_next_setup_command_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said = tmp_path / "tmpdir.txt"
    proc = subprocess.Popen([sys.executable, "-c", INSTALL, str(said)], start_new_session=True)
    deadline = time.monotonic() + 60
    while not said.is_file() or not said.read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "the setup command never started"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-install: nothing runs its clean-up
    proc.wait()
    orphan = Path(said.read_text().strip())
    assert orphan.name.startswith(f"{tools.SETUP_SCRATCH}{proc.pid}-") and orphan.parent == Path(
        tempfile.gettempdir()
    )
    assert (orphan / "pip-unpack-x").is_dir()
    mine = Path(tempfile.mkdtemp(prefix=f"{tools.SETUP_SCRATCH}{os.getpid()}-"))  # a live process's

    monkeypatch.setattr(tools, "_setup_stale_cleaned", False)  # as in a fresh stage process
    inside = tools.check_call(["sh", "-c", 'echo "$TMPDIR"'], tmp_path).strip()
    assert not orphan.exists(), "the killed install's scratch is still there"
    assert mine.is_dir()  # a running process's scratch is left alone
    assert Path(inside).name.startswith(f"{tools.SETUP_SCRATCH}{os.getpid()}-") and not Path(inside).exists()
    mine.rmdir()
