"""``course export``: the gradebook of a class graded by the real nbgrader, in the layouts Canvas and Moodle document.

The class (the tiny assignment, 3 autograded points and a 1-point written answer, due 2025-01-10 12:00 UTC):
alice hands in the solution on time and nobody grades her written answer; bob hands in a wrong answer
worth 1 point 25 hours late with a half-day extension (13 hours late: one day started, 10%), and his
written answer is graded 1 point after autograding, so his penalty becomes 10% of 2; carol is on the
class list and hands in nothing; dave's submission was never graded.
"""
from __future__ import annotations

import csv
import shutil
import warnings

import nbformat
import pytest
from sqlalchemy.exc import SAWarning

from conftest import FIXTURES, TINY
from course.assignments import notebook_path, read_notebook
from course.cli import main
from course.export import CANVAS_IDENTITY, CANVAS_POINTS_ROW, MOODLE_IDENTITY, PLAIN_COLUMNS
from course.grader.grading import grade_class, run_nbgrader_checked
from course.mutants import apply_batch, load_mutants

ROSTER = ("id,first_name,last_name,email,lms_user_id\nalice,Alice,Archer,alice@example.org,101\n"
          'bob,Bob,"Baker, Jr.",bob@example.org,102\ncarol,Carol,Cook,carol@example.org,103\ndave,,,,\n')


@pytest.fixture(scope="module")
def graded_class(built_tiny_course, tmp_path_factory):
    from nbgrader.api import Gradebook

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


def export(course, to: str, *extra: str) -> list[list[str]]:
    path = course / f"{to}-grades.csv"
    assert main(["--root", str(course), "export", "--to", to, str(path), *extra]) == 0
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_canvas_gets_its_documented_layout_with_written_answers_and_late_penalties(graded_class, capsys):
    rows = export(graded_class, "canvas", "--canvas-id", "99=4242")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{TINY} (4242)"] == CANVAS_IDENTITY + [f"{TINY} (4242)"]
    assert rows[1] == [CANVAS_POINTS_ROW, "", "", "", "", "4"]
    assert rows[2:] == [["Archer, Alice", "101", "", "alice", "", "3"],
                        ["Baker, Jr., Bob", "102", "", "bob", "", "1.8"],
                        ["Cook, Carol", "103", "", "carol", "", "0"],
                        ["dave", "", "", "dave", "", ""]]
    out = capsys.readouterr().out
    assert "canvas export of 1 assignments for 4 students" in out
    assert "not graded, left empty: dave (99-tiny)" in out and "written answers not graded yet, counted as 0: alice (99-tiny)" in out


def test_moodle_gets_one_identifying_column_and_a_column_per_grade_item(graded_class):
    rows = export(graded_class, "moodle")
    assert rows[0] == ["Username", "Email address", "First name", "Last name", TINY] == MOODLE_IDENTITY + [TINY]
    assert rows[1:] == [["alice", "alice@example.org", "Alice", "Archer", "3"], ["bob", "bob@example.org", "Bob", "Baker, Jr.", "1.8"],
                        ["carol", "carol@example.org", "Carol", "Cook", "0"], ["dave", "", "", "", ""]]


def test_the_plain_csv_has_every_number_behind_a_grade(graded_class):
    rows = export(graded_class, "csv", "99")
    assert rows[0] == PLAIN_COLUMNS
    table = {row[0]: dict(zip(PLAIN_COLUMNS, row)) for row in rows[1:]}
    bob = table["bob"]
    assert (bob["submitted"], bob["seconds_late"], bob["raw_score"], bob["late_penalty"], bob["score"], bob["max_score"]) == (
        "2025-01-11 13:00:00", str(13 * 3600), "2", "0.2", "1.8", "4")
    assert (table["alice"]["score"], table["alice"]["needs_manual_grade"], table["alice"]["seconds_late"]) == ("3", "true", "0")
    assert (table["carol"]["submitted"], table["carol"]["score"]) == ("", "0") and table["dave"]["score"] == ""
    assert {row["duedate"] for row in table.values()} == {"2025-01-10 12:00:00"}


def test_the_export_stores_the_penalty_it_used(graded_class):
    from nbgrader.api import Gradebook

    export(graded_class, "csv")
    with Gradebook(f"sqlite:///{graded_class / 'gradebook.db'}") as gradebook:
        assert float(gradebook.find_submission(TINY, "bob").late_submission_penalty) == pytest.approx(0.2)


def test_exporting_before_grading_says_to_grade_first(tiny_course, capsys):
    assert main(["--root", str(tiny_course), "export", "--to", "canvas", str(tiny_course / "canvas.csv")]) == 2
    assert "grade first" in capsys.readouterr().err and not (tiny_course / "gradebook.db").exists()
