"""``kata lab [--no-browser] [--port N]``: open JupyterLab on the chapters."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .common import UsageError

ROOT = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("lab", help="open the workbook (JupyterLab on chapters/)",
                       description="Start JupyterLab on the chapters, opening the welcome chapter.")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (print the URL)")
    p.add_argument("--port", type=int, default=8888)
    p.set_defaults(func=run)


def lab_command(args) -> list[str]:
    chapters = ROOT / "chapters"
    if not chapters.is_dir():
        raise UsageError(f"no chapters folder at {chapters} (run kata lab from a clone of the workbook)")
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={ROOT}", f"--port={args.port}",
               "--ServerApp.ip=127.0.0.1"]
    welcome = chapters / "00-welcome.ipynb"
    if welcome.exists():
        command.append(f"--LabApp.default_url=/lab/tree/chapters/{welcome.name}")
    if args.no_browser:
        command.append("--no-browser")
    return command


def run(args) -> int:
    if shutil.which("jupyter") is None and not _has_jupyterlab():
        raise UsageError("JupyterLab is not installed here: run `make lab` (it installs everything first)")
    try:
        return subprocess.call(lab_command(args), cwd=ROOT)
    except KeyboardInterrupt:
        return 0


def _has_jupyterlab() -> bool:
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return False
    return True
