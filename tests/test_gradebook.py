"""A PostgreSQL gradebook (a real, throwaway server): plain nbgrader, course grade, course report and the move from SQLite."""
from __future__ import annotations

import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from course.assignments import notebook_path
from course.grader.gradebook import DB_URL_VARIABLE, GradebookError, migrate_gradebook, sqlite_url, table_rows
from course.grader.grading import nbgrader_env

TINY = "99-tiny"
COURSE_ID = "ai-engineering-for-developers"


def hand_in(course, student, *, wrong=False):
    target = course / "submitted" / student / TINY / f"{TINY}.ipynb"
    target.parent.mkdir(parents=True)
    text = notebook_path(course, "source", TINY).read_text()
    target.write_text(text.replace("return a + b", "return 0") if wrong else text)


def course_command(*args, course, db_url=None):
    env = nbgrader_env(db_url)
    return subprocess.run([sys.executable, "-m", "course.cli", "--root", str(course), *args], capture_output=True, text=True, env=env)


def autograded_scores(db_url):
    with Gradebook(db_url, course_id=COURSE_ID) as gradebook:
        return {submission.student.id: submission.score for submission in gradebook.assignment_submissions(TINY)}


def every_grade(gradebook):
    return {(student, grade.name): (grade.score, grade.auto_score, grade.manual_score)
            for student in ("ada", "bob") for grade in gradebook.find_submission_notebook(TINY, TINY, student).grades}


def test_plain_nbgrader_course_grade_and_course_report_use_the_postgresql_gradebook(tiny_course, postgres):
    url = postgres.create_database("graded_class")
    hand_in(tiny_course, "ada")
    hand_in(tiny_course, "bob", wrong=True)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course, check=True,
                   capture_output=True, env=nbgrader_env(url))
    plain = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", TINY, "--student", "ada"], cwd=tiny_course,
                           capture_output=True, text=True, env=nbgrader_env(url))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert autograded_scores(url) == {"ada": 3}

    graded = course_command("grade", TINY, "--jobs", "2", course=tiny_course, db_url=url)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "postgresql+psycopg://course@/graded_class" in graded.stdout
    assert autograded_scores(url) == {"ada": 3, "bob": 0}
    reported = course_command("report", TINY, course=tiny_course, db_url=url)
    assert reported.returncode == 0, reported.stderr
    assert (tiny_course / "report.html").is_file()
    assert not (tiny_course / "gradebook.db").exists()


def test_a_scratch_folder_never_grades_into_the_shared_gradebook(tiny_course, postgres, tmp_path):
    url = postgres.create_database("untouched")
    demo = course_command("demo", "--jobs", "2", "--output", str(tmp_path / "demo"), course=tiny_course, db_url=url)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert table_rows(url) == {}
    assert (tmp_path / "demo" / "gradebook.db").is_file()


def test_a_gradebook_that_cannot_be_opened_stops_grading_with_what_to_check(tiny_course, postgres):
    hand_in(tiny_course, "ada")
    refused = course_command("grade", TINY, course=tiny_course, db_url=postgres.url("no_such_database"))
    assert refused.returncode == 2
    assert "cannot open the gradebook postgresql+psycopg://course@/no_such_database" in refused.stderr
    assert DB_URL_VARIABLE in refused.stderr
    assert not (tiny_course / "autograded").exists()


def test_moving_a_sqlite_gradebook_keeps_every_grade_comment_and_student(tiny_course, postgres):
    hand_in(tiny_course, "ada")
    hand_in(tiny_course, "bob", wrong=True)
    assert course_command("grade", TINY, "--jobs", "2", course=tiny_course).returncode == 0
    source = sqlite_url(tiny_course)
    with Gradebook(source, course_id=COURSE_ID) as gradebook:
        gradebook.add_student("cy", first_name="Cy", last_name="Young", email="cy@example.org")
        for grade in gradebook.find_submission_notebook(TINY, TINY, "bob").grades:
            grade.manual_score = 0.5 if grade.auto_score is not None else 1.5
        for comment in gradebook.find_submission_notebook(TINY, TINY, "bob").comments:
            comment.manual_comment = f"see me about {comment.name} – ünïcode too"
        gradebook.db.commit()
        before = every_grade(gradebook)

    target = postgres.create_database("moved")
    moved = course_command("gradebook", "migrate", "--to", target, course=tiny_course)
    assert moved.returncode == 0, moved.stderr
    assert "every row checked" in moved.stdout

    assert table_rows(source) == table_rows(target)
    with Gradebook(target, course_id=COURSE_ID) as gradebook:
        assert sorted(s.id for s in gradebook.students) == ["ada", "bob", "cy"]
        assert gradebook.find_student("cy").email == "cy@example.org"
        after = every_grade(gradebook)
        comments = [c.manual_comment for c in gradebook.find_submission_notebook(TINY, TINY, "bob").comments]
    assert after == before and len(after) >= 4
    assert comments and all("ünïcode" in comment for comment in comments)

    with pytest.raises(GradebookError, match="already holds a gradebook"):
        migrate_gradebook(source, target)
