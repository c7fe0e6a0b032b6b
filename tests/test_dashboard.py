"""The class dashboard's helpers, on the sample class and on tiny hand-made classes.

The sample (tests/fixtures/grades-sample.json) is a class of 30 whose level
entries come from real check reports: the reference solutions, the committed
stubs, the katas' own wrong variants, a syntax error, and the grader's reports
for a submission that timed out, one that called sys.exit, and one that handed
in nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from matplotlib.colors import to_hex

from harness.dashboard import (
    ENV_VAR,
    SAMPLE,
    STATUS_COLOURS,
    GradesError,
    grades_path,
    heatmap,
    kata_table,
    learner_summary,
    level_status,
    levels,
    load_grades,
    merge,
    needs_a_look,
    pass_share_bars,
    pass_shares,
    status_matrix,
    stuck,
    stuck_bars,
)
from harness.toolchain import catalogue


@pytest.fixture(scope="module")
def sample() -> dict:
    return load_grades(SAMPLE)


def report(kata: str, *statuses: str, status: str | None = None) -> dict:
    """A check report whose levels ended as ``statuses`` (none: a report without levels)."""
    entries = [{"level": n, "title": f"{kata} level {n}", "status": s, "tests": []}
               for n, s in enumerate(statuses, 1)]
    if status is None:
        status = "pass" if statuses and all(s == "pass" for s in statuses) else "fail"
    return {"version": 1, "kata": kata, "status": status, "score": statuses.count("pass"),
            "max_score": 2, "levels": entries}


def tiny(**submissions: dict) -> dict:
    """A grades document with one kata of two levels, "door"."""
    subs = [{"name": name, "total": katas["door"]["score"], "max_total": 2, "katas": katas}
            for name, katas in submissions.items()]
    return {"version": 1, "katas": ["door"], "submissions": subs, "stuck": []}


# -- finding and reading the file -----------------------------------------------------------


def test_without_a_path_or_the_variable_the_sample_class_is_read(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert grades_path() == SAMPLE
    assert len(load_grades()["submissions"]) == 30


def test_the_variable_wins_over_the_sample_and_a_path_over_both(monkeypatch, tmp_path):
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(tiny(ann={"door": report("door", "pass", "fail")})))
    monkeypatch.setenv(ENV_VAR, str(ours))
    assert [s["name"] for s in load_grades()["submissions"]] == ["ann"]
    assert len(load_grades(SAMPLE)["submissions"]) == 30


def test_a_folder_means_the_grades_json_that_kata_grade_wrote_in_it(tmp_path):
    (tmp_path / "grades.json").write_text(json.dumps(tiny(ann={"door": report("door", "pass", "pass")})))
    assert grades_path(tmp_path) == tmp_path / "grades.json"
    assert load_grades(tmp_path)["submissions"][0]["name"] == "ann"


@pytest.mark.parametrize(("content", "phrase"), [
    (None, "no grades file at"),
    ("{not json", "is not JSON"),
    ("[]", "is not a grades file"),
    (json.dumps({"version": 2, "katas": [], "submissions": []}), "has version 2"),
    (json.dumps({"version": 1, "katas": "breaker", "submissions": []}), "'katas' must be a list"),
    (json.dumps({"version": 1, "katas": [], "submissions": [{"katas": {}}]}), "submission 0 needs a 'name'"),
    (json.dumps({"version": 1, "katas": ["door"], "submissions": [{"name": "ann", "katas": {"door": {"status": "meh"}}}]}),
     "ann/door is not a check report"),
])
def test_a_bad_grades_file_is_refused_in_one_line(tmp_path, content, phrase):
    path = tmp_path / "grades.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(GradesError) as refused:
        load_grades(path)
    assert phrase in str(refused.value) and "\n" not in str(refused.value)
    assert isinstance(refused.value, ValueError)


# -- tables -------------------------------------------------------------------------------------


def test_the_columns_are_every_level_of_every_kata_in_catalogue_order(sample):
    columns = levels(sample)
    graded = [k for k in catalogue.katas() if k.levels]
    assert [(c.kata, c.level) for c in columns] == [(k.name, lv.number) for k in graded for lv in k.levels]
    assert [c.title for c in columns] == [lv.title for k in graded for lv in k.levels]
    assert columns[5].label == "breaker 1"


def test_a_kata_nobody_handed_in_still_has_its_levels():
    grades = tiny(ann={"door": report("door", status="missing")})
    assert [(c.level, c.title) for c in levels(grades)] == [(1, "level 1"), (2, "level 2")]


@pytest.mark.parametrize(("the_report", "level", "expected"), [
    (report("door", "pass", "fail"), 1, "pass"),
    (report("door", "pass", "fail"), 2, "fail"),
    (report("door", "pass", "timeout", status="timeout"), 2, "timeout"),
    (report("door", status="missing"), 1, "missing"),
    (report("door", status="error"), 2, "error"),   # a refused file: no levels ran
    (report("door", "pass", status="fail"), 2, "missing"),  # a level the report does not list
    (None, 1, "missing"),
])
def test_the_status_of_one_level(the_report, level, expected):
    assert level_status(the_report, level) == expected


def test_the_matrix_puts_the_best_first_and_shows_how_each_level_ended(sample):
    names, columns, cells = status_matrix(sample)
    row = dict(zip(names, cells, strict=True))
    at = {(c.kata, c.level): j for j, c in enumerate(columns)}
    assert names[0] == "ada" and set(row["ada"]) == {"pass"}
    assert names[-1] == "bruno" and set(row["bruno"]) == {"missing"}
    totals = {s["name"]: s["total"] for s in sample["submissions"]}
    assert [totals[n] for n in names] == sorted(totals.values(), reverse=True)
    # The grader's verdicts on the hostile submissions show as they are.
    assert [row["gus"][at["composer", n]] for n in range(1, 6)] == ["pass", "pass", "timeout", "timeout", "timeout"]
    assert [row["omar"][at["breaker", n]] for n in range(1, 6)] == ["pass", "error", "error", "error", "error"]
    assert {row["rosa"][at["saga", n]] for n in range(1, 6)} == {"error"}
    # Each row passes exactly as many levels as the submission's total says.
    assert all(row[n].count("pass") == totals[n] for n in names)


def test_pass_shares_count_over_the_whole_class(sample):
    shares = {(s.kata, s.level): s for s in pass_shares(sample)}
    assert {s.of for s in shares.values()} == {30}
    assert (shares["registry", 1].passing, shares["canary", 5].passing) == (29, 1)
    assert shares["registry", 1].share == pytest.approx(29 / 30)
    counted = sum(s.passing for s in shares.values())
    assert counted == sum(s["total"] for s in sample["submissions"])


def test_tiny_class_shares_by_hand():
    grades = tiny(ann={"door": report("door", "pass", "pass")}, bob={"door": report("door", "pass", "fail")},
                  cy={"door": report("door", status="missing")})
    assert [(s.level, s.passing, s.of) for s in pass_shares(grades)] == [(1, 2, 3), (2, 1, 3)]


def test_stuck_is_the_first_unpassed_level_among_those_who_handed_the_kata_in(sample):
    # Recount from the submissions, independently of the grader that wrote the file.
    expected: dict[tuple[str, int], int] = {}
    handed: dict[str, int] = {}
    for submission in sample["submissions"]:
        for kata, rep in submission["katas"].items():
            if rep["status"] == "missing":
                continue
            handed[kata] = handed.get(kata, 0) + 1
            first = next((lv["level"] for lv in rep["levels"] if lv["status"] != "pass"), None)
            if first is not None:
                expected[kata, first] = expected.get((kata, first), 0) + 1
    entries = stuck(sample)
    assert {(e["kata"], e["level"]): (e["failing"], e["of"]) for e in entries} == \
        {key: (count, handed[key[0]]) for key, count in expected.items()}
    shares = [e["share"] for e in entries]
    assert shares == sorted(shares, reverse=True)


def test_most_of_the_class_is_stuck_at_registry_level_4(sample):
    most = stuck(sample, at_least=0.5)
    assert [(e["kata"], e["level"], e["failing"], e["of"]) for e in most] == [("registry", 4, 17, 29)]
    assert most[0]["title"] == catalogue.kata("registry").level(4).title


def test_the_kata_table(sample):
    rows = {row["kata"]: row for row in kata_table(sample)}
    assert list(rows) == sample["katas"]
    assert (rows["registry"]["handed_in"], rows["canary"]["handed_in"]) == (29, 10)
    assert (rows["composer"]["timeouts"], rows["breaker"]["errors"], rows["saga"]["errors"]) == (1, 1, 1)
    scores = [s["katas"]["breaker"]["score"] for s in sample["submissions"] if s["katas"]["breaker"]["status"] != "missing"]
    assert rows["breaker"]["mean_score"] == round(sum(scores) / len(scores), 2)


def test_needs_a_look_lists_what_the_grader_could_not_judge(sample):
    found = needs_a_look(sample)
    assert [(n, k, s) for n, k, s, _ in found] == [
        ("gus", "composer", "timeout"), ("omar", "breaker", "error"), ("rosa", "saga", "error")]
    why = {n: w for n, _, _, w in found}
    assert "level 3" in why["gus"] and "real time" in why["gus"]
    assert "sys.exit" in why["omar"]
    assert "SyntaxError" in why["rosa"]


def test_a_grader_warning_needs_a_look_too():
    tampered = report("door", "pass", "pass") | {"warning": "2 unsigned line(s) on the result channel were ignored"}
    assert needs_a_look(tiny(ann={"door": tampered})) == [
        ("ann", "door", "warning", "2 unsigned line(s) on the result channel were ignored")]


def test_a_learner_summary_says_where_each_kata_stands(sample):
    text = learner_summary(sample, "gus")
    lines = text.splitlines()
    assert lines[0] == "gus: 7 of 30 levels"
    assert "registry   3/5  fail, stuck at level 4: Client-side discovery" in text
    assert "composer   2/5  timeout, stuck at level 3" in text and "real time" in text
    assert "saga       0/5  missing (no file handed in)" in text
    # The learner-facing check message is there, cut to a few lines.
    assert "Expected:" in text and "more line" in text
    assert learner_summary(sample, "ada").count(" pass") == 6


def test_a_learner_summary_of_nobody_is_a_key_error(sample):
    with pytest.raises(KeyError, match="no submission named 'nobody'"):
        learner_summary(sample, "nobody")


# -- plots ----------------------------------------------------------------------------------------


def test_the_heatmap_colours_each_cell_by_how_the_level_ended(sample):
    fig = heatmap(sample)
    ax = fig.axes[0]
    image = ax.get_images()[0]
    names, _, cells = status_matrix(sample)
    assert image.get_array().shape == (30, 30)
    rgba = image.to_rgba(image.get_array())
    for i, j in [(0, 0), (names.index("gus"), 12), (names.index("bruno"), 29), (names.index("omar"), 6)]:
        assert to_hex(rgba[i][j]) == STATUS_COLOURS[cells[i][j]].lower()
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["ada (30/30)", "lena (18/30)"]
    legend = [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()]
    assert legend == ["pass", "fail", "error", "timeout", "missing"]


def test_the_bars_are_the_shares_and_half_the_class_is_marked(sample):
    ax = pass_share_bars(sample).axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([s.share for s in pass_shares(sample)])
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in ax.get_lines())


def test_stuck_bars_stand_out_where_most_are_stuck(sample):
    ax = stuck_bars(sample, limit=4).axes[0]
    colours = [to_hex(p.get_facecolor()) for p in ax.patches]
    assert colours == [STATUS_COLOURS["fail"].lower()] + ["#9e9e9e"] * 3
    assert ax.get_yticklabels()[0].get_text().startswith("registry 4: Client-side discovery")


def test_an_empty_class_draws_without_failing():
    empty = {"version": 1, "katas": ["door"], "submissions": [], "stuck": []}
    for draw in (heatmap, pass_share_bars, stuck_bars):
        assert draw(empty).axes


def test_the_sample_is_where_the_dashboard_says():
    assert Path(__file__).parent / "fixtures" / "grades-sample.json" == SAMPLE
    assert SAMPLE.is_file()


# -- stuck from the submissions, and shards merged ------------------------------------------------


def test_stuck_is_counted_from_the_submissions_by_the_graders_rule(sample):
    from harness.grading.grader import stuck_levels

    assert stuck(sample) == stuck_levels(sample["submissions"], sample["katas"]) == sample["stuck"]
    # The stored list is not read: a file without it (or with a stale one) gives the same answer.
    assert stuck(sample | {"stuck": []}) == stuck(sample)


def test_a_refused_file_is_stuck_at_level_1_as_the_grader_counts_it():
    refused = report("door", status="error") | {"message": "door.py is a symbolic link"}
    grades = tiny(ann={"door": refused}, bob={"door": report("door", "pass", "pass")},
                  cy={"door": report("door", status="missing")})
    assert [(e["level"], e["title"], e["failing"], e["of"]) for e in stuck(grades)] == [(1, "door level 1", 1, 2)]


def shard(tmp_path: Path, name: str, submissions: list[dict], grades: dict) -> Path:
    path = tmp_path / name / "grades.json"
    path.parent.mkdir()
    path.write_text(json.dumps(grades | {"submissions": submissions, "stuck": stuck(grades | {"submissions": submissions})}))
    return path


def test_merging_shards_gives_the_class_as_if_graded_at_once(sample, tmp_path):
    by_letter = sorted(sample["submissions"], key=lambda s: s["name"])
    a_to_k = [s for s in by_letter if s["name"] < "l"]
    l_to_z = [s for s in by_letter if s["name"] >= "l"]
    paths = [shard(tmp_path, "shard-2", l_to_z, sample), shard(tmp_path, "shard-1", a_to_k, sample)]
    merged = merge(paths)
    assert [s["name"] for s in merged["submissions"]] == [s["name"] for s in by_letter]
    assert merged["stuck"] == stuck(merged) == sample["stuck"]
    assert stuck(merged, at_least=0.5) == stuck(sample, at_least=0.5)
    # Each shard alone sees a different picture: that is why the stored lists are not added up.
    assert json.loads(paths[0].read_text())["stuck"] != sample["stuck"]
    # What the guide says to do next: write the merged class; the CSV is rebuilt from it.
    from harness.grading import write_outputs

    written = write_outputs(merged, tmp_path / "class")
    assert load_grades(written["json"])["submissions"] == merged["submissions"]
    rows = written["csv"].read_text().splitlines()
    assert len(rows) == 31 and rows[0] == "submission," + ",".join(sample["katas"]) + ",total"


@pytest.mark.parametrize(("change", "phrase"), [
    ({"katas": ["registry"]}, "grade every shard with the same project"),
    ({"seed": 7}, "grade every shard with the same --seed"),
    (None, "is in both"),
])
def test_shards_that_do_not_belong_together_are_refused_in_one_line(sample, tmp_path, change, phrase):
    first = shard(tmp_path, "one", sample["submissions"][:3], sample)
    second = shard(tmp_path, "two", sample["submissions"][2 if change is None else 3:6], sample | (change or {}))
    with pytest.raises(GradesError) as refused:
        merge([first, second])
    assert phrase in str(refused.value) and "\n" not in str(refused.value)


def test_merging_nothing_is_refused():
    with pytest.raises(GradesError, match="nothing to merge"):
        merge([])
