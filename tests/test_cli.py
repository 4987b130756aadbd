import csv
import os
import subprocess
import sys

TINY = "99-tiny"


def course(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "course.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_the_commands():
    result = course("--help")
    assert result.returncode == 0
    for command in ("build", "verify", "grade", "bench", "demo", "report", "similarity", "export", "worker"):
        assert command in result.stdout


def test_unknown_assignment_is_a_clear_error(repo):
    result = course("build", "42", cwd=repo)
    assert result.returncode == 2
    assert "no assignment '42'" in result.stderr


def test_outside_a_course_folder_says_where_to_run(tmp_path):
    result = course("verify", cwd=tmp_path)
    assert result.returncode == 2 and "--root" in result.stderr


def test_grade_without_submissions_says_what_it_expected(tiny_course):
    result = course("--root", str(tiny_course), "grade", TINY)
    assert result.returncode == 2
    assert f"submitted/<student>/{TINY}/{TINY}.ipynb" in result.stderr


def test_demo_builds_grades_and_reports_a_class_outside_the_course(tiny_course, tmp_path):
    result = course("--root", str(tiny_course), "demo", "--jobs", "2", "--output", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["student"]: row for row in csv.DictReader((tmp_path / "demo" / "grades.csv").open())}
    assert set(rows) == {"perfect", "blank", "broken-file", "hostile", "copied-from", "copier", *(f"partial-{n:02d}" for n in range(1, 7))}
    assert [rows[s]["score"] for s in ("perfect", "blank", "broken-file", "hostile", "copied-from", "copier")] == ["3", "0", "0", "0", "3", "3"]
    assert rows["perfect"]["needs_attention"] == rows["blank"]["needs_attention"] == ""
    assert "not a readable notebook" in rows["broken-file"]["needs_attention"]
    assert "changed the grading environment" in rows["hostile"]["needs_attention"]
    assert "every demo student got the points its submission earns" in result.stdout
    assert f"report:   {tmp_path / 'demo' / 'report.html'}" in result.stdout
    assert (tmp_path / "demo" / "report.html").is_file()
    assert (tmp_path / "demo" / "autograded" / "perfect" / TINY / f"{TINY}.ipynb").is_file()
    assert not (tiny_course / "submitted").exists() and not (tiny_course / "gradebook.db").exists()


def test_cluster_commands_say_what_is_missing_before_they_connect(tiny_course, tmp_path):
    worker = course("worker", cwd=tmp_path)  # a worker machine needs no course folder, but a scheduler
    assert worker.returncode == 2 and "name the scheduler: its ADDRESS or --scheduler-file FILE" in worker.stderr
    # As dask-kubernetes starts it: the address in DASK_SCHEDULER_ADDRESS (here nobody listens there).
    from_environment = subprocess.run(
        [sys.executable, "-m", "course.cli", "worker", "--nthreads", "1", "--", "--death-timeout", "2", "--no-dashboard"],
        cwd=tmp_path, env={**os.environ, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"}, capture_output=True, text=True,
        timeout=120)
    assert from_environment.returncode == 1 and "Timed out starting worker" in from_environment.stderr
    unsafe = course("--root", str(tiny_course), "grade", TINY, "--cluster", "tcp://127.0.0.1:1", "--unsafe-no-sandbox")
    assert unsafe.returncode == 2 and "workers always grade in the sandbox" in unsafe.stderr
    passed_on = course("--root", str(tiny_course), "build", TINY, "--", "--nthreads", "2")
    assert passed_on.returncode == 2 and "`course build` takes no options after --" in passed_on.stderr
