"""``kata reset``: start a kata over from its starting version, after backing the learner's file up.

Nothing a learner wrote is ever lost: the current file is copied to
``<project>/.kata/backups/<kata>-<n>.py`` (n = 1, 2, 3, ...) before anything
is written, and a file already equal to the starting version is left alone.

The starting version is the one git has: the upstream branch's (so a learner
who commits their progress still gets the stub back), else HEAD's.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ResetError", "ResetResult", "backup_dir", "reset_kata", "starting_version"]

REFS = ("@{upstream}", "HEAD")  # where the starting version is looked for, in order


class ResetError(Exception):
    """The starting version cannot be found; the learner's file is untouched."""


# Where the starting version came from, in a learner's words (the git ref follows, for the curious).
ORIGINS = {"@{upstream}": "the course's repository", "HEAD": "the latest commit in your copy"}


@dataclass(frozen=True)
class ResetResult:
    path: Path
    backup: Path | None  # None when there was nothing to keep
    source: str  # the git ref the starting version came from

    @property
    def origin(self) -> str:
        """Where the starting version came from, in plain words.

        >>> ResetResult(Path("katas/breaker.py"), None, "HEAD").origin
        'the latest commit in your copy'
        """
        return ORIGINS.get(self.source, f"git's {self.source}")

    def describe(self) -> str:
        where = f"the starting version from {self.origin} (git {self.source})"
        if self.backup is None:
            return f"{self.path} is already at {where}; nothing to back up."
        return f"{self.path} is back at {where}; your file is kept in {self.backup}"


def backup_dir(directory: Path) -> Path:
    """``.kata/backups`` beside the kata folder (``.kata/`` is git-ignored)."""
    return directory.resolve().parent / ".kata" / "backups"


def starting_version(path: Path) -> tuple[bytes, str]:
    """The kata file as git has it (upstream first, then HEAD), and the ref it came from."""
    folder = path.parent
    try:
        top = _git(folder, "rev-parse", "--show-toplevel").decode().strip()
    except ResetError:
        raise ResetError(f"cannot find the starting version of {path}: its folder is not in a git checkout "
                         "(your file is untouched)") from None
    relative = path.resolve().relative_to(Path(top).resolve()).as_posix()
    for ref in REFS:
        try:
            return _git(folder, "show", f"{ref}:{relative}"), ref
        except ResetError:
            continue
    raise ResetError(f"cannot find the starting version of {path}: git has no committed copy of "
                     f"{relative} (your file is untouched)")


def reset_kata(kata: str, directory: Path) -> ResetResult:
    """Back up ``<directory>/<kata>.py`` if it differs from the starting version, then restore it."""
    path = directory / f"{kata}.py"
    original, source = starting_version(path)
    backup = None
    if path.exists() and path.read_bytes() != original:
        backup = _next_backup(backup_dir(directory), kata)
        backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, backup)  # first the copy; only then the overwrite
    if backup is not None or not path.exists():
        path.write_bytes(original)
    return ResetResult(path, backup, source)


def _next_backup(folder: Path, kata: str) -> Path:
    taken = [int(p.stem.rsplit("-", 1)[1]) for p in folder.glob(f"{kata}-*.py") if p.stem.rsplit("-", 1)[1].isdigit()]
    return folder / f"{kata}-{max(taken, default=0) + 1}.py"


def _git(folder: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=False)
    except OSError as error:  # no git on this machine
        raise ResetError(f"git is needed to reset a kata: {error}") from None
    if done.returncode != 0:
        raise ResetError(done.stderr.decode(errors="replace").strip())
    return done.stdout
