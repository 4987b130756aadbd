"""Recording what a worker graded, on the instructor's machine: files, grades, and the record of what is done.

Only the instructor's ``course grade --cluster`` process holds the gradebook's credentials;
workers send their results back and ``record_graded`` writes them as ``nbgrader autograde``
and ``nbgrader generate_feedback`` would have:

- files: ``autograded/<student>/<assignment>/`` gets the submission's other files, the
  source's other files (they win) and the autograded notebooks; ``feedback/...`` gets the
  autograded folder's other files and the feedback pages (files a submission's code wrote
  while it ran stay on the worker);
- grades: the steps of the configured autograde pipeline that write grades (nbgrader's own
  ``SaveAutoGrades``, and the late-penalty step: ``course.grader.late.LatePenalties`` in the
  course's configuration), after the student and the submission (with the time in
  ``timestamp.txt``) are created or updated, exactly as nbgrader's ``Autograde`` does: one
  submission per student and assignment, manual grades kept;
- last, a row of ``course_grading`` (a table of the course's own beside nbgrader's): the
  digests of the submission and of the assignment it was graded against, the worker, and when
  it was queued, started, finished and recorded.

Grades and row are one database transaction, written through one gradebook the recorder keeps
open (nbgrader's steps would open their own per notebook and commit after every grade). That
row is the record of what is done: a rerun grades only students without one for the same
content (``graded_digests``), and a run killed before committing grades that student again.
A submission that could not be graded gets a row saying why and keeps no autograded folder.
"""
from __future__ import annotations

import os
import shutil
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

from nbgrader.api import Gradebook
from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select

GRADED, FAILED, NEEDS_PERSON = "graded", "failed", "needs-person"

RECORD = Table(
    "course_grading", MetaData(),
    Column("assignment", String(128), primary_key=True),
    Column("student", String(128), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("submission_digest", String(64), nullable=False),
    Column("assignment_digest", String(64), nullable=False),
    Column("worker", String(256), nullable=False),
    Column("queued", Float),
    Column("started", Float),
    Column("finished", Float),
    Column("recorded", Float),
    Column("message", Text, nullable=False),
)


class Recorder:
    """Writes results into one course folder and its gradebook (``db_url``), configured by the folder's ``nbgrader_config.py``."""

    def __init__(self, course_dir: Path, assignment: str, db_url: str, course_id: str):
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import PyFileConfigLoader

        self.course_dir = course_dir
        self.assignment = assignment
        self.db_url = db_url
        self.course_id = course_id
        self.config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
        self.coursedir = CourseDirectory(config=self.config)
        self.ignore = list(self.coursedir.ignore)
        # One gradebook for every write: nbgrader's own steps open a new one (a new SQLAlchemy engine, whose queries
        # are compiled afresh) for each notebook, which costs more than the writes themselves. Opening it first also
        # makes nbgrader's schema before our table: a table of ours in an empty database would make nbgrader skip
        # stamping its schema version.
        self.gradebook = Gradebook(db_url, course_id=course_id)
        self.engine = self.gradebook.engine
        RECORD.metadata.create_all(self.engine)

    def course_files(self) -> list[str]:
        """Files of the course folder, besides the configuration and the source, that grading reads: the late
        policy's extensions (``LatePenalties.extensions_file``)."""
        return [self.config.LatePenalties.get("extensions_file", "extensions.csv")]

    def close(self) -> None:
        """Release the database connections."""
        self.gradebook.close()

    def graded_digests(self) -> dict[str, tuple[str, str]]:
        """For each student graded for this assignment: the digests of the submission and of the assignment graded."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(RECORD.c.student, RECORD.c.submission_digest, RECORD.c.assignment_digest)
                                      .where(RECORD.c.assignment == self.assignment, RECORD.c.outcome == GRADED))
            return {student: (submission, assignment) for student, submission, assignment in rows}

    def record_graded(self, student: str, notebooks: dict[str, str], feedback: dict[str, str], **row) -> None:
        """Write a graded submission's files and grades, then its record ``row`` (digests, worker, times)."""
        import nbformat

        autograded = self._folder("autograded", student)
        pages = self._folder("feedback", student)
        submitted = self._folder("submitted", student)
        for folder in (autograded, pages):
            shutil.rmtree(folder, ignore_errors=True)
        _copy_other_files(submitted, autograded, self.ignore)
        _copy_other_files(self.course_dir / "source" / self.assignment, autograded, self.ignore)
        for name, text in notebooks.items():
            (autograded / f"{name}.ipynb").write_text(text)
        _copy_other_files(autograded, pages, self.ignore)
        for name, text in feedback.items():
            (pages / f"{name}.html").write_text(text)

        graded = {name: (nbformat.reads(text, as_version=4),
                         {"nbgrader": {"db_url": self.db_url, "assignment": self.assignment, "notebook": name, "student": student},
                          "metadata": {"path": str(submitted), "name": name}})
                  for name, text in notebooks.items()}
        steps = self._grade_savers()
        others = [step for step in steps if not _writes_through_recorder(step)]
        with self._transaction() as connection:
            self._create_submission(student, self.coursedir.get_existing_timestamp(str(submitted)), set(notebooks))
            for notebook, resources in graded.values():
                for step in steps:
                    if step not in others:
                        self._save_grades(step(config=self.config), notebook, resources)
            if not others:
                self._write_row(connection, student, GRADED, message="", **row)
        if others:
            # Steps that open a gradebook of their own (nbgrader's AssignLatePenalties, say) run after the commit,
            # as nbgrader runs them, so they see the submission; the row comes last, after them.
            for notebook, resources in graded.values():
                for step in others:
                    step(config=self.config).preprocess(notebook, resources)
            with self.engine.begin() as connection:
                self._write_row(connection, student, GRADED, message="", **row)

    @contextmanager
    def _transaction(self):
        """One database transaction for everything written about one submission, its record row included.

        nbgrader's steps commit after every grade (on SQLite, a flush to disk each); inside, the
        gradebook's session is joined to this transaction, their commits only send the changes,
        and the submission's grades and row are committed together, or not at all."""
        from sqlalchemy.orm import Session

        own_session = self.gradebook.db
        with self.engine.connect() as connection, connection.begin():
            self.gradebook.db = Session(bind=connection, autoflush=True, join_transaction_mode="rollback_only")
            try:
                yield connection
            finally:
                self.gradebook.db.close()
                self.gradebook.db = own_session

    def _grade_savers(self) -> list[type]:
        """The steps of the configured autograde pipeline that write grades: nbgrader's ``SaveAutoGrades`` and the
        late-penalty step (nbgrader's ``AssignLatePenalties`` or a subclass, such as ``course.grader.late.LatePenalties``),
        in their configured order."""
        from nbgrader.converters import Autograde
        from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades
        from traitlets.utils.importstring import import_item

        configured = self.config.Autograde.get("autograde_preprocessors", Autograde.autograde_preprocessors.default_value)
        steps = [import_item(step) if isinstance(step, str) else step for step in configured]
        return [step for step in steps if issubclass(step, (SaveAutoGrades, AssignLatePenalties))]

    def _save_grades(self, step, notebook, resources: dict) -> None:
        """Run one grade-writing step on ``notebook`` through the recorder's open gradebook: nbgrader's ``SaveAutoGrades``
        (its cell-by-cell writes, without the new gradebook its ``preprocess`` opens), or ``LatePenalties``
        (``record_lateness``)."""
        from nbgrader.preprocessors import NbGraderPreprocessor

        ids = resources["nbgrader"]
        if _saves_autogrades(type(step)):
            step.notebook_id, step.assignment_id, step.student_id = ids["notebook"], ids["assignment"], ids["student"]
            step.db_url, step.gradebook = ids["db_url"], self.gradebook
            NbGraderPreprocessor.preprocess(step, notebook, resources)
        else:
            step.record_lateness(self.gradebook, resources)

    def record_not_graded(self, student: str, outcome: str, message: str, **row) -> None:
        """Record that ``student``'s submission could not be graded and why; no autograded folder is left behind."""
        shutil.rmtree(self._folder("autograded", student), ignore_errors=True)
        with self.engine.begin() as connection:
            self._write_row(connection, student, outcome, message=message, **row)

    def _folder(self, area: str, student: str) -> Path:
        return self.course_dir / area / student / self.assignment

    def _create_submission(self, student: str, timestamp, notebooks: set[str]) -> None:
        """Student and submission, as nbgrader's ``Autograde.init_assignment`` makes them; a notebook not handed in scores 0."""
        from sqlalchemy.exc import SAWarning

        gradebook = self.gradebook
        with warnings.catch_warnings():
            # nbgrader's add_submission builds related rows before adding them to its session, which
            # SQLAlchemy 2 remarks on; nbgrader autograde's own log carries the same remarks.
            warnings.simplefilter("ignore", SAWarning)
            gradebook.update_or_create_student(student)
            if timestamp:
                gradebook.update_or_create_submission(self.assignment, student, timestamp=timestamp)
            else:
                gradebook.update_or_create_submission(self.assignment, student)
            for notebook in gradebook.find_assignment(self.assignment).notebooks:
                if notebook.name not in notebooks:
                    for grade in gradebook.find_submission_notebook(notebook.name, self.assignment, student).grades:
                        grade.auto_score = 0
                        grade.needs_manual_grade = False
            gradebook.db.commit()

    def _write_row(self, connection, student: str, outcome: str, *, message: str, submission_digest: str,
                   assignment_digest: str, worker: str, queued: float | None = None, started: float | None = None,
                   finished: float | None = None) -> None:
        connection.execute(delete(RECORD).where(RECORD.c.assignment == self.assignment, RECORD.c.student == student))
        connection.execute(insert(RECORD).values(
            assignment=self.assignment, student=student, outcome=outcome, submission_digest=submission_digest,
            assignment_digest=assignment_digest, worker=worker, queued=queued, started=started, finished=finished,
            recorded=time.time(), message=message))


def _saves_autogrades(step: type) -> bool:
    """Whether ``step`` is nbgrader's ``SaveAutoGrades`` (or a subclass keeping its ``preprocess``)."""
    from nbgrader.preprocessors import SaveAutoGrades

    return issubclass(step, SaveAutoGrades) and step.preprocess is SaveAutoGrades.preprocess


def _writes_through_recorder(step: type) -> bool:
    """Whether the recorder can run ``step`` through its own gradebook and transaction (``Recorder._save_grades``)."""
    from course.grader.late import LatePenalties

    return _saves_autogrades(step) or issubclass(step, LatePenalties)


def _copy_other_files(source: Path, target: Path, ignore: list[str]) -> None:
    """Copy every file under ``source`` but notebooks and what nbgrader ignores into ``target``, as nbgrader's
    converters do; like the files shipped to workers, regular files only (a symbolic link is not followed)."""
    from nbgrader.utils import find_all_files

    target.mkdir(parents=True, exist_ok=True)
    for path in find_all_files(str(source), [*ignore, "*.ipynb"]):
        if os.path.islink(path):
            continue
        destination = target / Path(path).relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, destination)
