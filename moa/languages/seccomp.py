"""A seccomp filter for sandboxed code, assembled as classic BPF (what `bwrap --seccomp FD` loads).

Why assemble it here rather than use libseccomp's bindings: the filter is a deny list of ~50
system calls plus one argument check, about 60 instructions; building it takes microseconds
and needs no package beyond the standard library (python3-seccomp is a Debian package outside
the venv; pyseccomp is an unmaintained ctypes wrapper). The cost is a syscall-number table per
architecture, which tests/unit/languages/test_seccomp.py checks against the kernel headers.

What it refuses (EPERM): mounting and namespaces (mount, umount2, the new mount API, unshare,
setns, pivot_root, chroot, and clone with any CLONE_NEW* flag), other processes' memory
(ptrace, process_vm_*, kcmp, pidfd_getfd), the kernel keyring, module loading, kexec, reboot,
swap, bpf, perf_event_open, userfaultfd, file handles, the clock, quotas, acct, syslog.
clone3 gets ENOSYS: its flags live in memory a filter cannot read, and glibc falls back to clone.
Any other architecture (i386 via int 0x80, the x32 ABI) is refused outright.
"""

from __future__ import annotations

import errno
import platform
import struct

# Refused everywhere; numbers per architecture below.
DENIED = [
    "mount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "name_to_handle_at",
    "open_by_handle_at",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "quotactl",
    "quotactl_fd",
    "acct",
    "syslog",
    "lookup_dcookie",
    "vhangup",
    "fanotify_init",
]

# name -> number, from <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64).
_X86_64 = {
    "clone": 56, "ptrace": 101, "syslog": 103, "vhangup": 153, "pivot_root": 155, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
    "swapoff": 168, "reboot": 169, "init_module": 175, "delete_module": 176, "quotactl": 179,
    "lookup_dcookie": 212, "clock_settime": 227, "kexec_load": 246, "add_key": 248,
    "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298,
    "fanotify_init": 300, "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
    "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
_AARCH64 = {
    "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "vhangup": 58,
    "quotactl": 60, "acct": 89, "unshare": 97, "kexec_load": 104, "init_module": 105,
    "delete_module": 106, "clock_settime": 112, "syslog": 116, "ptrace": 117, "reboot": 142,
    "settimeofday": 170, "adjtimex": 171, "add_key": 217, "request_key": 218, "keyctl": 219,
    "clone": 220, "swapon": 224, "swapoff": 225, "perf_event_open": 241, "fanotify_init": 262,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266, "setns": 268,
    "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "finit_module": 273,
    "bpf": 280, "userfaultfd": 282, "kexec_file_load": 294, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
    "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
}  # fmt: skip
# machine -> (AUDIT_ARCH_*, syscall table, first number of a foreign ABI sharing the arch or None)
ARCHES = {
    "x86_64": (0xC000003E, _X86_64, 0x40000000),  # x32 syscalls carry bit 30
    "aarch64": (0xC00000B7, _AARCH64, None),
}

# Every CLONE_NEW* flag: NEWTIME NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET.
_CLONE_NEW_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000
_CLONE_NEW_FLAGS |= 0x20000000 | 0x40000000

# Classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian).
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LOW = 0, 4, 16


class UnsupportedArch(RuntimeError):
    pass


def program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one) as `struct sock_filter[]` bytes."""
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise UnsupportedArch(f"no seccomp syscall table for {machine!r} (known: {', '.join(ARCHES)})")
    audit_arch, table, foreign_abi = ARCHES[machine]
    denied = sorted(table[name] for name in DENIED)
    # Layout: checks, then the four return instructions (allow, EPERM, ENOSYS, clone-flags test).
    body: list[tuple[int, int, int, int]] = []  # (code, jt, jf, k) with jt/jf as symbolic targets
    ALLOW, EPERM, ENOSYS, CLONE = -1, -2, -3, -4
    body.append((_LD_W_ABS, 0, 0, _OFF_ARCH))
    body.append((_JEQ_K, 0, EPERM, audit_arch))
    body.append((_LD_W_ABS, 0, 0, _OFF_NR))
    if foreign_abi is not None:
        body.append((_JGE_K, EPERM, 0, foreign_abi))
    body += [(_JEQ_K, EPERM, 0, nr) for nr in denied]
    body.append((_JEQ_K, ENOSYS, 0, table["clone3"]))
    body.append((_JEQ_K, CLONE, ALLOW, table["clone"]))
    tail = [
        (CLONE, (_LD_W_ABS, 0, 0, _OFF_ARG0_LOW)),
        (None, (_JSET_K, EPERM, ALLOW, _CLONE_NEW_FLAGS)),
        (ALLOW, (_RET_K, 0, 0, _RET_ALLOW)),
        (EPERM, (_RET_K, 0, 0, _RET_ERRNO | errno.EPERM)),
        (ENOSYS, (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)),
    ]
    where = {label: len(body) + i for i, (label, _) in enumerate(tail) if label is not None}
    insns = body + [insn for _, insn in tail]

    def offset(at: int, target: int) -> int:
        if target >= 0:  # 0 means "next instruction"
            return target
        jump = where[target] - at - 1
        assert 0 <= jump < 256, "filter too long for 8-bit jumps"
        return jump

    return b"".join(
        struct.pack("<HBBI", code, offset(i, jt), offset(i, jf), k)
        for i, (code, jt, jf, k) in enumerate(insns)
    )
