"""`kata simulate` output: a replay line that replays, rounded virtual times, units in the keys."""

from __future__ import annotations

import json

from harness.cli import main


def simulate(capsys, *args):
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_replay_line_keeps_every_option_that_shapes_the_run(capsys, tmp_path):
    path = tmp_path / "my faults.json"
    path.write_text(json.dumps([{"at": 2, "until": 5, "fault": "crash", "target": "payments"}]))
    out = simulate(capsys, "fanout", "--seed", "3", "--faults", str(path), "--variant", "gateway-parallel",
                   "--variant", "client-sequential")
    assert out.splitlines()[-1] == (f"replay: kata simulate fanout --seed 3 --variant gateway-parallel "
                                    f"--variant client-sequential --faults '{path}'")


def test_replay_line_without_options_has_the_seed(capsys):
    assert simulate(capsys, "fanout").splitlines()[-1] == "replay: kata simulate fanout --seed 0"


def test_virtual_seconds_are_rounded(capsys):
    # 50 page views of 390 ms add up to 19.49999999999998 in floats.
    report = json.loads(simulate(capsys, "fanout", "--json"))
    assert repr(report["virtual_seconds"]) == "19.5"
    assert simulate(capsys, "fanout").startswith("scenario fanout  seed 0  19.5 virtual s ")


def test_metrics_keys_name_their_unit(capsys):
    report = json.loads(simulate(capsys, "fanout", "--variant", "gateway-parallel", "--json"))
    users = report["metrics"]["gateway-parallel"]["users"]
    assert sorted(users) == ["error_rate", "errors", "p50_s", "p90_s", "p99_s", "quantile_method", "rate_per_s",
                             "requests"]
    assert (users["p50_s"], users["p99_s"]) == (0.1, 0.1)
    assert report["summary"]["gateway-parallel"]["p50_ms"] == 170.0  # the same page, in ms: the key says so
    assert report["metrics"]["gateway-parallel"]["gateway"]["p50_s"] * 1000 == 170.0
