"""Both directions, for every kata with levels (rustlings' maintainer check).

Every reference solution passes every level, for several seeds; every stub
(as committed: a learner's progress never fails this) fails every level,
with status "fail", never "error": an unfinished kata is not a crash.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.toolchain import catalogue
from harness.toolchain.reset import ResetError, starting_version
from harness.toolchain.runner import check_kata

ROOT = Path(__file__).resolve().parents[1]
WITH_LEVELS = [k.name for k in catalogue.katas() if k.levels]
SEEDS = (0, 1, 7, 2024)


def test_at_least_one_kata_has_levels():
    assert WITH_LEVELS


@pytest.mark.parametrize("kata", WITH_LEVELS)
@pytest.mark.parametrize("seed", SEEDS)
def test_solution_passes_every_level(kata, seed):
    report = check_kata(kata, "solutions", seed=seed)
    failing = [(t.name, t.message) for level in report.levels for t in level.tests if t.status != "pass"]
    assert not failing, f"solutions/{kata}.py fails with seed {seed}: {failing[:2]}"
    assert report.score == report.max_score == len(catalogue.kata(kata).levels)


def committed_stub(kata: str, tmp_path: Path) -> str:
    stub = ROOT / "katas" / f"{kata}.py"
    try:
        source, _ = starting_version(stub)
    except ResetError:  # not committed yet: the working copy is the stub
        source = stub.read_bytes()
    folder = tmp_path / "stub"
    folder.mkdir()
    (folder / f"{kata}.py").write_bytes(source)
    return str(folder)


@pytest.mark.parametrize("kata", WITH_LEVELS)
def test_stub_fails_every_level_with_status_fail(kata, tmp_path):
    report = check_kata(kata, committed_stub(kata, tmp_path))
    assert report.score == 0
    for level in report.levels:
        assert level.status == "fail", f"{kata} level {level.level} is {level.status}"
        statuses = {t.status for t in level.tests}
        assert statuses == {"fail"}, f"{kata} level {level.level}: {statuses} (an error means the stub crashed)"
