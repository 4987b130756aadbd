import csv
import os
import signal
import subprocess
import sys
import time

from course.demo import make_class
from course.grader.grading import GradedSubmission, exercise_table, grades_table, write_grades_csv

TINY = "99-tiny"


def test_tables_and_csv_mark_who_needs_attention(tiny_course, tmp_path):
    results = {
        "ada": GradedSubmission("ada", {"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0},
                                {"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0}),
        "bob": GradedSubmission("bob", {"add-numbers-visible": 1.0, "add-numbers-hidden": 0.0},
                                {"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0}, attention=["the kernel died"]),
    }
    table = grades_table({TINY: results})
    assert "ada" in table and "3/3" in table and "1/3 !" in table
    per_exercise = exercise_table(tiny_course, TINY, results)
    assert "add-numbers" in per_exercise and "67%" in per_exercise and "1/2" in per_exercise
    write_grades_csv({TINY: results}, tmp_path / "grades.csv")
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert [(r["student"], r["score"], r["needs_attention"], r["add-numbers-hidden"]) for r in rows] == [
        ("ada", "3", "", "2"), ("bob", "1", "the kernel died", "0")]


def grade(course, *extra):
    return subprocess.Popen([sys.executable, "-m", "course.cli", "--root", str(course), "grade", TINY, "--jobs", "2", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def test_killing_a_run_and_running_again_gives_the_same_grades(tiny_course):
    make_class(tiny_course, TINY, tiny_course)
    first = grade(tiny_course)
    deadline = time.monotonic() + 120
    while not list((tiny_course / "autograded").glob(f"*/{TINY}/{TINY}.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    second = grade(tiny_course)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, out + err
    rows = {row["student"]: (row["score"], row["needs_attention"]) for row in csv.DictReader((tiny_course / "grades.csv").open())}
    assert rows == {"blank": ("0", ""), "perfect": ("3", ""), "partial-01": ("0", ""), "partial-02": ("1", ""),
                    "partial-03": ("0", ""), "partial-04": ("3", "")}
    assert "add-numbers" in out and "grades.csv" in out
    assert (tiny_course / "feedback" / "perfect" / TINY / f"{TINY}.html").is_file()
    assert f"report: {tiny_course / 'report.html'}" in out and "<img" in (tiny_course / "report.html").read_text()


def test_a_worker_grades_students_one_after_another_and_survives_a_failure(tiny_course):
    from course.grader.grading import GradingWorker, run_nbgrader_checked

    make_class(tiny_course, TINY, tiny_course)
    run_nbgrader_checked(["generate_assignment", TINY, "--force"], tiny_course)
    worker = GradingWorker(tiny_course, TINY, feedback=True, nbgrader_args=())
    try:
        verdict, log = worker.grade("nobody")
        assert verdict == "failed" and "submitted/nobody" in log
        verdict, log = worker.grade("perfect")
        assert verdict == "ok" and "perfect" in log
        assert worker.alive
    finally:
        worker.close()
    assert (tiny_course / "autograded" / "perfect" / TINY / f"{TINY}.ipynb").is_file()
    assert (tiny_course / "feedback" / "perfect" / TINY / f"{TINY}.html").is_file()
    assert not (tiny_course / "autograded" / "blank").exists()


def test_the_worker_refuses_to_run_without_its_token(tiny_course):
    done = subprocess.run([sys.executable, "-m", "course.grader.worker", TINY], cwd=tiny_course, capture_output=True, text=True,
                          env={key: value for key, value in os.environ.items() if key != "COURSE_WORKER_TOKEN"})
    assert done.returncode == 2 and "COURSE_WORKER_TOKEN" in done.stderr
