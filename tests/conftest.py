"""Shared fixtures: the repository itself, a tiny course folder for fast nbgrader runs, and a tiny class graded once."""
from __future__ import annotations

import copy
import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = "99-tiny"


def pytest_collection_modifyitems(items) -> None:
    """Longest first, so that the two pytest-xdist workers of ``make test`` finish together: the verification of
    each notebook (minutes: every mutant batch runs the notebook), then the other tests marked slow, then the rest,
    each group in file order. (A long test handed out last keeps one core busy while the other idles.)"""
    items.sort(key=lambda item: (item.originalname != "test_course_assignment_verifies", item.get_closest_marker("slow") is None))


@pytest.fixture(scope="session")
def repo() -> Path:
    """The course repository under test."""
    return REPO


@pytest.fixture(scope="session")
def built_tiny_course(tmp_path_factory) -> Path:
    """A course folder holding only the tiny assignment, with its release built once."""
    from course.build import build

    folder = tmp_path_factory.mktemp("tiny-course")
    shutil.copy2(REPO / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(FIXTURES / TINY, folder / "source" / TINY)
    build(folder, [TINY])
    return folder


@pytest.fixture
def tiny_course(built_tiny_course, tmp_path) -> Path:
    """A fresh copy of the tiny course that a test may change."""
    folder = tmp_path / "course"
    shutil.copytree(built_tiny_course, folder)
    return folder


@pytest.fixture(scope="session")
def graded_tiny_class(built_tiny_course, tmp_path_factory):
    """The tiny course with four students graded: full marks, a wrong answer worth 1 of 3, blank, a broken file."""
    from course.assignments import nbgrader_meta, notebook_path, read_notebook
    from course.grader.grading import grade_class
    from course.mutants import load_mutants, mutants_path

    folder = tmp_path_factory.mktemp("report") / "course"
    shutil.copytree(built_tiny_course, folder)
    source = read_notebook(notebook_path(folder, "source", TINY))
    ignores_first = copy.deepcopy(source)
    wrong = next(m for m in load_mutants(mutants_path(folder, TINY)) if m.name == "ignores-the-first-argument")
    next(c for c in ignores_first.cells if nbgrader_meta(c).get("grade_id") == "add-numbers").source = wrong.code
    texts = {"ada": nbformat.writes(source), "bob": nbformat.writes(ignores_first),
             "cy": nbformat.writes(read_notebook(notebook_path(folder, "release", TINY))), "dee": '{"cells": ['}
    for student, text in texts.items():
        target = folder / "submitted" / student / TINY / f"{TINY}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(text)
    return folder, grade_class(folder, TINY, jobs=2)


ROSTER = ("id,first_name,last_name,email,lms_user_id\nalice,Alice,Archer,alice@example.org,101\n"
          'bob,Bob,"Baker, Jr.",bob@example.org,102\ncarol,Carol,Cook,carol@example.org,103\ndave,,,,\n')


@pytest.fixture(scope="session")
def class_with_late_work(built_tiny_course, tmp_path_factory):
    """The tiny assignment (3 autograded points, a 1-point written answer) due 2025-01-10 12:00 UTC, graded by nbgrader:
    alice hands in the solution on time and nobody grades her written answer; bob hands in a wrong answer worth 1
    point 25 hours late with a half-day extension (13 hours late: one day started, 10%), and his written answer is
    graded 1 point after autograding (his penalty becomes 10% of 2); carol is on the class list and hands in
    nothing; dave's submission was never graded."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    from course.assignments import notebook_path, read_notebook
    from course.grader.grading import grade_class, run_nbgrader_checked
    from course.mutants import apply_batch, load_mutants

    course = tmp_path_factory.mktemp("export") / "course"
    shutil.copytree(built_tiny_course, course)
    run_nbgrader_checked(["generate_assignment", TINY, "--force"], course)
    run_nbgrader_checked(["db", "assignment", "add", TINY, "--duedate=2025-01-10 12:00:00 UTC"], course)
    (course / "roster.csv").write_text(ROSTER)
    run_nbgrader_checked(["db", "student", "import", "roster.csv"], course)
    (course / "extensions.csv").write_text("student_id,assignment,days\nbob,99-tiny,0.5\n")
    source = read_notebook(notebook_path(course, "source", TINY))
    wrong = next(m for m in load_mutants(FIXTURES / TINY / "mutants.toml") if m.name == "ignores-the-first-argument")
    for student, batch, handed_in in [("alice", {}, "2025-01-10 11:00:00.000000 UTC"),
                                      ("bob", {wrong.exercise: wrong}, "2025-01-11 13:00:00.000000 UTC")]:
        folder = course / "submitted" / student / TINY
        folder.mkdir(parents=True)
        nbformat.write(apply_batch(source, batch), folder / f"{TINY}.ipynb")
        (folder / "timestamp.txt").write_text(handed_in)
    results = grade_class(course, TINY, jobs=2)
    assert {s: g.score for s, g in results.items()} == {"alice": 3, "bob": 1}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        # As Formgrader records a written answer graded by hand.
        grade = gradebook.find_grade("why-add", TINY, TINY, "bob")
        grade.manual_score, grade.needs_manual_grade = 1.0, False
        gradebook.db.commit()
        assert float(gradebook.find_submission(TINY, "bob").late_submission_penalty) == pytest.approx(0.1)
        with warnings.catch_warnings():  # nbgrader's add_submission trips SQLAlchemy's autoflush warnings
            warnings.simplefilter("ignore", SAWarning)
            gradebook.update_or_create_submission(TINY, "dave")  # as when nbgrader stops before grading it
    return course


def readable_text(page: str) -> str:
    """All a reader of an HTML page can see: its source with entities decoded, and its text without tags
    (code highlighting splits code into many tags, so hidden code would not show up in the source alone)."""
    return html.unescape(page) + "\n" + html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (tests/postgres.py); each test makes its own database."""
    from postgres import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    yield server
    server.stop()
