"""`kata simulate` and friends with wrong input: one line, exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import main


def run_cli(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "args, reason",
    [
        (["simulate", "no-such"], "unknown scenario 'no-such'"),
        (["simulate", "cascade", "--seed", "abc"], "seed must be a whole number"),
        (["simulate", "cascade", "--seed", "-3"], "seed must be >= 0"),
        (["simulate", "cascade", "--variant", "nope"], "has no variant 'nope'"),
        (["simulate", "fanout", "--plot", "out.txt"], "use a .png, .svg or .pdf"),
        (["simulate", "cascade", "--faults", "/no/such/file.json"], "no such file"),
        (["serve", "--host", "0.0.0.0"], "loopback only"),
        (["serve", "--services", "users,warehouse"], "unknown service 'warehouse'"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, reason):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert reason in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    "schedule, reason",
    [
        ("not json at all", "is not valid JSON"),
        ('{"at": 1}', "expected a list"),
        ('[{"fault": "hang", "target": "payments"}]', "entry 1: missing 'at'"),
        ('[{"at": 5, "fault": "explode", "target": "payments"}]', "unknown fault 'explode'"),
        ('[{"at": 5, "fault": "error", "target": "payments", "probability": 2}]', "between 0 and 1"),
        ('[{"at": 5, "until": 2, "fault": "hang", "target": "payments"}]', "must be after 'at'"),
        ('[{"at": 5, "fault": "hang", "target": "paymnts"}]', "'paymnts' is neither a service nor an instance"),
    ],
)
def test_malformed_fault_schedule(capsys, tmp_path, schedule, reason):
    path = tmp_path / "faults.json"
    path.write_text(schedule)
    code, out, err = run_cli(capsys, "simulate", "fanout", "--faults", str(path))
    assert code == 2, out
    assert reason in err
    assert len(err.strip().splitlines()) == 1


def test_a_fault_schedule_from_a_file_changes_the_run(capsys, tmp_path):
    path = tmp_path / "faults.json"
    path.write_text(json.dumps([{"at": 0, "fault": "error", "target": "orders", "status": 503}]))
    code, out, _ = run_cli(capsys, "simulate", "fanout", "--variant", "gateway-parallel", "--faults", str(path), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["by_status"]["gateway-parallel"]["503"] == 50


def test_simulate_list_and_human_output(capsys):
    code, out, _ = run_cli(capsys, "simulate", "--list")
    assert code == 0 and "cascade" in out and "fanout" in out
    code, out, _ = run_cli(capsys, "simulate", "fanout", "--seed", "3")
    assert code == 0
    assert "replay: kata simulate fanout --seed 3" in out


def test_installed_entry_point_runs_without_traceback():
    done = subprocess.run([sys.executable, "-m", "harness", "simulate", "nope"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("kata: unknown scenario 'nope' (known: ") and "cascade" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
