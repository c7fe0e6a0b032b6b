"""``kata lab [--no-browser] [--port N]``: open JupyterLab on the chapters.

JupyterLab is started on 127.0.0.1 with the workbook's folder as its root and
the welcome chapter as the page it opens first:

>>> import argparse
>>> command = lab_command(argparse.Namespace(port=8888, no_browser=True))
>>> command[1:3], "--no-browser" in command
(['-m', 'jupyterlab'], True)
>>> [arg for arg in command if "default_url" in arg]
['--LabApp.default_url=/lab/tree/chapters/00-welcome.ipynb']
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .common import UsageError, whole_number

__all__ = ["WELCOME", "lab_command", "prefer_default_kernel", "register", "run"]

ROOT = Path(__file__).resolve().parents[2]
WELCOME = "00-welcome.ipynb"


_port = whole_number("port", low=1, high=65535)  # --port


def register(sub) -> None:
    p = sub.add_parser("lab", help="open the workbook (JupyterLab on chapters/)",
                       description="Start JupyterLab on the workbook, opening the welcome chapter. "
                                   "Stop it with Ctrl-C.")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (print the URL)")
    p.add_argument("--port", type=_port, default=8888,
                   help="port on 127.0.0.1 (default 8888; JupyterLab tries the next ones if it is taken)")
    p.set_defaults(func=run)


def lab_command(args) -> list[str]:
    """The JupyterLab command line for ``kata lab`` (raises UsageError outside a workbook clone)."""
    chapters = ROOT / "chapters"
    if not chapters.is_dir():
        raise UsageError(f"no chapters folder at {chapters} (run kata lab from a clone of the workbook)")
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}", f"--port={args.port}",
               "--ServerApp.ip=127.0.0.1"]
    if (chapters / WELCOME).exists():
        command.append(f"--LabApp.default_url=/lab/tree/chapters/{WELCOME}")
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Containers (Docker, CI, some cloud notebooks) often run as root, which Jupyter
        # refuses unless told; the server still listens on 127.0.0.1 only.
        command.append("--allow-root")
    return command


def run(args) -> int:
    if not _has_jupyterlab():
        raise UsageError("JupyterLab is not installed for this Python: run `make lab` "
                         "(it installs everything into .venv first), or pip install jupyterlab")
    command = lab_command(args)
    prefer_default_kernel(Path(sys.prefix))
    try:
        return subprocess.call(command, cwd=ROOT)
    except KeyboardInterrupt:
        return 0


def _has_jupyterlab() -> bool:
    # The server runs as `python -m jupyterlab` with this interpreter, so ask this
    # interpreter: a `jupyter` on PATH from another Python would not help.
    return importlib.util.find_spec("jupyterlab") is not None


TRACKER = "@jupyterlab/notebook-extension:tracker"


def prefer_default_kernel(prefix: Path) -> Path | None:
    """Let a chapter start its kernel on opening, without a "Select Kernel" dialog.

    JupyterLab can ask which kernel to use when a fresh profile opens a notebook;
    a learner meeting that dialog on the welcome page is off to a bad start. The
    setting goes into this environment's ``overrides.json``; a choice already made
    there is kept, and a file that cannot be read or written is left alone.

    >>> import tempfile
    >>> prefix = Path(tempfile.mkdtemp())
    >>> path = prefer_default_kernel(prefix)
    >>> json.loads(path.read_text())[TRACKER]
    {'autoStartDefaultKernel': True}
    """
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    try:
        overrides = json.loads(path.read_text()) if path.exists() else {}
        tracker = overrides.setdefault(TRACKER, {})
        if not isinstance(tracker, dict):
            return None
        if "autoStartDefaultKernel" not in tracker:
            tracker["autoStartDefaultKernel"] = True
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(overrides, indent=2) + "\n")
    except (OSError, ValueError, AttributeError):
        return None
    return path
