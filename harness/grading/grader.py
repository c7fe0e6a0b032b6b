"""Grade a class: every kata of every submission, each in its own confined process.

A class folder holds one subfolder per learner, each with that learner's
``katas/<kata>.py`` files (or the files at its top level). Only those files
are read: a learner's conftest.py, tests or notes are ignored, and a symlink
is refused (it could point at the reference solutions).

>>> # grades = grade_class(Path("class-2026"), Path("grades"), jobs=2)
>>> # grades["submissions"][0]["total"]

Jobs are forked from this process (single-threaded, with the harness already
imported, so a job starts in milliseconds), up to ``jobs`` at a time, each
with a real-time limit and a memory limit (see :mod:`harness.grading.sandbox`).
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import multiprocessing.connection
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..toolchain import catalogue
from ..toolchain.reports import REPORT_VERSION
from ..toolchain.reports import stuck_levels as _stuck_levels
from .sandbox import become_subreaper, descendants, kill_tree
from .worker import PRELOAD, run_job, verify

__all__ = ["GradingError", "find_submissions", "grade_class", "write_outputs"]

GRADES_VERSION = 1
DEFAULT_TIMEOUT = 30.0  # real seconds per kata of one submission (the slowest reference, saga, needs ~3 s)
DEFAULT_MEMORY_MB = 1024  # address space on top of the worker's own
STUCK_SHARE = 0.5  # "most of the class"


class GradingError(Exception):
    """Bad input to the grader (one line for the learner or instructor)."""


@dataclass
class Job:
    submission: str
    kata: str
    levels: list[int]
    source: Path | None  # the learner's file; None when missing
    problem: str | None = None  # why the file cannot be graded (a symlink, unreadable)
    code: bytes | None = None  # the file as read before any job ran (what is graded)
    results: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    outcome: str = ""  # how the job ended: done | timeout | exit <code> | missing | refused
    tampered: int = 0  # lines on the result pipe that were not signed by us


def find_submissions(root: Path) -> list[tuple[str, Path]]:
    """The learners' folders: every non-hidden subfolder of ``root``, sorted."""
    if not root.is_dir():
        raise GradingError(f"class folder {str(root)!r} does not exist or is not a folder")
    found = sorted((p.name, p) for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not found:
        raise GradingError(f"class folder {str(root)!r} has no submissions (one subfolder per learner)")
    return found


def kata_places(folder: Path, kata: str) -> tuple[Path, Path]:
    """Where a submission's kata file may be, in the order the grader looks: ``katas/`` first."""
    return folder / "katas" / f"{kata}.py", folder / f"{kata}.py"


def _kata_file(folder: Path, kata: str) -> tuple[Path | None, str | None]:
    for candidate in kata_places(folder, kata):
        if candidate.is_symlink():
            return None, f"{candidate.name} is a symbolic link: submit the file itself"
        if candidate.is_file():
            return candidate, None
    return None, None


def _plan(submissions: list[tuple[str, Path]]) -> list[Job]:
    jobs = []
    for name, folder in submissions:
        for kata in catalogue.katas():
            if not kata.levels:
                continue
            source, problem = _kata_file(folder, kata.name)
            code = None
            if source is not None:
                # Read now, before any learner's code runs: a job that rewrites another
                # learner's file (on a kernel without Landlock) changes nothing graded.
                try:
                    code = source.read_bytes()
                except OSError as error:
                    source, problem = None, f"{source.name} cannot be read: {error.strerror or error}"
            jobs.append(Job(name, kata.name, [lv.number for lv in kata.levels], source, problem, code=code))
    return jobs


# -- running ----------------------------------------------------------------------------
@dataclass
class _Running:
    job: Job
    process: Any
    conn: Any
    key: bytes
    deadline: float
    workdir: str


def _start(context, job: Job, *, seed: int, timeout: float, memory_mb: int) -> _Running:
    workdir = tempfile.mkdtemp(prefix="kata-grade-")
    (Path(workdir) / f"{job.kata}.py").write_bytes(job.code)  # only this file travels, as read at the start
    key = secrets.token_bytes(32)
    parent_end, child_end = context.Pipe(duplex=False)
    process = context.Process(target=run_job, args=(job.kata, workdir, seed, job.levels, key, child_end, memory_mb),
                              name=f"grade {job.submission}/{job.kata}")
    process.start()
    child_end.close()
    return _Running(job, process, parent_end, key, time.monotonic() + timeout, workdir)


def _drain(running: _Running) -> None:
    conn, job = running.conn, running.job
    try:
        while conn.poll():
            line = conn.recv()
            payload = verify(running.key, line) if isinstance(line, str) else None
            if payload is None:
                job.tampered += 1
            elif payload.get("done"):
                job.done = True
            elif len(job.results) < len(job.levels):
                job.results.append(payload)
    except (EOFError, OSError, ValueError, TypeError):
        pass


def _finish(running: _Running, outcome: str, keep: set[int], others: list[_Running] = ()) -> None:
    _drain(running)
    # Each job is its own session (setsid): spare the sessions of the jobs still running.
    spare = {r.process.pid for r in others if r is not running}
    kill_tree(running.process.pid, keep=keep, spare_sessions=spare)
    running.process.join(timeout=5)
    running.conn.close()
    shutil.rmtree(running.workdir, ignore_errors=True)
    running.job.outcome = outcome


def run_jobs(jobs: list[Job], *, workers: int, seed: int, timeout: float, memory_mb: int,
             progress: Callable[[int, int, Job], None] | None = None) -> None:
    """Run every gradable job, ``workers`` at a time; fills in each job's results."""
    context = multiprocessing.get_context("fork")
    for module in PRELOAD:  # imported once here, inherited by every fork
        __import__(module)
    become_subreaper()
    keep = set(descendants(os.getpid()))  # processes that were ours before grading: not ours to kill
    queue = [j for j in jobs if j.source is not None]
    for job in jobs:
        if job.source is None:
            job.outcome = "refused" if job.problem else "missing"
    total, finished = len(jobs), len(jobs) - len(queue)
    running: list[_Running] = []
    try:
        while queue or running:
            while queue and len(running) < workers:
                running.append(_start(context, queue.pop(0), seed=seed, timeout=timeout, memory_mb=memory_mb))
            ready = multiprocessing.connection.wait(
                [r.conn for r in running] + [r.process.sentinel for r in running], timeout=0.2)
            now = time.monotonic()
            for r in list(running):
                if r.conn in ready:
                    _drain(r)
                ended = r.process.sentinel in ready or not r.process.is_alive()
                if ended or r.job.done:
                    r.process.join(timeout=5)
                    code = r.process.exitcode
                    _finish(r, "done" if r.job.done else f"exit {code}", keep, running)
                elif now > r.deadline:
                    _finish(r, "timeout", keep, running)
                else:
                    continue
                running.remove(r)
                finished += 1
                if progress is not None:
                    progress(finished, total, r.job)
    finally:
        for r in running:
            _finish(r, "interrupted", keep)
        _clear_all(keep)


def _clear_all(keep: set[int], patience: float = 2.0) -> None:
    """Kill and reap whatever the jobs left; a killed grandchild comes back to us (the
    subreaper) only once its parent has died, so go round until nothing is left."""
    give_up = time.monotonic() + patience
    while True:
        kill_tree(None, keep=keep)
        if not set(descendants(os.getpid())) - keep or time.monotonic() > give_up:
            return
        time.sleep(0.01)


# -- reports ------------------------------------------------------------------------------
def kata_report(job: Job, seed: int, timeout: float) -> dict[str, Any]:
    """The ``kata check --json`` report of one job, with what never ran filled in."""
    kata = catalogue.kata(job.kata)
    against = f"{job.submission}/katas"
    if job.source is None:
        status = "error" if job.problem else "missing"
        return {"version": REPORT_VERSION, "kata": job.kata, "against": against, "status": status, "seed": seed,
                "score": 0, "max_score": len(kata.levels), "levels": [], **({"message": job.problem} if job.problem else {})}
    levels = list(job.results)
    for number in job.levels[len(levels):]:
        title = kata.level(number).title
        if job.outcome == "timeout":
            message = f"stopped after {timeout:g} s of real time (an endless loop or a hang?)"
            status = "timeout"
        else:
            message = (f"the submission ended the grading process ({job.outcome}) before level {number} finished: "
                       "does it call sys.exit or os._exit, or exhaust memory?")
            status = "error"
        levels.append({"level": number, "title": title, "status": status,
                       "tests": [{"name": f"level {number}", "status": status, "message": message,
                                  "hint": kata.level(number).hint, "replay": None}]})
    for level in levels:  # replays that a learner can run on their own copy
        for test in level["tests"]:
            if test.get("replay"):
                test["replay"] = test["replay"].split(" --against ")[0]
    statuses = [lv["status"] for lv in levels]
    if "timeout" in statuses:
        status = "timeout"
    elif "error" in statuses:
        status = "error"
    else:
        status = "pass" if all(s == "pass" for s in statuses) else "fail"
    report = {"version": REPORT_VERSION, "kata": job.kata, "against": against, "status": status, "seed": seed,
              "score": sum(s == "pass" for s in statuses), "max_score": len(kata.levels), "levels": levels}
    if job.tampered:
        report["warning"] = f"{job.tampered} unsigned line(s) on the result channel were ignored"
    return report


def stuck_levels(submissions: list[dict[str, Any]], katas: list[str]) -> list[dict[str, Any]]:
    """Where learners are stuck: the first level each submitted kata does not pass, by share
    (:func:`harness.toolchain.reports.stuck_levels`, titled from the catalogue)."""
    return _stuck_levels(submissions, katas, lambda kata, level: catalogue.kata(kata).level(level).title)


def grade_class(root: Path, *, workers: int = 2, seed: int = 0, timeout: float = DEFAULT_TIMEOUT,
                memory_mb: int = DEFAULT_MEMORY_MB,
                progress: Callable[[int, int, Job], None] | None = None) -> dict[str, Any]:
    """Grade every submission in ``root``; returns the grades.json document."""
    submissions = find_submissions(root)
    jobs = _plan(submissions)
    run_jobs(jobs, workers=workers, seed=seed, timeout=timeout, memory_mb=memory_mb, progress=progress)
    katas = [k.name for k in catalogue.katas() if k.levels]
    graded = []
    for name, _ in submissions:
        reports = {job.kata: kata_report(job, seed, timeout) for job in jobs if job.submission == name}
        graded.append({"name": name, "total": sum(r["score"] for r in reports.values()),
                       "max_total": sum(r["max_score"] for r in reports.values()), "katas": reports})
    return {"version": GRADES_VERSION, "seed": seed, "katas": katas, "submissions": graded,
            "stuck": stuck_levels(graded, katas)}


def write_outputs(grades: dict[str, Any], out: Path) -> dict[str, Path]:
    """grades.csv (one row per submission, a column per kata, the total) and grades.json."""
    out.mkdir(parents=True, exist_ok=True)
    katas = grades["katas"]
    csv_path, json_path = out / "grades.csv", out / "grades.json"
    # Write beside, then replace: a submission that scribbled here gets overwritten whole.
    tmp_csv = out / ".grades.csv.tmp"
    with open(tmp_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["submission", *katas, "total"])
        for sub in grades["submissions"]:
            writer.writerow([sub["name"], *(sub["katas"][k]["score"] for k in katas), sub["total"]])
    os.replace(tmp_csv, csv_path)
    tmp_json = out / ".grades.json.tmp"
    tmp_json.write_text(json.dumps(grades, indent=1) + "\n")
    os.replace(tmp_json, json_path)
    return {"csv": csv_path, "json": json_path}


def progress_bar(stream=None) -> Callable[[int, int, Job], None]:
    """A one-line progress bar on a terminal; a line every 10 % otherwise (CI logs)."""
    stream = stream if stream is not None else sys.stderr
    live = stream.isatty()
    last_tenth = [-1]

    def show(finished: int, total: int, job: Job) -> None:
        if live:
            width = 30
            filled = int(width * finished / total)
            stream.write(f"\rgrading [{'#' * filled}{'.' * (width - filled)}] {finished}/{total} "
                         f"{job.submission}/{job.kata:<10}")
            if finished == total:
                stream.write("\n")
            stream.flush()
        else:
            tenth = 10 * finished // total
            if tenth != last_tenth[0]:
                last_tenth[0] = tenth
                stream.write(f"grading: {finished}/{total} jobs done\n")
                stream.flush()

    return show
