"""The learner's path in a real browser: JupyterLab serves a chapter, Chromium runs it.

nbval proves a chapter executes; this proves that what a learner *sees* works:
JupyterLab opens the chapter, "Run All Cells" runs it on a real kernel, the
ipywidgets render in the page, and the chapter's check cell prints its result.

The server runs on a free loopback port with a token, serving a temporary copy
of the chapter (so that JupyterLab's autosave can never rewrite the committed
notebook). Readiness is a bounded poll of ``/api/status``; everything the test
starts (server, kernel, browser) is gone again when it ends, and the test
checks that.

Needs Debian's chromium at /usr/bin/chromium and the ``playwright`` Python
package (``.ci/setup-browser .venv`` installs both; never ``playwright
install``, which downloads a browser of its own). Without them the test is
skipped, except under ``CI=true``, where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import lab as lab_command
from harness.cli import main as kata

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# The first chapter with a kata check cell. Until it exists, the welcome chapter (widgets
# and a self-check, no kata) stands in.
CHAPTER = "02-circuit-breakers.ipynb"
STAND_IN = "00-welcome.ipynb"
PRESENT = [CHAPTER] if (ROOT / "chapters" / CHAPTER).exists() else \
    [name for name in (STAND_IN,) if (ROOT / "chapters" / name).exists()]

# Bounds, all generous: a run that needs more is broken, not slow.
READY_TRIES = 240           # polls of /api/status ...
READY_PAUSE = 0.25          # ... spaced by waiting on the server process itself
PAGE_TIMEOUT_MS = 60_000    # JupyterLab's first page load and kernel start
RUN_ALL_TIMEOUT_MS = 180_000  # every cell of a chapter
WIDGET_TIMEOUT_MS = 30_000  # one experiment re-run after a slider moves
STOP_TIMEOUT = 15           # seconds for the server and its kernels to end


def _browser_missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (run .ci/setup-browser)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (run .ci/setup-browser)"
    return None


def _require_browser() -> None:
    reason = _browser_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


# -- processes: what we started must be gone again ---------------------------------------------


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (no psutil needed)."""
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while we looked
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has ended; only its exit status is left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the server ----------------------------------------------------------------------------------


@dataclass
class Lab:
    process: subprocess.Popen
    url: str
    token: str
    log: Path

    def api(self, path: str, method: str = "GET") -> dict:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = answer.read()
        return json.loads(body) if body else {}

    def page_url(self, chapter: str) -> str:
        # A workspace of its own per chapter: JupyterLab would otherwise reopen the chapters
        # an earlier page had open, and two notebooks would share the screen.
        return f"{self.url}/lab/workspaces/e2e-{Path(chapter).stem}/tree/chapters/{chapter}?token={self.token}"


def _wait_until_ready(lab: Lab) -> None:
    for _ in range(READY_TRIES):
        try:
            lab.api("/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        try:
            # The pause between tries is a wait on the server itself: it ends at once if it dies.
            code = lab.process.wait(timeout=READY_PAUSE)
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"JupyterLab exited with code {code} before it was ready:\n{lab.log.read_text()[-3000:]}")
    pytest.fail(f"JupyterLab not ready after {READY_TRIES} polls:\n{lab.log.read_text()[-3000:]}")


def _stop(lab: Lab) -> None:
    """Shut the server down the polite way (it stops its kernels), then make sure."""
    started = _descendants(lab.process.pid)  # kernels live in sessions of their own: note them now
    if lab.process.poll() is None:
        with suppress(urllib.error.URLError, ConnectionError, TimeoutError):
            lab.api("/api/shutdown", method="POST")
        try:
            lab.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(lab.process.pid, signal.SIGKILL)
            lab.process.wait(timeout=STOP_TIMEOUT)
    for pid in started:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _quiet_home(home: Path) -> dict[str, str]:
    """Jupyter settings of our own: no user settings or saved workspace leak in, none leak out."""
    # Autosave off (the served copy is disposable anyway), no "official Jupyter news?" popup,
    # and the notebook's own kernel started without asking: JupyterLab 4 sometimes shows a
    # "Select Kernel" dialog on a fresh page otherwise (a learner just presses Select).
    for plugin, values in {"docmanager-extension/plugin": {"autosave": False},
                           "apputils-extension/notification": {"fetchNews": "false"},
                           "notebook-extension/tracker": {"autoStartDefaultKernel": True}}.items():
        settings = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps(values))
    return {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONHASHSEED": "0",
    }


@contextmanager
def _serving(command: list[str], *, cwd: Path, env: dict[str, str], port: int, token: str,
             log: Path) -> Iterator[Lab]:
    """Start a server in a session of its own, wait until it answers, and stop it afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    lab = Lab(process, f"http://127.0.0.1:{port}", token, log)
    try:
        _wait_until_ready(lab)
        yield lab
    finally:
        _stop(lab)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    _require_browser()
    if not PRESENT:
        pytest.fail(f"neither chapters/{CHAPTER} nor chapters/{STAND_IN} exists")
    root = tmp_path_factory.mktemp("lab")
    (root / "chapters").mkdir()
    for name in PRESENT:
        shutil.copy(ROOT / "chapters" / name, root / "chapters" / name)
    env = _quiet_home(root / ".jupyter-home")
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
    ]
    if os.geteuid() == 0:  # CI containers run as root; Jupyter refuses that unless told
        command.append("--allow-root")
    with _serving(command, cwd=root, env=env, port=port, token=token, log=root / "jupyterlab.log") as lab:
        yield lab


@pytest.fixture(scope="module")
def browser(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    before = _descendants(os.getpid())
    profile = tmp_path_factory.mktemp("chromium-profile")  # a new, empty --user-data-dir
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            started = _descendants(os.getpid()) - before - {lab.process.pid} - _descendants(lab.process.pid)
            context.close()
    # Closing the context ends Chromium; leaving sync_playwright ends the driver.
    left = [pid for pid in started if _alive(pid)]
    assert not left, f"the browser left processes behind: {left}"


# -- the test --------------------------------------------------------------------------------------


# Set KATA_E2E_SCREENSHOTS=DIR to keep a screenshot of each chapter (and of any failure) there.
SCREENSHOTS = os.environ.get("KATA_E2E_SCREENSHOTS")

# The prompts of the visible notebook: "[ ]" not run, "[*]" queued or running, "[7]" done.
_PROMPTS = "[...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]"
_RUN_ENDED = f"""() => {{
    const prompts = {_PROMPTS}.map(p => p.textContent);
    return prompts.some(p => /\\[\\d+\\]/.test(p)) && !prompts.some(p => p.includes('*'));
}}"""


def _menu(page, menu: str, item: str) -> None:
    """Click a menu bar entry, then one of its items, as a learner would."""
    page.locator(".lm-MenuBar-itemLabel").get_by_text(menu, exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def _screenshot(page, name: str, fallback: Path) -> Path:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else fallback
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.mark.parametrize("chapter", PRESENT)
def test_a_learner_runs_the_chapter_in_jupyterlab(lab, browser, chapter, tmp_path):
    from playwright.sync_api import expect

    name = Path(chapter).stem
    page = browser.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page.goto(lab.page_url(chapter))
        notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first
        notebook.locator(".jp-Cell").first.wait_for()
        # The kernel must be up before "Run All": the status bar says "Python 3 (ipykernel) | Idle".
        page.locator(".jp-StatusBar-Widget").get_by_text(re.compile(r"\|\s*Idle$")).wait_for()

        # The chapter is stored with outputs (and widget state): clear them, so that
        # everything checked below comes from this run on a live kernel.
        _menu(page, "Edit", "Clear Outputs of All Cells")
        assert notebook.locator(".jp-OutputArea-output").count() == 0
        _menu(page, "Run", "Run All Cells")
        # The run ends when no cell is queued or running: all ran, or one raised and the rest were dropped.
        page.wait_for_function(_RUN_ENDED, timeout=RUN_ALL_TIMEOUT_MS)
        notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

        # textContent, not innerText: JupyterLab skips rendering cells out of view
        # (CSS content-visibility), and innerText leaves out what is not rendered.
        text = notebook.text_content()
        assert "Traceback (most recent call last)" not in text, f"a cell of {chapter} raised:\n{text[-3000:]}"
        prompts = notebook.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
        not_run = [i for i, prompt in enumerate(prompts) if "[ ]" in prompt]
        assert not not_run, f"code cells {not_run} of {chapter} did not run"
        if SCREENSHOTS:
            _screenshot(page, name, tmp_path)

        # ipywidgets rendered as live controls (not the text/plain fallback).
        assert notebook.locator(".jupyter-widgets").count() > 0, "no ipywidget rendered"
        assert notebook.locator(".widget-slider, .widget-button, .widget-dropdown").count() > 0, \
            "widgets rendered, but no slider, button or dropdown among them"
        # A slider is wired to the kernel: move it one step and its experiment re-runs.
        slider_cell = notebook.locator(".jp-CodeCell", has=page.locator(".widget-slider")).first
        slider_cell.scroll_into_view_if_needed()
        shown = slider_cell.locator(".jp-Cell-outputArea")
        before = shown.text_content()
        slider_cell.locator(".widget-slider .noUi-handle").first.press("ArrowRight")
        expect(shown).not_to_have_text(before, timeout=WIDGET_TIMEOUT_MS)
        if SCREENSHOTS:
            _screenshot(page, f"{name}-widget", tmp_path)

        outputs = notebook.locator(".jp-OutputArea-output").all_text_contents()
        if chapter.startswith("00-"):
            # The self-check cell answers in place.
            assert any("not answered yet" in out for out in outputs), "the check cell printed nothing"
        else:
            # The kata check cell prints the same report as `kata check`.
            assert any("level" in out and ("✓" in out or "✗" in out) for out in outputs), \
                "the kata check cell printed no level with ✓ or ✗"
    except BaseException:
        print(f"screenshot of the failure: {_screenshot(page, f'{name}-failure', tmp_path)}")
        raise
    finally:
        page.close()


# -- `kata lab` itself ---------------------------------------------------------------------------


def test_kata_lab_serves_the_workbook_and_opens_the_welcome_chapter(tmp_path):
    port, token = _free_port(), secrets.token_hex(16)
    # JUPYTER_TOKEN: the token a learner would copy from the printed URL, fixed here.
    env = {**_quiet_home(tmp_path / ".jupyter-home"), "JUPYTER_TOKEN": token}
    command = [sys.executable, "-m", "harness.cli", "lab", "--no-browser", "--port", str(port)]
    with _serving(command, cwd=tmp_path, env=env, port=port, token=token, log=tmp_path / "kata-lab.log") as lab:
        # The workbook's folder is the root: the chapters are where the learner expects them.
        listing = lab.api("/api/contents/chapters")
        assert "00-welcome.ipynb" in {item["name"] for item in listing["content"]}
        # The first page a learner gets is the welcome chapter.
        request = urllib.request.Request(f"{lab.url}/?token={token}")
        opener = urllib.request.build_opener(_NoRedirect)
        with pytest.raises(urllib.error.HTTPError) as redirect:
            opener.open(request, timeout=5)
        assert redirect.value.code in (301, 302)
        location = urllib.parse.urlsplit(redirect.value.headers["Location"])
        assert location.path == "/lab/tree/chapters/00-welcome.ipynb"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # hand the redirect back as an HTTPError, to read where it points


def test_kata_lab_without_jupyterlab_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(lab_command, "_has_jupyterlab", lambda: False)
    assert kata(["lab", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "JupyterLab is not installed" in err and "make lab" in err


@pytest.mark.parametrize("port", ["0", "70000", "eighty"])
def test_kata_lab_refuses_a_port_that_cannot_be(port, capsys):
    assert kata(["lab", "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port" in err and "Traceback" not in err


def test_kata_lab_prefers_the_default_kernel_and_keeps_what_was_there(tmp_path):
    settings = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    assert lab_command.prefer_default_kernel(tmp_path) == settings
    assert json.loads(settings.read_text()) == {
        "@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
        "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True},
    }
    # A choice the instructor made is theirs.
    settings.write_text(json.dumps({"@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": False}}))
    lab_command.prefer_default_kernel(tmp_path)
    assert json.loads(settings.read_text())["@jupyterlab/notebook-extension:tracker"] == {
        "autoStartDefaultKernel": False}
    # A file that is not JSON is left alone.
    settings.write_text("{not json")
    assert lab_command.prefer_default_kernel(tmp_path) is None
    assert settings.read_text() == "{not json"
