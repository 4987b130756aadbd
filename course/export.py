"""``course export --to canvas|moodle|csv FILE``: the gradebook as a file an LMS imports.

Everything comes from the course's gradebook through nbgrader's API (its address is the
course's ``CourseDirectory.db_url``): every student nbgrader knows (the class list imported
with ``nbgrader db student import``, and everyone who submitted) and every assignment in it.
A score is nbgrader's: each test's autograded points, or the points you gave by hand where
you graded a cell yourself, plus the written answers you graded, minus the late penalty. The
penalty is recomputed first with the course's late policy (``course.grader.late``) from the
score as it is now, and stored, so the export, the feedback and the gradebook agree even when
written answers were graded after the feedback was made.

A student on the class list who handed nothing in scores 0, as in ``nbgrader export``. A
submission nbgrader has not (or could not) grade is left empty, never 0, and named on the
console: an empty cell leaves the LMS's grade alone, and a fault of the grader is not a grade.

The formats, checked against the LMSs' documentation (see docs/instructors.md):

- ``canvas``: Canvas's gradebook import (Grades, Import). The columns ``Student``, ``ID``, ``SIS
  User ID``, ``SIS Login ID``, ``Section`` and one per assignment, named ``Name (Canvas
  assignment id)`` when you give the id (``--canvas-id 01=123456``; otherwise just the name,
  which Canvas matches by name or creates), then a ``Points Possible`` row. ``Student`` is
  ``Last, First``; ``ID`` is the student's Canvas user id, nbgrader's ``lms_user_id``
  (a ``lms_user_id`` column in the class list you import); ``SIS Login ID`` is the nbgrader id.
- ``moodle``: Moodle's CSV grade import (Grades, Import, CSV file). One row per student with
  ``Username`` (the nbgrader id) and ``Email address`` to map users from, their names, and one
  column per assignment, which the import form maps to a grade item.
- ``csv``: everything, one row per student and assignment: times, lateness, raw score,
  penalty, score, maximum, and whether written answers still wait for you.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from course.assignments import CourseLayoutError
from course.nbgrader_settings import course_config, existing_gradebook_url

FORMATS = ("canvas", "moodle", "csv")
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
CANVAS_POINTS_ROW = "Points Possible"
MOODLE_IDENTITY = ["Username", "Email address", "First name", "Last name"]
PLAIN_COLUMNS = ["student_id", "last_name", "first_name", "email", "lms_user_id", "assignment", "duedate", "submitted",
                 "seconds_late", "raw_score", "late_penalty", "score", "max_score", "needs_manual_grade"]


@dataclass(frozen=True)
class Student:
    """A student as the gradebook knows them."""

    id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str

    @property
    def sortable_name(self) -> str:
        """``Last, First`` as Canvas shows students, or the id when the gradebook has no name."""
        return ", ".join(part for part in (self.last_name, self.first_name) if part) or self.id


@dataclass(frozen=True)
class Assignment:
    """An assignment in the gradebook: its id, due date and points available (written answers included)."""

    name: str
    duedate: datetime | None
    max_score: float


@dataclass(frozen=True)
class Grade:
    """One student's result on one assignment; ``raw_score`` is None when a submission is not graded."""

    student: Student
    assignment: Assignment
    submitted: bool
    timestamp: datetime | None = None
    seconds_late: float = 0.0
    raw_score: float | None = 0.0
    late_penalty: float = 0.0
    needs_manual_grade: bool = False

    @property
    def graded(self) -> bool:
        """False for a submission nbgrader has not graded (its score must not be uploaded)."""
        return self.raw_score is not None

    @property
    def score(self) -> float | None:
        """The score to upload: raw score minus the late penalty, never below 0; None when not graded."""
        return None if self.raw_score is None else max(0.0, self.raw_score - self.late_penalty)


@dataclass(frozen=True)
class GradeSheet:
    """What an export needs: students, assignments and a grade for each pair."""

    students: list[Student]
    assignments: list[Assignment]
    grades: dict[tuple[str, str], Grade]

    def warnings(self) -> list[str]:
        """What a person should do before uploading: submissions not graded, written answers not graded."""
        ungraded = [f"{g.student.id} ({g.assignment.name})" for g in self.grades.values() if g.submitted and not g.graded]
        manual = [f"{g.student.id} ({g.assignment.name})" for g in self.grades.values() if g.graded and g.needs_manual_grade]
        notes = []
        if ungraded:
            notes.append(f"not graded, left empty: {', '.join(ungraded)}; grade them (`course grade ASSIGNMENT`) and export again")
        if manual:
            notes.append(f"written answers not graded yet, counted as 0: {', '.join(manual)}; grade them in Formgrader "
                         "and export again")
        return notes


def read_gradebook(course_dir: Path, assignments: list[str] | None = None) -> GradeSheet:
    """Students, assignments (all, or those named) and grades from the course's gradebook, late penalties refreshed."""
    from nbgrader.api import Gradebook
    from nbgrader.api import MissingEntry

    from course.grader.late import LatePenalties, refresh_penalty

    late = LatePenalties(config=course_config(course_dir))
    late.init_plugin()
    extensions = late.extensions()
    with Gradebook(existing_gradebook_url(course_dir)) as gradebook:
        known = {a.name: a for a in gradebook.assignments}
        missing = [name for name in assignments or [] if name not in known]
        if missing:
            raise CourseLayoutError(f"no {', '.join(missing)} in the gradebook: grade it first (`course grade ASSIGNMENT`)")
        chosen = [known[name] for name in (assignments or sorted(known))]
        students = [Student(s.id, s.first_name or "", s.last_name or "", s.email or "", s.lms_user_id or "")
                    for s in sorted(gradebook.students, key=lambda s: s.id)]
        grades = {}
        for record in chosen:
            assignment = Assignment(record.name, record.duedate, float(record.max_score))
            for student in students:
                try:
                    submission = gradebook.find_submission(record.name, student.id)
                except MissingEntry:
                    grades[student.id, record.name] = Grade(student, assignment, submitted=False)
                    continue
                if not is_graded(submission, record):
                    grades[student.id, record.name] = Grade(student, assignment, True, submission.timestamp, raw_score=None)
                    continue
                lateness = [refresh_penalty(gradebook, record.name, notebook.name, student.id, extensions, late.plugin_inst)
                            for notebook in submission.notebooks]
                grades[student.id, record.name] = Grade(
                    student, assignment, True, submission.timestamp, max((l.seconds_late for l in lateness), default=0.0),
                    float(submission.score), sum(l.penalty for l in lateness), bool(submission.needs_manual_grade))
    return GradeSheet(students, [Assignment(a.name, a.duedate, float(a.max_score)) for a in chosen], grades)


def is_graded(submission, assignment) -> bool:
    """Whether nbgrader autograded every notebook of ``submission``: each autograded test has a score."""
    names = {notebook.name for notebook in submission.notebooks}
    if names != {notebook.name for notebook in assignment.notebooks}:
        return False
    return all(grade.auto_score is not None or grade.manual_score is not None
               for notebook in submission.notebooks for grade in notebook.grades
               if grade.cell.cell_type == "code")


def number(value: float | None) -> str:
    """A score as the LMSs read it: a plain decimal, at most two places; empty for None."""
    return "" if value is None else f"{round(value, 2):g}"


def canvas_rows(book: GradeSheet, canvas_ids: dict[str, str]) -> list[list[str]]:
    """Canvas's gradebook import: the header, the Points Possible row, then a row per student."""
    columns = [f"{a.name} ({canvas_ids[a.name]})" if a.name in canvas_ids else a.name for a in book.assignments]
    rows = [CANVAS_IDENTITY + columns, [CANVAS_POINTS_ROW, "", "", "", ""] + [number(a.max_score) for a in book.assignments]]
    for student in book.students:
        rows.append([student.sortable_name, student.lms_user_id, "", student.id, ""]
                    + [number(book.grades[student.id, a.name].score) for a in book.assignments])
    return rows


def moodle_rows(book: GradeSheet) -> list[list[str]]:
    """Moodle's CSV grade import: the header, then a row per student."""
    rows = [MOODLE_IDENTITY + [a.name for a in book.assignments]]
    for student in book.students:
        rows.append([student.id, student.email, student.first_name, student.last_name]
                    + [number(book.grades[student.id, a.name].score) for a in book.assignments])
    return rows


def plain_rows(book: GradeSheet) -> list[list[str]]:
    """Every number behind a grade, one row per student and assignment."""
    rows = [PLAIN_COLUMNS]
    for assignment in book.assignments:
        for student in book.students:
            grade = book.grades[student.id, assignment.name]
            rows.append([student.id, student.last_name, student.first_name, student.email, student.lms_user_id, assignment.name,
                         _time(assignment.duedate), _time(grade.timestamp), f"{grade.seconds_late:.0f}", number(grade.raw_score),
                         number(grade.late_penalty), number(grade.score), number(assignment.max_score),
                         str(grade.needs_manual_grade).lower()])
    return rows


def export(course_dir: Path, to: str, path: Path, assignments: list[str] | None = None,
           canvas_ids: dict[str, str] | None = None) -> GradeSheet:
    """Write the course's grades as ``to`` (canvas, moodle or csv) to ``path``; returns what was exported."""
    book = read_gradebook(course_dir, assignments)
    if not book.students or not book.assignments:
        raise CourseLayoutError(f"the gradebook of {course_dir} has no {'students' if book.assignments else 'assignments'} "
                                "to export: grade first (`course grade ASSIGNMENT`)")
    unknown = sorted(set(canvas_ids or {}) - {a.name for a in book.assignments})
    if unknown:
        raise CourseLayoutError(f"--canvas-id names {', '.join(unknown)}, which this export does not include")
    rows = {"canvas": lambda: canvas_rows(book, canvas_ids or {}), "moodle": lambda: moodle_rows(book),
            "csv": lambda: plain_rows(book)}[to]()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    partial.replace(path)
    return book


def _time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat(sep=" ")
