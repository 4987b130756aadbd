import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

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


def course_with_its_own_package(tiny_course: Path) -> Path:
    """The tiny course holding a copy of the course package, as a second clone of the repository does; its
    checks print a line of their own, so a grade shows which package the kernel imported."""
    import course

    shutil.copytree(Path(course.__file__).parent, tiny_course / "course", ignore=shutil.ignore_patterns("__pycache__"))
    checks = tiny_course / "course" / "checks.py"
    checks.write_text(checks.read_text().replace('print(f"✓ {name}: all visible checks passed")',
                                                 'print(f"✓ {name}: all visible checks passed (the copy\'s checks)")'))
    return tiny_course


def grade_in(folder: Path, *extra) -> subprocess.CompletedProcess:
    """``course grade`` run from ``folder``, as an instructor runs it in a clone: Python imports ``course`` from there."""
    return subprocess.run([sys.executable, "-m", "course.cli", "grade", TINY, "--jobs", "1", *extra], cwd=folder,
                          capture_output=True, text=True, timeout=600)


def test_a_course_folder_with_its_own_package_is_graded_with_that_package(tiny_course):
    folder = course_with_its_own_package(tiny_course)
    make_class(folder, TINY, folder)
    done = grade_in(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {row["student"]: (row["score"], row["needs_attention"]) for row in csv.DictReader((folder / "grades.csv").open())}
    assert rows["perfect"] == ("3", "") and rows["blank"] == ("0", "")
    graded = (folder / "autograded" / "perfect" / TINY / f"{TINY}.ipynb").read_text()
    assert "the copy's checks" in graded


@pytest.mark.parametrize("fault", ["the guard cannot start", "the kernel cannot start"])
def test_a_fault_before_the_first_cell_stops_grading_without_a_grade(tiny_course, fault):
    folder = tiny_course
    if fault == "the guard cannot start":
        folder = course_with_its_own_package(tiny_course)
        with (folder / "course" / "grader" / "guard.py").open("a") as guard:
            guard.write("\n\ndef install(config):\n    raise ImportError('a guard broken on purpose')\n")
        cause = "the test guard could not start in the grading kernel (ImportError: a guard broken on purpose)"
    else:
        with (folder / "nbgrader_config.py").open("a") as config:
            config.write("\nc.SandboxedKernelManager.memory_mb = 16\n")
        cause = "the grading kernel did not start"
    make_class(folder, TINY, folder)
    done = grade_in(folder)
    assert done.returncode == 2, done.stdout + done.stderr
    assert cause in done.stderr and "not of any submission" in done.stderr and "Fix the cause" in done.stderr
    assert not (folder / "grades.csv").exists()
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        graded = [grade.auto_score for submission in gradebook.assignment_submissions(TINY)
                  for notebook in submission.notebooks for grade in notebook.grades]
    assert not any(score is not None for score in graded)
    assert not list((folder / "autograded").glob(f"*/{TINY}/{TINY}.ipynb"))
