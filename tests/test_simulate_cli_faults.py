"""`kata simulate --faults`: a crash or a hang is a failed page, not a traceback; targets checked once."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.scenarios import run_scenario


def simulate(capsys, *args):
    code = main(["simulate", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return code, captured.out, captured.err


def schedule_file(tmp_path, *entries, name="faults.json"):
    path = tmp_path / name
    path.write_text(json.dumps(list(entries)))
    return str(path)


@pytest.mark.parametrize("fault", ["crash", "hang"])
@pytest.mark.parametrize("target", ["gateway", "orders", "payments", "users", "payments-2"])
def test_fanout_finishes_under_a_crash_or_a_hang_of_any_service(capsys, tmp_path, fault, target):
    path = schedule_file(tmp_path, {"at": 2, "until": 5, "fault": fault, "target": target})
    code, out, err = simulate(capsys, "fanout", "--faults", path, "--json")
    assert code == 0, err
    report = json.loads(out)
    for variant in report["variants"]:
        assert report["summary"][variant]["page_views"] == 50  # every page view ran to its end


def test_fanout_counts_a_payments_crash_as_partial_pages(capsys, tmp_path):
    # The review's case: payments down from t=2 to t=5 used to end in ConnectError.
    path = schedule_file(tmp_path, {"at": 2, "until": 5, "fault": "crash", "target": "payments"})
    code, out, _ = simulate(capsys, "fanout", "--faults", path, "--json")
    assert code == 0
    report = json.loads(out)
    outcomes = {v: (report["summary"][v]["partial"], report["summary"][v]["errors"]) for v in report["variants"]}
    assert outcomes == {"client-sequential": (12, 0), "gateway-sequential": (11, 0), "gateway-parallel": (19, 0)}
    assert report["by_status"]["client-sequential"] == {"200": 138, "refused": 12}


def test_fanout_hang_on_users_times_out_instead_of_deadlocking():
    result = run_scenario("fanout", seed=0, faults=[{"at": 2, "until": 5, "fault": "hang", "target": "users"}])
    summary = {v.name: (v.summary["errors"], v.summary["p99_ms"]) for v in result.variants}
    # The browser gives up after 10 s; the gateway after 5 s per part (then answers 502).
    assert summary == {"client-sequential": (1, 10270.0), "gateway-sequential": (1, 5290.0),
                       "gateway-parallel": (1, 5020.0)}
    assert result.variant("gateway-parallel").world.recorder.by_status() == {"200": 198, "502": 1, "timeout": 1}


def test_fanout_default_run_has_no_failed_pages():
    result = run_scenario("fanout", seed=7)
    assert [(v.summary["partial"], v.summary["errors"]) for v in result.variants] == [(0, 0)] * 3


@pytest.mark.parametrize("target, lacking", [("gateway", "deadline"), ("gateway-1", "deadline"),
                                              ("bff", "sequential")])
def test_slow_backend_accepts_a_target_of_some_variants_and_says_which_lack_it(capsys, tmp_path, target, lacking):
    path = schedule_file(tmp_path, {"at": 2, "until": 5, "fault": "crash", "target": target})
    code, out, err = simulate(capsys, "slow-backend", "--faults", path, "--json", "--seed", "1")
    assert code == 0, err
    assert f"variant {lacking!r} has no {target!r}; it runs without this fault" in err
    assert f"variant {lacking!r} has no {target!r}" in " ".join(json.loads(out)["notes"])


def test_slow_backend_unknown_target_lists_the_services_of_every_variant(capsys, tmp_path):
    path = schedule_file(tmp_path, {"at": 2, "fault": "crash", "target": "gatewy"})
    code, _, err = simulate(capsys, "slow-backend", "--faults", path)
    assert code == 2
    assert err == ("kata: fault schedule entry 1: fault target 'gatewy' is neither a service nor an instance "
                   "(services: bff (only deadline), gateway (only sequential, parallel), orders, payments, users)\n")


def test_slow_backend_target_of_a_variant_not_chosen_is_refused_before_running(capsys, tmp_path):
    path = schedule_file(tmp_path, {"at": 2, "fault": "crash", "target": "gateway"})
    code, out, err = simulate(capsys, "slow-backend", "--faults", path, "--variant", "deadline")
    assert (code, out) == (2, "")
    assert err == ("kata: fault schedule entry 1: fault target 'gateway' is neither a service nor an instance "
                   "(services: bff, orders, payments, users; variants with it: sequential, parallel)\n")


def test_slow_backend_fault_never_cleared_with_until_null(capsys, tmp_path):
    path = schedule_file(tmp_path, {"at": 30, "until": None, "fault": "hang", "target": "orders"})
    code, out, err = simulate(capsys, "slow-backend", "--faults", path, "--variant", "deadline", "--json")
    assert code == 0, err
    summary = json.loads(out)["summary"]["deadline"]
    assert (summary["calm_p50_ms"], summary["slow_p50_ms"]) == (170.0, 320.0)


def test_fault_schedule_that_is_a_folder_says_so(capsys, tmp_path):
    code, _, err = simulate(capsys, "slow-backend", "--faults", str(tmp_path))
    assert code == 2
    assert err == f"kata: fault schedule {str(tmp_path)!r} is a folder, not a file\n"


def test_until_null_in_a_schedule_file_means_never_cleared_for_every_scenario(capsys, tmp_path):
    # fanout-cache read "until" with a default and met None: a TypeError after the run.
    path = schedule_file(tmp_path, {"at": 2, "until": None, "fault": "crash", "target": "users"})
    code, out, err = simulate(capsys, "fanout-cache", "--faults", path, "--variant", "ttl-cache", "--json")
    assert code == 0, err
    assert json.loads(out)["by_status"]["ttl-cache"] == {"200": 1200, "502": 566, "refused": 566}
