"""``course export``: the gradebook of a class graded by the real nbgrader, in the layouts Canvas and Moodle document.

The class is conftest's ``class_with_late_work``: alice on time with her written answer not graded yet, bob 13 hours
late after his extension with a written answer graded by hand (10% of 2 points), carol on the class list
without a submission, dave never graded.
"""
from __future__ import annotations

import csv

import pytest

from conftest import TINY
from course.cli import main
from course.export import CANVAS_IDENTITY, CANVAS_POINTS_ROW, MOODLE_IDENTITY, PLAIN_COLUMNS


def export(course, to: str, *extra: str) -> list[list[str]]:
    path = course / f"{to}-grades.csv"
    assert main(["--root", str(course), "export", "--to", to, str(path), *extra]) == 0
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_canvas_gets_its_documented_layout_with_written_answers_and_late_penalties(class_with_late_work, capsys):
    rows = export(class_with_late_work, "canvas", "--canvas-id", "99=4242")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{TINY} (4242)"] == CANVAS_IDENTITY + [f"{TINY} (4242)"]
    assert rows[1] == [CANVAS_POINTS_ROW, "", "", "", "", "4"]
    assert rows[2:] == [["Archer, Alice", "101", "", "alice", "", "3"],
                        ["Baker, Jr., Bob", "102", "", "bob", "", "1.8"],
                        ["Cook, Carol", "103", "", "carol", "", "0"],
                        ["dave", "", "", "dave", "", ""]]
    out = capsys.readouterr().out
    assert "canvas export of 1 assignments for 4 students" in out
    assert "not graded, left empty: dave (99-tiny)" in out and "written answers not graded yet, counted as 0: alice (99-tiny)" in out


def test_moodle_gets_one_identifying_column_and_a_column_per_grade_item(class_with_late_work):
    rows = export(class_with_late_work, "moodle")
    assert rows[0] == ["Username", "Email address", "First name", "Last name", TINY] == MOODLE_IDENTITY + [TINY]
    assert rows[1:] == [["alice", "alice@example.org", "Alice", "Archer", "3"], ["bob", "bob@example.org", "Bob", "Baker, Jr.", "1.8"],
                        ["carol", "carol@example.org", "Carol", "Cook", "0"], ["dave", "", "", "", ""]]


def test_the_plain_csv_has_every_number_behind_a_grade(class_with_late_work):
    rows = export(class_with_late_work, "csv", "99")
    assert rows[0] == PLAIN_COLUMNS
    table = {row[0]: dict(zip(PLAIN_COLUMNS, row)) for row in rows[1:]}
    bob = table["bob"]
    assert (bob["submitted"], bob["seconds_late"], bob["raw_score"], bob["late_penalty"], bob["score"], bob["max_score"]) == (
        "2025-01-11 13:00:00", str(13 * 3600), "2", "0.2", "1.8", "4")
    assert (table["alice"]["score"], table["alice"]["needs_manual_grade"], table["alice"]["seconds_late"]) == ("3", "true", "0")
    assert (table["carol"]["submitted"], table["carol"]["score"]) == ("", "0") and table["dave"]["score"] == ""
    assert {row["duedate"] for row in table.values()} == {"2025-01-10 12:00:00"}


def test_the_export_stores_the_penalty_it_used(class_with_late_work):
    from nbgrader.api import Gradebook

    export(class_with_late_work, "csv")
    with Gradebook(f"sqlite:///{class_with_late_work / 'gradebook.db'}") as gradebook:
        assert float(gradebook.find_submission(TINY, "bob").late_submission_penalty) == pytest.approx(0.2)


def test_exporting_before_grading_says_to_grade_first(tiny_course, capsys):
    assert main(["--root", str(tiny_course), "export", "--to", "canvas", str(tiny_course / "canvas.csv")]) == 2
    assert "grade first" in capsys.readouterr().err and not (tiny_course / "gradebook.db").exists()
