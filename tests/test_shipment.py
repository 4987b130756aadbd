"""What a grading task carries: the files of a submission, and an assignment packed with its own gradebook."""
from __future__ import annotations

import datetime
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from course.grader.gradebook import sqlite_url, table_rows
from course.grader.grading import nbgrader_env
from course.grader.shipment import GRADEBOOK_FILE, Submission, package_assignment, read_files, read_submission, write_files

TINY = "99-tiny"
COURSE_ID = "ai-engineering-for-developers"
IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.toml"]


def test_a_submission_is_its_regular_files_and_never_what_a_link_points_at(tmp_path):
    folder = tmp_path / "submitted" / "ada" / TINY
    (folder / "data").mkdir(parents=True)
    (folder / f"{TINY}.ipynb").write_text("{}")
    (folder / "data" / "extra.csv").write_text("a,b\n")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "old.ipynb").write_text("{}")
    (tmp_path / "secret.txt").write_text("the instructor's")
    (folder / "innocent.txt").symlink_to(tmp_path / "secret.txt")

    submission = read_submission(tmp_path, TINY, "ada", IGNORE)
    assert submission.files == {f"{TINY}.ipynb": b"{}", "data/extra.csv": b"a,b\n"}
    assert Submission("ada", {**submission.files, "data/extra.csv": b"a,c\n"}).digest != submission.digest
    assert Submission("ada", {"renamed.ipynb": b"{}", "data/extra.csv": b"a,b\n"}).digest != submission.digest

    write_files(tmp_path / "copy", submission.files)
    assert read_files(tmp_path / "copy") == submission.files
    with pytest.raises(ValueError, match="outside"):
        write_files(tmp_path / "copy", {"../escaped.txt": b"x"})
    assert not (tmp_path / "escaped.txt").exists()


def test_an_assignment_is_packed_with_a_gradebook_of_its_own_that_names_no_student(tiny_course):
    generated = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course,
                               env=nbgrader_env(), capture_output=True, text=True)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    url = sqlite_url(tiny_course)
    with Gradebook(url, course_id=COURSE_ID) as gradebook:
        gradebook.add_student("ada", email="ada@example.org")

    package = package_assignment(tiny_course, TINY, url, ignore=IGNORE)
    assert sorted(package.files) == [GRADEBOOK_FILE, "nbgrader_config.py", f"source/{TINY}/{TINY}.ipynb"]
    assert package.notebooks == [TINY]
    packed = tiny_course.parent / "packed.db"
    packed.write_bytes(package.files[GRADEBOOK_FILE])
    original, copy = table_rows(url), table_rows(f"sqlite:///{packed}")
    assignment_tables = ["alembic_version", "assignment", "notebook", "base_cell", "source_cell", "grade_cells",
                         "solution_cells", "task_cells"]
    assert {table: copy[table] for table in assignment_tables} == {table: original[table] for table in assignment_tables}
    assert copy["course"] == [(COURSE_ID,)] and len(copy["grade_cells"]) == 3 and original["student"] and not copy["student"]
    assignment_tables.append("course")
    assert not any(rows for table, rows in copy.items() if table not in assignment_tables)

    # The digest follows what decides a grade: the due date, the source.
    with Gradebook(url, course_id=COURSE_ID) as gradebook:
        gradebook.update_or_create_assignment(TINY, duedate=datetime.datetime(2030, 1, 31, 12))
    due = package_assignment(tiny_course, TINY, url, ignore=IGNORE)
    assert due.digest != package.digest
    source = tiny_course / "source" / TINY / f"{TINY}.ipynb"
    source.write_text(source.read_text().replace("add(-4, 10), 6", "add(-4, 11), 7"))
    changed = package_assignment(tiny_course, TINY, url, ignore=IGNORE)
    assert changed.digest not in (package.digest, due.digest)
    # and the extensions a late penalty reads, which travel with the assignment
    (tiny_course / "extensions.csv").write_text(f"student_id,assignment,days\nada,{TINY},2\n")
    extended = package_assignment(tiny_course, TINY, url, ignore=IGNORE, course_files=["extensions.csv", "absent.csv"])
    assert extended.files["extensions.csv"] == (tiny_course / "extensions.csv").read_bytes() and "absent.csv" not in extended.files
    assert extended.digest != changed.digest
