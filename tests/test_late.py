"""The late policy: plain ``nbgrader autograde`` applies it, and a penalty never outlives the lateness behind it.

nbgrader issue #723 (a penalty kept after the submission is no longer late) has two causes left
in nbgrader 0.9: Autograde keeps the gradebook's submission time when the folder it grades has
no ``timestamp.txt``, so a resubmission inherits the time of the late one before it; and
``generate_feedback`` skips feedback whose submission time did not change, so the page keeps a
penalty that an extension removed. The test runs the same story with nbgrader's own
AssignLatePenalties (given the course's policy, so only the timestamp handling differs) and with
the course's configuration.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import TINY, readable_text
from course.grader.grading import run_nbgrader_checked
from course.grader.late import PercentPerDayLate, duration, read_extensions
from course.assignments import CourseLayoutError

DUE = "2025-01-10 12:00:00 UTC"
LATE = "2025-01-11 13:00:00.000000 UTC"  # 25 hours late: two days started, 20% of the points earned
NBGRADERS_OWN = """
from nbgrader.preprocessors import AssignLatePenalties
from course.grader.late import LatePenalties, PercentPerDayLate
c.Autograde.autograde_preprocessors = [AssignLatePenalties if p is LatePenalties else p for p in c.Autograde.autograde_preprocessors]
c.AssignLatePenalties.plugin_class = PercentPerDayLate
c.GenerateFeedback.force = False
"""


def test_the_policy_counts_days_started_after_the_grace_period_up_to_the_cap():
    policy = PercentPerDayLate(percent_per_day=10, maximum_percent=50, grace_minutes=15)
    assert [policy.penalty_share(s) for s in (0, 15 * 60, 15 * 60 + 1, 86400, 86401, 4.5 * 86400, 30 * 86400)] == \
        pytest.approx([0, 0, 0.1, 0.1, 0.2, 0.5, 0.5])
    assert policy.late_submission_penalty("alice", 30.0, 86401) == pytest.approx(6.0)
    assert policy.describe() == ("10% of the points earned for each day or part of a day late after 15 minutes' grace, "
                                 "at most 50%")
    assert [duration(s) for s in (30, 600, 3600, 90000, 2 * 86400)] == ["1 minute", "10 minutes", "1 hour", "1 day 1 hour", "2 days"]


def test_an_extensions_file_with_a_mistake_says_where(tmp_path):
    path = tmp_path / "extensions.csv"
    assert read_extensions(path) == {}
    path.write_text("student_id,assignment,days\nalice,99-tiny,1.5\n")
    assert read_extensions(path) == {("alice", "99-tiny"): timedelta(days=1.5)}
    path.write_text("student,assignment,days\n")
    with pytest.raises(CourseLayoutError, match="must have the header student_id,assignment,days"):
        read_extensions(path)
    path.write_text("student_id,assignment,days\nalice,99-tiny,two\n")
    with pytest.raises(CourseLayoutError, match="line 2: days must be a number"):
        read_extensions(path)


def stored_penalty(course, student="alice") -> tuple[float, object]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(TINY, student)
        return float(submission.late_submission_penalty), submission.timestamp


def feedback_text(course, student="alice") -> str:
    return readable_text((course / "feedback" / student / TINY / f"{TINY}.html").read_text())


@pytest.mark.parametrize("configuration", ["nbgrader's own AssignLatePenalties", "the course's"])
def test_a_penalty_goes_when_the_submission_is_no_longer_late(tiny_course, configuration):
    course = tiny_course
    own = configuration.startswith("nbgrader")
    if own:
        (course / "nbgrader_config.py").write_text((course / "nbgrader_config.py").read_text() + NBGRADERS_OWN)
    run_nbgrader_checked(["generate_assignment", TINY, "--force"], course)
    run_nbgrader_checked(["db", "assignment", "add", TINY, f"--duedate={DUE}"], course)
    submitted = course / "submitted" / "alice" / TINY
    submitted.mkdir(parents=True)
    (submitted / f"{TINY}.ipynb").write_text((course / "source" / TINY / f"{TINY}.ipynb").read_text())
    (submitted / "timestamp.txt").write_text(LATE)

    # Handed in 25 hours late: 20% of the 3 points earned, in the gradebook and on the feedback page.
    run_nbgrader_checked(["autograde", TINY], course)
    assert stored_penalty(course)[0] == pytest.approx(0.6)
    run_nbgrader_checked(["generate_feedback", TINY], course)
    assert "Late submission penalty (Score: -0.6)" in feedback_text(course)
    if not own:
        assert "You handed this in on 2025-01-11 at 13:00 UTC, 1 day 1 hour after it was due" in feedback_text(course)

    # A two-day extension (nbgrader's own): no longer late. Both gradebooks agree; nbgrader's feedback page does not.
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.grant_extension(TINY, "alice", days=2)
    run_nbgrader_checked(["autograde", TINY, "--force"], course)
    assert stored_penalty(course)[0] == 0.0
    run_nbgrader_checked(["generate_feedback", TINY], course)
    assert ("Late submission penalty" in feedback_text(course)) == own

    # The extension withdrawn, the student's work comes in again by hand, without timestamp.txt: its time is unknown.
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.grant_extension(TINY, "alice")
    (submitted / "timestamp.txt").unlink()
    run_nbgrader_checked(["autograde", TINY, "--force"], course)
    penalty, timestamp = stored_penalty(course)
    if own:
        assert (penalty, str(timestamp)) == (pytest.approx(0.6), "2025-01-11 13:00:00")  # the earlier late time, kept
    else:
        assert (penalty, timestamp) == (0.0, None)
