"""Late submissions: a share of the points per day late, with a cap, a grace period and per-student extensions.

``nbgrader_config.py`` puts these in nbgrader's pipelines, so plain ``nbgrader autograde`` and
``nbgrader generate_feedback`` apply them as well as ``course grade``:

- ``PercentPerDayLate`` (an nbgrader late-submission plugin): the policy. Each day or part of
  a day past the due date takes ``percent_per_day`` percent of the points earned, at most
  ``maximum_percent``; a submission within ``grace_minutes`` of the due date is on time.
- ``LatePenalties`` (autograding; it replaces nbgrader's ``AssignLatePenalties``): judges the
  lateness of the file being graded. nbgrader's own preprocessor judges the submission time
  stored in the gradebook, and nbgrader's Autograde keeps the stored time when the submission
  it grades has no ``timestamp.txt`` (an empty one is treated the same): a resubmission placed
  in ``submitted/`` without one inherits the time of the late submission before it, and its
  penalty (nbgrader issue #723). Here the time is read from the graded folder's own
  ``timestamp.txt`` and written back to the gradebook; without one, the time is unknown and
  there is no penalty.
- ``ExplainLatePenalty`` (feedback): recomputes the penalty from the score as it is now
  (written answers graded by hand count, so the percentage applies to them too), stores it,
  and puts a paragraph at the top of the feedback saying when the work was handed in, when it
  was due (with the student's extension), and how the penalty follows from the policy.
  nbgrader's ``generate_feedback`` skips feedback whose submission time did not change, so a
  penalty dropped by a later extension would stay on the page; the configuration therefore
  sets ``GenerateFeedback.force``, and feedback always shows what the gradebook holds now.

Extensions: the later of nbgrader's own (``Gradebook.grant_extension``) and a line in the
course's ``extensions.csv`` (columns ``student_id,assignment,days``; ``days`` may be a
fraction), which may be written before the student hands anything in.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell
from nbgrader.api import Gradebook, SubmittedAssignment
from nbgrader.plugins import BasePlugin, LateSubmissionPlugin
from nbgrader.preprocessors import AssignLatePenalties, NbGraderPreprocessor
from nbgrader.utils import parse_utc
from traitlets import Float, Type, Unicode

from course.assignments import CourseLayoutError

EXTENSION_COLUMNS = ("student_id", "assignment", "days")
LATE_CELL_KEY = "course_late_penalty"  # cell metadata marking the feedback's explanation


class PercentPerDayLate(LateSubmissionPlugin):
    """A share of the points earned per day (or part of a day) late, at most ``maximum_percent``, after a grace period."""

    percent_per_day = Float(10.0, help="Percent of the points earned taken off per day, or part of a day, late").tag(config=True)
    maximum_percent = Float(50.0, help="The most a late submission loses, in percent of the points earned").tag(config=True)
    grace_minutes = Float(0.0, help="A submission this many minutes after the due date is still on time").tag(config=True)

    def penalty_share(self, seconds_late: float) -> float:
        """The share of the points earned that a submission ``seconds_late`` after its due date loses."""
        if seconds_late <= self.grace_minutes * 60:
            return 0.0
        days = math.ceil(seconds_late / 86400)
        return min(self.maximum_percent, self.percent_per_day * days) / 100

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        """Points taken off ``score`` (nbgrader's plugin interface)."""
        return score * self.penalty_share(total_seconds_late)

    def describe(self) -> str:
        """The policy in one sentence."""
        grace = f" after {self.grace_minutes:g} minutes' grace" if self.grace_minutes else ""
        return (f"{self.percent_per_day:g}% of the points earned for each day or part of a day late{grace}, "
                f"at most {self.maximum_percent:g}%")


@dataclass(frozen=True)
class Lateness:
    """When a submission was handed in and due, and what that costs."""

    submitted: datetime | None
    due: datetime | None
    extension: timedelta | None
    score: float
    penalty: float

    @property
    def seconds_late(self) -> float:
        """Seconds past the due date (extension included); 0 when on time or when either time is unknown."""
        if self.submitted is None or self.due is None:
            return 0.0
        return max(0.0, (self.submitted - self.due).total_seconds())


def read_timestamp(folder: Path) -> datetime | None:
    """The UTC time in ``folder/timestamp.txt`` (written by ``nbgrader submit``/``collect``), or None if there is none."""
    path = folder / "timestamp.txt"
    text = path.read_text().strip() if path.is_file() else ""
    if not text:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        raise CourseLayoutError(f"{path} holds {text!r}, not a time such as '2025-01-10 12:00:00.000000 UTC': "
                                "correct or delete it") from None


def read_extensions(path: Path) -> dict[tuple[str, str], timedelta]:
    """Extensions by (student id, assignment) from a CSV file with columns ``student_id,assignment,days``; none without the file."""
    if not path.is_file():
        return {}
    extensions = {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != EXTENSION_COLUMNS:
            raise CourseLayoutError(f"{path} must have the header {','.join(EXTENSION_COLUMNS)} (it has {reader.fieldnames})")
        for line, row in enumerate(reader, 2):
            try:
                days = float(row["days"])
            except (TypeError, ValueError):
                raise CourseLayoutError(f"{path}, line {line}: days must be a number, such as 2 or 0.5 (got {row['days']!r})") from None
            extensions[(row["student_id"].strip(), row["assignment"].strip())] = timedelta(days=days)
    return extensions


def course_root(config) -> Path:
    """The course folder nbgrader runs in (``CourseDirectory.root``, by default the working directory)."""
    return Path(config.CourseDirectory.get("root", "") or ".")


def assess(submission: SubmittedAssignment, score: float, extensions: dict[tuple[str, str], timedelta],
           policy: BasePlugin) -> Lateness:
    """The lateness of ``submission`` (as the gradebook records it) and the penalty ``policy`` gives its ``score``."""
    extension = max((e for e in (submission.extension, extensions.get((submission.student_id, submission.assignment.name)))
                     if e is not None), default=None)
    due = submission.assignment.duedate + extension if submission.assignment.duedate and extension else submission.assignment.duedate
    lateness = Lateness(submission.timestamp, due, extension, score, 0.0)
    if lateness.seconds_late > 0:
        penalty = policy.late_submission_penalty(submission.student_id, score, lateness.seconds_late) or 0.0
        lateness = Lateness(submission.timestamp, due, extension, score, min(max(penalty, 0.0), score))
    return lateness


def refresh_penalty(gradebook: Gradebook, assignment: str, notebook_id: str, student: str,
                    extensions: dict[tuple[str, str], timedelta], policy: BasePlugin) -> Lateness:
    """Recompute the late penalty of one submitted notebook from its current score and store it in the gradebook."""
    submission = gradebook.find_submission(assignment, student)
    notebook = gradebook.find_submission_notebook(notebook_id, assignment, student)
    lateness = assess(submission, float(notebook.score), extensions, policy)
    notebook.late_submission_penalty = lateness.penalty or None
    gradebook.db.commit()
    return lateness


class LatePenalties(AssignLatePenalties):
    """nbgrader's AssignLatePenalties for the file being graded: its own ``timestamp.txt``, extensions, the course's policy."""

    plugin_class = Type(PercentPerDayLate, klass=BasePlugin, help="The late-submission policy").tag(config=True)
    extensions_file = Unicode("extensions.csv", help="Per-student extensions (student_id,assignment,days), "
                              "relative to the course folder").tag(config=True)

    def extensions(self) -> dict[tuple[str, str], timedelta]:
        """The extensions in ``extensions_file``."""
        return read_extensions(course_root(self.config) / self.extensions_file)

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Record when the graded files were handed in, then store the penalty their score earns."""
        with Gradebook(resources["nbgrader"]["db_url"]) as gradebook:
            self.record_lateness(gradebook, resources)
        return nb, resources

    def record_lateness(self, gradebook: Gradebook, resources: dict) -> Lateness:
        """``preprocess``'s work through an open ``gradebook``: store the graded folder's time and the penalty it earns."""
        self.init_plugin()
        ids = resources["nbgrader"]
        submitted = read_timestamp(Path(resources["metadata"]["path"]))
        gradebook.find_submission(ids["assignment"], ids["student"]).timestamp = submitted
        lateness = refresh_penalty(gradebook, ids["assignment"], ids["notebook"], ids["student"], self.extensions(),
                                   self.plugin_inst)
        if lateness.penalty:
            self.log.warning("%s handed in %s of %s %.0f s late: penalty %g", ids["student"], ids["assignment"],
                             ids["notebook"], lateness.seconds_late, lateness.penalty)
        return lateness


class ExplainLatePenalty(NbGraderPreprocessor):
    """Feedback: refresh the penalty from the current score and explain it at the top of the page."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        """Store the penalty the score earns now and, when the work was late, add the paragraph that explains it."""
        late = LatePenalties(parent=self)
        late.init_plugin()
        ids = resources["nbgrader"]
        with Gradebook(ids["db_url"]) as gradebook:
            lateness = refresh_penalty(gradebook, ids["assignment"], ids["notebook"], ids["student"], late.extensions(),
                                       late.plugin_inst)
        nb.cells = [cell for cell in nb.cells if LATE_CELL_KEY not in cell.metadata]
        if lateness.seconds_late > 0:
            cell = new_markdown_cell(explanation(lateness, late.plugin_inst))
            cell.metadata[LATE_CELL_KEY] = True
            nb.cells.insert(0, cell)
        return nb, resources


def explanation(lateness: Lateness, policy: BasePlugin) -> str:
    """A paragraph for the student: when it was handed in and due, the policy, and the points it costs."""
    extended = f", with your extension of {duration(lateness.extension.total_seconds())}" if lateness.extension else ""
    rule = policy.describe() if hasattr(policy, "describe") else "the course's late-submission policy"
    when = (f"You handed this in on {lateness.submitted:%Y-%m-%d at %H:%M} UTC, {duration(lateness.seconds_late)} after "
            f"it was due ({lateness.due:%Y-%m-%d %H:%M} UTC{extended}).")
    if not lateness.penalty:
        return f"**Handed in after the due date.** {when} The late policy ({rule}) takes nothing off this time."
    return (f"**Late submission.** {when} The late policy: {rule}. That takes {lateness.penalty:.4g} of your "
            f"{lateness.score:.4g} points off: your score is {lateness.score - lateness.penalty:.4g}.")


def duration(seconds: float) -> str:
    """A span of time in words: days and hours, or minutes when under an hour."""
    if seconds < 3600:
        minutes = max(1, round(seconds / 60))
        return f"{minutes} minute{'s' * (minutes != 1)}"
    days, hours = divmod(round(seconds / 3600), 24)
    parts = [f"{days} day{'s' * (days != 1)}"] * bool(days) + [f"{hours} hour{'s' * (hours != 1)}"] * bool(hours)
    return " ".join(parts)


def late_submissions(course_dir: Path, assignment: str, students: list[str], db_url: str | None = None) -> dict[str, Lateness]:
    """The ``students`` whose submission of ``assignment`` was late, as the gradebook ``db_url`` (default: the folder's
    ``gradebook.db``), the course's extensions and its policy judge it now (read only: nothing is stored)."""
    from nbgrader.api import MissingEntry

    from course.grader.gradebook import url_for
    from course.nbgrader_settings import course_config

    late = LatePenalties(config=course_config(course_dir))
    late.init_plugin()
    extensions = late.extensions()
    found = {}
    url = url_for(course_dir, db_url)
    if db_url is None and not (course_dir / "gradebook.db").is_file():
        raise CourseLayoutError(f"no gradebook in {course_dir}: grade an assignment first")
    with Gradebook(url) as gradebook:
        for student in students:
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            lateness = assess(submission, float(submission.score), extensions, late.plugin_inst)
            if lateness.seconds_late > 0:
                found[student] = lateness
    return found
