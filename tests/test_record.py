"""Recording a worker's result on the instructor's machine: the files nbgrader would leave, its grades, and the record of what is done."""
from __future__ import annotations

import datetime
import subprocess
import sys

import nbformat
import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, select

from course.assignments import is_autograded_test, nbgrader_meta, notebook_path
from course.grader.gradebook import sqlite_url
from course.grader.grading import nbgrader_env
from course.grader.record import FAILED, RECORD, Recorder

TINY = "99-tiny"
COURSE_ID = "ai-engineering-for-developers"


def autograded_notebook(course) -> str:
    """The tiny solution as nbgrader would have run it: the visible test passed, the hidden one raised."""
    notebook = nbformat.read(notebook_path(course, "source", TINY), as_version=4)
    for cell in notebook.cells:
        if is_autograded_test(cell):
            failed = nbgrader_meta(cell)["grade_id"] == "add-numbers-hidden"
            cell.outputs = [nbformat.v4.new_output("error", ename="CheckFailed", evalue="no", traceback=[])] if failed else \
                [nbformat.v4.new_output("stream", name="stdout", text="add: passed\n")]
    return nbformat.writes(notebook)


def test_a_result_is_recorded_as_nbgrader_autograde_and_generate_feedback_leave_it(tiny_course):
    generated = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course,
                               env=nbgrader_env(), capture_output=True, text=True)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    with Gradebook(sqlite_url(tiny_course), course_id=COURSE_ID) as gradebook:
        gradebook.update_or_create_assignment(TINY, duedate=datetime.datetime(2030, 1, 30, 12))
    submitted = tiny_course / "submitted" / "ada" / TINY
    submitted.mkdir(parents=True)
    (submitted / f"{TINY}.ipynb").write_text("handed in")
    (submitted / "timestamp.txt").write_text("2030-01-31 12:30:00.000000 UTC")
    (submitted / "answers.csv").write_text("mine\n")
    (tiny_course / "source" / TINY / "data.csv").write_text("the course's\n")
    url = sqlite_url(tiny_course)
    recorder = Recorder(tiny_course, TINY, url, COURSE_ID)
    row = {"submission_digest": "s" * 64, "assignment_digest": "a" * 64, "worker": "tcp://10.0.0.7:4000",
           "queued": 1.0, "started": 2.0, "finished": 5.0}
    try:
        recorder.record_graded("ada", {TINY: autograded_notebook(tiny_course)}, {TINY: "<html>feedback</html>"}, **row)

        autograded, feedback = tiny_course / "autograded" / "ada" / TINY, tiny_course / "feedback" / "ada" / TINY
        assert sorted(path.name for path in autograded.iterdir()) == [f"{TINY}.ipynb", "answers.csv", "data.csv", "timestamp.txt"]
        assert sorted(path.name for path in feedback.iterdir()) == [f"{TINY}.html", "answers.csv", "data.csv", "timestamp.txt"]
        assert (feedback / f"{TINY}.html").read_text() == "<html>feedback</html>"
        with Gradebook(url, course_id=COURSE_ID) as gradebook:
            submission = gradebook.find_submission(TINY, "ada")
            assert submission.timestamp == datetime.datetime(2030, 1, 31, 12, 30)
            grades = {grade.name: (grade.auto_score, grade.needs_manual_grade) for grade in submission.notebooks[0].grades}
            assert grades == {"add-numbers-visible": (1.0, False), "add-numbers-hidden": (0.0, False), "why-add": (None, True)}
            # The course's late policy (course.grader.late, as configured): a day and a half hour late is two days'
            # 10% of the point earned.
            assert submission.notebooks[0].late_submission_penalty == 0.2
            written = next(grade for grade in submission.notebooks[0].grades if grade.name == "why-add")
            written.manual_score = 1.0
            gradebook.db.commit()
        assert recorder.graded_digests() == {"ada": ("s" * 64, "a" * 64)}

        # Graded again (say, after a resubmission, and an extension): still one submission, the person's grade stays.
        (tiny_course / "extensions.csv").write_text(f"student_id,assignment,days\nada,{TINY},2\n")
        assert recorder.course_files() == ["extensions.csv"]
        recorder.record_graded("ada", {TINY: autograded_notebook(tiny_course)}, {TINY: "<html>again</html>"},
                               **{**row, "submission_digest": "t" * 64})
        with Gradebook(url, course_id=COURSE_ID) as gradebook:
            (submission,) = gradebook.assignment_submissions(TINY)
            assert {grade.name: grade.manual_score for grade in submission.notebooks[0].grades}["why-add"] == 1.0
            assert not submission.notebooks[0].late_submission_penalty
        assert recorder.graded_digests() == {"ada": ("t" * 64, "a" * 64)}

        recorder.record_not_graded("ada", FAILED, "nbgrader could not grade it: the disk is full", **row)
        assert not autograded.exists() and recorder.graded_digests() == {}
    finally:
        recorder.close()
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(select(RECORD)).mappings().all()
    engine.dispose()
    assert [(r["student"], r["outcome"], r["worker"], r["message"]) for r in rows] == [
        ("ada", FAILED, "tcp://10.0.0.7:4000", "nbgrader could not grade it: the disk is full")]


def test_a_write_that_fails_part_way_leaves_the_gradebook_as_it_was(tiny_course):
    """A submission's grades and its record row are one transaction: a late-policy file that cannot be read after the
    scores were saved leaves neither the scores nor a row saying the submission is done."""
    from course.assignments import CourseLayoutError

    generated = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course,
                               env=nbgrader_env(), capture_output=True, text=True)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    submitted = tiny_course / "submitted" / "ada" / TINY
    submitted.mkdir(parents=True)
    (submitted / f"{TINY}.ipynb").write_text("handed in")
    (tiny_course / "extensions.csv").write_text("student,days\nada,2\n")  # the wrong header: LatePenalties refuses it
    url = sqlite_url(tiny_course)
    recorder = Recorder(tiny_course, TINY, url, COURSE_ID)
    row = {"submission_digest": "s" * 64, "assignment_digest": "a" * 64, "worker": "tcp://10.0.0.7:4000"}
    try:
        with pytest.raises(CourseLayoutError, match="extensions.csv must have the header"):
            recorder.record_graded("ada", {TINY: autograded_notebook(tiny_course)}, {TINY: "<html>feedback</html>"}, **row)
        assert recorder.graded_digests() == {}
        with Gradebook(url, course_id=COURSE_ID) as gradebook:
            assert gradebook.students == [] and gradebook.assignment_submissions(TINY) == []
        (tiny_course / "extensions.csv").unlink()
        recorder.record_graded("ada", {TINY: autograded_notebook(tiny_course)}, {TINY: "<html>feedback</html>"}, **row)
        assert recorder.graded_digests() == {"ada": ("s" * 64, "a" * 64)}
    finally:
        recorder.close()
    with Gradebook(url, course_id=COURSE_ID) as gradebook:
        assert [student.id for student in gradebook.students] == ["ada"]
        grades = {grade.name: grade.auto_score for grade in gradebook.find_submission(TINY, "ada").notebooks[0].grades}
        assert grades == {"add-numbers-visible": 1.0, "add-numbers-hidden": 0.0, "why-add": None}


def test_nbgraders_own_late_penalty_step_is_recorded_after_the_grades(tiny_course):
    """A course configured with nbgrader's AssignLatePenalties (it opens a gradebook of its own) still gets its
    penalty recorded, and the row saying the submission is done."""
    with (tiny_course / "nbgrader_config.py").open("a") as config:
        config.write("\nfrom nbgrader.preprocessors import AssignLatePenalties\n"
                     "c.Autograde.autograde_preprocessors = [AssignLatePenalties if p is LatePenalties else p "
                     "for p in c.Autograde.autograde_preprocessors]\n"
                     "c.AssignLatePenalties.plugin_class = 'course.grader.late.PercentPerDayLate'\n")
    generated = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course,
                               env=nbgrader_env(), capture_output=True, text=True)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    url = sqlite_url(tiny_course)
    with Gradebook(url, course_id=COURSE_ID) as gradebook:
        gradebook.update_or_create_assignment(TINY, duedate=datetime.datetime(2030, 1, 30, 12))
    submitted = tiny_course / "submitted" / "ada" / TINY
    submitted.mkdir(parents=True)
    (submitted / f"{TINY}.ipynb").write_text("handed in")
    (submitted / "timestamp.txt").write_text("2030-01-31 12:30:00.000000 UTC")
    recorder = Recorder(tiny_course, TINY, url, COURSE_ID)
    try:
        recorder.record_graded("ada", {TINY: autograded_notebook(tiny_course)}, {TINY: "<html>feedback</html>"},
                               submission_digest="s" * 64, assignment_digest="a" * 64, worker="tcp://10.0.0.7:4000")
        assert recorder.graded_digests() == {"ada": ("s" * 64, "a" * 64)}
    finally:
        recorder.close()
    with Gradebook(url, course_id=COURSE_ID) as gradebook:
        notebook = gradebook.find_submission(TINY, "ada").notebooks[0]
        assert notebook.score == 1.0 and notebook.late_submission_penalty == 0.2
