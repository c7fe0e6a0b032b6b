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
import os
import subprocess
import sys
from pathlib import Path

from .common import UsageError, whole_number

__all__ = ["WELCOME", "lab_command", "register", "run"]

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
    try:
        return subprocess.call(command, cwd=ROOT)
    except KeyboardInterrupt:
        return 0


def _has_jupyterlab() -> bool:
    # The server runs as `python -m jupyterlab` with this interpreter, so ask this
    # interpreter: a `jupyter` on PATH from another Python would not help.
    return importlib.util.find_spec("jupyterlab") is not None
