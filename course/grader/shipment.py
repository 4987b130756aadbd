"""What a grading task carries to a Dask worker, and what it brings back.

Workers share no folder with the instructor, so every task is self-contained:

- ``AssignmentPackage``: a course folder ready to autograde one assignment, as files: the
  course's ``nbgrader_config.py`` (and its ``extensions.csv``, which late penalties read),
  ``source/<assignment>/`` and a SQLite gradebook holding
  what ``nbgrader generate_assignment`` recorded about the assignment in the instructor's
  gradebook (cells, checksums, due date), so a worker grades at once, without generating
  anything. It holds no credentials: the gradebook's URL never leaves the instructor's machine.
- ``Submission``: the files of ``submitted/<student>/<assignment>/`` (regular files only: a
  symbolic link handed in could point at any file of the instructor's machine).
- ``Outcome``: what the worker's nbgrader made of it: the autograded notebooks, the feedback
  pages, nbgrader's verdict and log, which worker graded it and when.

Digests identify the content: ``course.grader.record`` keeps them beside each result, so a
rerun grades only submissions (or assignments) that changed.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

GRADEBOOK_FILE = "gradebook.db"


@dataclass(frozen=True)
class AssignmentPackage:
    """A ready course folder for grading ``assignment``, as files; ``digest`` covers what decides a grade."""

    assignment: str
    files: dict[str, bytes]
    digest: str
    code_digest: str

    @property
    def notebooks(self) -> list[str]:
        """Names (without ``.ipynb``) of the assignment's notebooks."""
        prefix = f"source/{self.assignment}/"
        return sorted(path[len(prefix):-len(".ipynb")] for path in self.files
                      if path.startswith(prefix) and path.endswith(".ipynb") and "/" not in path[len(prefix):])


@dataclass(frozen=True)
class Submission:
    """One student's handed-in files of an assignment (paths relative to the submission folder)."""

    student: str
    files: dict[str, bytes]

    @property
    def digest(self) -> str:
        """A hash of every file's path and content."""
        return files_digest(self.files)


@dataclass
class Outcome:
    """What grading a submission on a worker gave: nbgrader's verdict and log, the autograded
    notebooks and feedback pages (by notebook name), where it ran and when (seconds since the epoch).
    ``fault`` is the message of a grader fault (never a grade: see ``course.grader.GraderFault``)."""

    student: str
    graded: bool
    log: str
    worker: str
    fault: str = ""
    notebooks: dict[str, str] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)
    task_started: float = 0.0
    grading_started: float = 0.0
    grading_finished: float = 0.0
    task_finished: float = 0.0


def read_files(folder: Path, ignore: list[str] | None = None) -> dict[str, bytes]:
    """Every regular file under ``folder`` (symbolic links skipped), by path relative to it, except
    those nbgrader's ``ignore`` patterns exclude."""
    from nbgrader.utils import find_all_files

    files = {}
    for path in find_all_files(str(folder), ignore or []):
        if os.path.isfile(path) and not os.path.islink(path):
            files[Path(path).relative_to(folder).as_posix()] = Path(path).read_bytes()
    return files


def write_files(folder: Path, files: dict[str, bytes | str]) -> None:
    """Write ``files`` (relative path -> content) under ``folder``; a path that would leave ``folder`` is refused."""
    root = folder.resolve()
    for name, content in files.items():
        target = (root / name).resolve()
        if root not in target.parents:
            raise ValueError(f"refusing to write {name!r} outside {folder}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)


def files_digest(files: dict[str, bytes], *extra: str) -> str:
    """A SHA-256 over ``files`` (paths and contents, in path order) and ``extra`` strings."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{len(name)}:{name}:{len(files[name])}:".encode())
        digest.update(files[name])
    for text in extra:
        digest.update(f"{len(text)}:{text}".encode())
    return digest.hexdigest()


def code_digest() -> str:
    """A SHA-256 over every file of the installed ``course`` package: grading code, checks and data.

    Instructor and workers must run the same course code, or the same submission could get
    different grades on different machines.
    """
    package = Path(__file__).resolve().parents[1]
    return files_digest(read_files(package, ["__pycache__", "*.pyc"]))


def package_assignment(course_dir: Path, assignment: str, db_url: str, *, ignore: list[str],
                       course_files: list[str] = ()) -> AssignmentPackage:
    """Pack ``course_dir``'s config and source of ``assignment`` with a gradebook holding what ``nbgrader
    generate_assignment`` recorded about it in the gradebook at ``db_url`` (run it first); ``course_files`` (paths
    relative to ``course_dir``, such as the late policy's extensions) go along when they exist."""
    gradebook, duedate = assignment_gradebook(db_url, assignment)
    inputs = {"nbgrader_config.py": (course_dir / "nbgrader_config.py").read_bytes(),
              **{name: (course_dir / name).read_bytes() for name in course_files if (course_dir / name).is_file()},
              **{f"source/{assignment}/{name}": content for name, content in read_files(course_dir / "source" / assignment, ignore).items()}}
    return AssignmentPackage(assignment, {**inputs, GRADEBOOK_FILE: gradebook}, files_digest(inputs, assignment, str(duedate)),
                             code_digest())


def assignment_gradebook(db_url: str, assignment: str) -> tuple[bytes, object]:
    """A new SQLite gradebook holding only ``assignment`` as the gradebook at ``db_url`` records it (its course, due
    date, notebooks and cells, the schema version), and that due date."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, insert, select, text

    tables = Base.metadata.tables
    source = create_engine(db_url)
    with tempfile.TemporaryDirectory(prefix="assignment-gradebook-") as scratch:
        path = Path(scratch) / GRADEBOOK_FILE
        target = create_engine(f"sqlite:///{path}")
        try:
            with source.connect() as reading, target.begin() as writing:
                def copy(table: str, condition) -> list[dict]:
                    rows = [dict(row) for row in reading.execute(select(tables[table]).where(condition)).mappings()]
                    if rows:
                        writing.execute(insert(tables[table]), rows)
                    return rows

                Base.metadata.create_all(writing)
                rows = [dict(row) for row in reading.execute(select(tables["assignment"]).where(tables["assignment"].c.name == assignment)).mappings()]
                if not rows:
                    from course.grader.grading import GradingError

                    raise GradingError(f"the gradebook has no assignment {assignment!r}: run `nbgrader generate_assignment "
                                       f"{assignment}` first")
                copy("course", tables["course"].c.id == rows[0]["course_id"])
                copy("assignment", tables["assignment"].c.id == rows[0]["id"])
                notebooks = [row["id"] for row in copy("notebook", tables["notebook"].c.assignment_id == rows[0]["id"])]
                copy("source_cell", tables["source_cell"].c.notebook_id.in_(notebooks))
                cells = [row["id"] for row in copy("base_cell", tables["base_cell"].c.notebook_id.in_(notebooks))]
                for kind in ("grade_cells", "solution_cells", "task_cells"):
                    copy(kind, tables[kind].c.id.in_(cells))
                writing.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
                for (version,) in reading.exec_driver_sql("SELECT version_num FROM alembic_version"):
                    writing.execute(text("INSERT INTO alembic_version (version_num) VALUES (:version)"), {"version": version})
        finally:
            source.dispose()
            target.dispose()
        return path.read_bytes(), rows[0]["duedate"]


def read_submission(course_dir: Path, assignment: str, student: str, ignore: list[str]) -> Submission:
    """The files ``student`` handed in for ``assignment`` in ``course_dir/submitted``."""
    return Submission(student, read_files(course_dir / "submitted" / student / assignment, ignore))
