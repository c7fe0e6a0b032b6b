"""Landlock (Linux >= 5.13): let a graded job write only inside its own folder, and
signal nobody outside its own process tree.

Landlock is an unprivileged Linux security module: a process restricts itself
(and every process it later starts) and can never lift the restriction. A job
confined here cannot overwrite another learner's submission, scribble in the
grader's output folder, or kill the grader or a sibling job (the signal scope
needs Landlock ABI 6, Linux 6.12). Reading stays open: the interpreter, the
harness and the checks must be readable.

Where the kernel lacks Landlock, :func:`restrict_writes` returns what it could
not do and the grader's other defences still hold (see
:mod:`harness.grading.sandbox`).

>>> isinstance(abi_version(), int)
True
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["abi_version", "restrict_writes"]

# syscall numbers: the same on x86_64 and aarch64 (the generic table)
_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# LANDLOCK_ACCESS_FS_*: every right that changes the file system, by the ABI that added it
_WRITES = {
    1: (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12),
    2: 1 << 13,  # REFER (rename/link across folders)
    3: 1 << 14,  # TRUNCATE
}
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    try:
        version = _libc().syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def restrict_writes(folder: str) -> list[str]:
    """Allow file-system changes only beneath ``folder``, and no signals out of this
    process tree, for this process and its future children. Returns what could not
    be restricted (empty when everything was).
    """
    abi = abi_version()
    if abi < 1:
        return ["writes outside the job's folder", "signals to other processes"]
    writes = 0
    for version, rights in _WRITES.items():
        if abi >= version:
            writes |= rights
    missing = []
    scoped = 0
    if abi >= 6:
        scoped = _SCOPE_SIGNAL | _SCOPE_ABSTRACT_UNIX_SOCKET
    else:
        missing.append("signals to other processes")
    attr = _RulesetAttr(writes, 0, scoped)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else (16 if abi >= 4 else 8)
    libc = _libc()
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if ruleset < 0:
        return ["writes outside the job's folder", *missing]
    try:
        beneath_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY)
        try:
            rule = _PathBeneathAttr(writes, beneath_fd)
            if libc.syscall(_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                return ["writes outside the job's folder", *missing]
        finally:
            os.close(beneath_fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return ["writes outside the job's folder", *missing]
        if libc.syscall(_RESTRICT_SELF, ruleset, 0) < 0:
            return ["writes outside the job's folder", *missing]
    finally:
        os.close(ruleset)
    return missing
