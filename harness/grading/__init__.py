"""Class grading: ``kata grade DIR``. See :mod:`harness.grading.grader`."""

from .grader import GradingError, find_submissions, grade_class, write_outputs

__all__ = ["GradingError", "find_submissions", "grade_class", "write_outputs"]
