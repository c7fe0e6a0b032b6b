"""`kata simulate --plot FILE`: a path that cannot be written is refused before the run."""

from __future__ import annotations

import pytest

import harness.scenarios
from harness.cli import main


@pytest.fixture
def no_run(monkeypatch):
    """Fail the test if the scenario runs at all: the path must be refused first."""

    def run_scenario(*args, **kwargs):
        raise AssertionError("the scenario ran before --plot was checked")

    monkeypatch.setattr(harness.scenarios, "run_scenario", run_scenario)


def refused(capsys, plot: str) -> str:
    code = main(["simulate", "cascade", "--plot", plot])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert len(captured.err.splitlines()) == 1 and "Traceback" not in captured.err
    return captured.err


def test_plot_into_a_missing_folder(capsys, no_run):
    assert refused(capsys, "/nonexistent/dir/x.png") == (
        "kata: --plot '/nonexistent/dir/x.png': folder '/nonexistent/dir' does not exist\n")


def test_plot_onto_a_folder(capsys, no_run, tmp_path):
    assert refused(capsys, str(tmp_path)) == (
        f"kata: --plot {str(tmp_path)!r} is a folder; give a file name such as {str(tmp_path / 'run.png')!r}\n")


def test_plot_under_a_file(capsys, no_run, tmp_path):
    (tmp_path / "notes.txt").write_text("")
    plot = str(tmp_path / "notes.txt" / "x.png")
    assert refused(capsys, plot) == f"kata: --plot {plot!r}: {str(tmp_path / 'notes.txt')!r} is not a folder\n"


def test_plot_with_an_unsupported_extension(capsys, no_run, tmp_path):
    plot = str(tmp_path / "x.jpeg")
    assert refused(capsys, plot) == f"kata: --plot {plot!r}: use a .png, .svg or .pdf file name\n"


def test_plot_into_a_read_only_folder(capsys, no_run, tmp_path, monkeypatch):
    # os.access stands in for a read-only folder: as root every folder is writable.
    import harness.cli.simulate as simulate

    monkeypatch.setattr(simulate.os, "access", lambda path, mode: False)
    plot = str(tmp_path / "x.png")
    assert refused(capsys, plot) == f"kata: --plot {plot!r}: no permission to write there\n"


def test_a_good_plot_path_is_written(capsys, tmp_path):
    plot = tmp_path / "fanout.svg"
    assert main(["simulate", "fanout", "--plot", str(plot)]) == 0
    assert f"plot saved to {plot}" in capsys.readouterr().out
    assert plot.read_text().lstrip().startswith("<?xml")
