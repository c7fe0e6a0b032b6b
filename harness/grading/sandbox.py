"""Confinement for one graded job: its own session, a memory limit, no solutions.

What a job may not do, and how it is stopped:

- **import the reference solutions**: a meta-path blocker refuses ``solutions``
  and ``katas`` (the grader loads the learner's file by path), and the
  editable-install finders lose their mapping for those packages;
- **use unbounded memory**: ``RLIMIT_AS`` caps the address space at what the
  worker already uses plus a budget, so a runaway allocation is a
  ``MemoryError`` in the learner's code, not a dead machine;
- **leave processes behind**: the job starts its own session (``setsid``),
  so the grader can kill its whole process group; descendants that start a
  session of their own are reparented to the grader (a child subreaper,
  see :func:`become_subreaper`) and swept at the end;
- **fool the grader with output**: stdout and stderr go to ``/dev/null``;
  results travel on a private pipe, signed (see :mod:`harness.grading.worker`);
- **touch anything outside its folder**: with Landlock (Linux 5.13+, see
  :mod:`harness.grading.landlock`) the job can change files only in its own
  temporary folder (not another learner's submission, not the grades) and, on
  Linux 6.12+, signal no process outside its own tree (not the grader, not
  another job). Every submission is also read into memory before the first
  job starts, so even without Landlock no job can change what another is
  graded on.

These are defences against accidents and casual cheating on a machine the
instructor controls, not a security boundary against a determined attacker
with the same user id: see docs/instructor-guide.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.abc
import os
import resource
import signal
import sys
import tempfile

from .landlock import restrict_writes

__all__ = ["BlockedImports", "become_subreaper", "confine", "descendants", "kill_tree"]

BLOCKED = ("solutions", "katas")
PR_SET_CHILD_SUBREAPER = 36


class BlockedImports(importlib.abc.MetaPathFinder):
    """Refuses to import the reference solutions (and the learner-facing package)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"'{fullname}' cannot be imported while grading: a submission is graded on its own")
        return None


def _vm_size_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def confine(memory_mb: int, workdir: str) -> None:
    """Apply every limit to the current (child) process. Call first thing after fork."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if memory_mb > 0:
        limit = _vm_size_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    os.chdir(workdir)
    # Scratch space (tempfile, pytest-style tmp dirs, matplotlib's cache) inside the job's folder,
    # the one place it may write once Landlock is on.
    for variable in ("TMPDIR", "MPLCONFIGDIR"):
        os.environ[variable] = workdir
    tempfile.tempdir = None
    # Forget already-imported copies and the editable install's route to them.
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    for finder in sys.meta_path:
        mapping = getattr(finder, "MAPPING", None) or getattr(getattr(finder, "__self__", None), "MAPPING", None)
        if isinstance(mapping, dict):
            for name in BLOCKED:
                mapping.pop(name, None)
    sys.meta_path.insert(0, BlockedImports())
    sys.path[:] = [p for p in sys.path if not _is_project_root(p)]
    restrict_writes(workdir)  # last: everything above may still write or signal


def _is_project_root(path: str) -> bool:
    return bool(path) and os.path.isdir(os.path.join(path, "solutions")) and os.path.isdir(os.path.join(path, "harness"))


def become_subreaper() -> bool:
    """Make orphaned descendants come back to this process instead of init (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, state letter), for every live process (from /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            table[int(entry)] = (int(fields[1]), int(fields[3]), fields[0])
        except (OSError, IndexError, ValueError):
            continue
    return table


def descendants(pid: int, table: dict[int, tuple[int, int, str]] | None = None) -> list[int]:
    """Every live descendant of ``pid`` (in ``table``, a :func:`_processes` reading, if given)."""
    if table is None:
        table = _processes()
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child, (parent, _, _) in table.items():
            if parent == current and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def kill_tree(pgid: int | None, *, keep: set[int] = frozenset(), spare_sessions: set[int] = frozenset()) -> None:
    """Kill a process group, then every descendant of this process except ``keep`` and
    those in ``spare_sessions`` (the jobs still running); reap them."""
    if pgid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    table = _processes()  # one reading of /proc serves the tree and the sessions
    for pid in descendants(os.getpid(), table):
        # A job just forked has not called setsid yet: its pid is the session it is
        # about to lead, so spare it by pid too (killing it there read as "exit -9").
        if pid in keep or pid in spare_sessions or table.get(pid, (0, 0, ""))[1] in spare_sessions:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _reap(protected=set(keep) | set(spare_sessions))


def _reap(protected: set[int]) -> None:
    """Collect the exit statuses of our dead children (orphans reparented to us would linger
    as zombies), except the ``protected`` ones.

    Never ``waitpid(-1)``: a job that is still being graded may have just exited, and
    its exit code belongs to the grader's own bookkeeping (it is how ``sys.exit(0)`` is
    told apart from a crash); stealing it here made that report say "exit None".
    """
    me = os.getpid()
    for pid, (parent, _, state) in _processes().items():
        if parent == me and state == "Z" and pid not in protected:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
