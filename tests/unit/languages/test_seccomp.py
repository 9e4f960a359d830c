"""The hand-assembled seccomp filter: its syscall tables match the kernel headers, and loaded into
a process that HAS the capabilities (root, outside any user namespace) it alone refuses mount,
unshare and ptrace, while ordinary work (threads, subprocesses) still runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moa.languages import seccomp

HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}


@pytest.mark.parametrize("machine", sorted(seccomp.ARCHES))
def test_syscall_numbers_match_the_kernel_headers(machine: str) -> None:
    header = HEADERS[machine]
    if not header.exists():
        pytest.skip(f"{header} not installed")
    numbers = {
        m[1]: int(m[2]) for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)", header.read_text())
    }
    table = seccomp.ARCHES[machine][1]
    assert {name: numbers[name] for name in table} == table
    assert set(seccomp.DENIED) | {"clone", "clone3"} == set(table)


def test_unknown_architecture_is_an_error() -> None:
    with pytest.raises(seccomp.UnsupportedArch, match="riscv64"):
        seccomp.program("riscv64")


PROBE = r"""
import ctypes, errno, json, os, subprocess, sys, threading
libc = ctypes.CDLL(None, use_errno=True)
def rc(value):
    return "ok" if value == 0 else errno.errorcode[ctypes.get_errno()]
if sys.argv[1] == "filtered":
    program = open(sys.argv[2], "rb").read()
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
    assert libc.prctl(38, 1, 0, 0, 0) == 0  # no_new_privs, required to load a filter
    prog = Prog(len(program) // 8, program)
    assert libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0, errno.errorcode[ctypes.get_errno()]
seen = {"mount": rc(libc.mount(b"none", b"/mnt", b"tmpfs", 0, None))}
seen["unshare_user"] = rc(libc.unshare(0x10000000))  # before any thread: EINVAL otherwise
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
print(json.dumps(seen | {
    # PTRACE_TRACEME only when filtered: unfiltered it would really make us traced.
    "ptrace": rc(libc.ptrace(0, 0, None, None)) if sys.argv[1] == "filtered" else "skipped",
    "subprocess": subprocess.run(["true"]).returncode,
}))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to hold CAP_SYS_ADMIN"
)
@pytest.mark.parametrize("mode", ["unfiltered", "filtered"])
def test_filter_is_what_refuses_a_capable_process(mode: str, tmp_path: Path) -> None:
    program = tmp_path / "filter.bpf"
    program.write_bytes(seccomp.program())
    # A private mount namespace: the unfiltered control's mount must not touch the host.
    out = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", PROBE, mode, str(program)],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(out.stdout)
    assert seen["subprocess"] == 0
    if mode == "unfiltered":  # root can: proves the filter below is the mechanism
        assert seen["mount"] == "ok" and seen["unshare_user"] == "ok"
    else:
        assert seen == {"mount": "EPERM", "unshare_user": "EPERM", "ptrace": "EPERM", "subprocess": 0}
