"""The grader's process housekeeping: cleaning up after one job never takes another job's
exit code (that code is how ``sys.exit(0)`` is told apart from a crash in the report)."""
from __future__ import annotations

import multiprocessing
import os
import time

from harness.grading.sandbox import descendants, kill_tree


def _leave_with(code: int) -> None:
    os.setsid()  # as a grading job does: its own session
    os._exit(code)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_cleaning_up_spares_the_exit_code_of_a_job_still_being_graded():
    job = multiprocessing.get_context("fork").Process(target=_leave_with, args=(3,))
    job.start()
    give_up = time.monotonic() + 10
    while _state(job.pid) != "Z":  # exited, not yet collected: the moment the race hit
        assert time.monotonic() < give_up, "the job did not exit"
        os.sched_yield()
    others = set(descendants(os.getpid())) - {job.pid}  # the test session's own processes: not ours
    kill_tree(None, keep=others, spare_sessions={job.pid})
    job.join(timeout=10)
    assert job.exitcode == 3


def _wait_then_leave(reader, code: int) -> None:
    reader.recv()  # still in the grader's session: a job between fork and setsid
    os._exit(code)


def test_cleaning_up_spares_a_job_that_has_not_yet_started_its_session():
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    job = context.Process(target=_wait_then_leave, args=(reader, 5))
    job.start()
    others = set(descendants(os.getpid())) - {job.pid}
    kill_tree(None, keep=others, spare_sessions={job.pid})
    writer.send("go")
    job.join(timeout=10)
    assert job.exitcode == 5  # not -9: it was not killed
