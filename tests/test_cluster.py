"""``course grade --cluster`` through real processes: a throwaway PostgreSQL gradebook, a ``dask scheduler`` and two
``course worker`` processes (``dask worker`` with the course's plugin, one thread each, folders of their own) on loopback.

The scheduler allows one failure per task (``allowed-failures``, default 3), so a submission
that kills its worker is given up after two tries and the tests stay short.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest
from nbgrader.api import Gradebook
from sqlalchemy import create_engine, inspect, select

from course.assignments import notebook_path
from course.demo import make_class, write_demo_class, write_submissions
from course.grader.cluster import connect, grading_slots, refusals
from course.grader.cluster_worker import GRADING_DASK_SETTINGS
from course.grader.grading import nbgrader_env, read_results
from course.grader.local_cluster import LocalGradingCluster
from course.grader.record import GRADED, NEEDS_PERSON, RECORD

TINY = "99-tiny"
COURSE_ID = "ai-engineering-for-developers"
GRADE_CELLS = 3  # the tiny assignment: a visible and a hidden test, and a written answer
# One cluster for the module: its tests stay on one pytest-xdist worker (pyproject.toml runs --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("cluster")]


@pytest.fixture(scope="module")
def started_cluster(tmp_path_factory):
    with LocalGradingCluster(tmp_path_factory.mktemp("cluster"), workers=2, nthreads=1,
                             scheduler_env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}) as cluster:
        yield cluster


@pytest.fixture
def cluster(started_cluster):
    """The module's cluster, with both workers grading (a test may have killed one; its nanny starts it again),
    and a client of its scheduler."""
    client = connect(scheduler_file=str(started_cluster.scheduler_file))
    deadline = time.monotonic() + 180
    while grading_slots(client) != 2:
        assert time.monotonic() < deadline, "the killed workers did not come back"
        time.sleep(0.5)
    yield SimpleNamespace(address=started_cluster.address, scheduler_file=started_cluster.scheduler_file, client=client)
    client.close()


def course_grade(course: Path, address: str, db_url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "course.cli", "--root", str(course), "grade", TINY, "--cluster", address],
                            env=nbgrader_env(db_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def record_rows(db_url: str) -> dict[str, dict]:
    """The record of what is graded, by student (empty before grading has made its table)."""
    engine = create_engine(db_url)
    try:
        if not inspect(engine).has_table(RECORD.name):
            return {}
        with engine.connect() as connection:
            return {row.student: row._asdict() for row in connection.execute(select(RECORD).where(RECORD.c.assignment == TINY))}
    finally:
        engine.dispose()


def results_per_student(db_url: str) -> dict[str, int]:
    """How many autograded submissions, each with all its grades, the gradebook holds per student."""
    with Gradebook(db_url, course_id=COURSE_ID) as gradebook:
        counts = {}
        for submission in gradebook.assignment_submissions(TINY):
            assert [len(notebook.grades) for notebook in submission.notebooks] == [GRADE_CELLS]
            counts[submission.student.id] = counts.get(submission.student.id, 0) + 1
        return counts


def graded_by_worker(process: psutil.Process) -> str | None:
    """The student whose sandboxed kernel runs under this worker process right now, if any."""
    for child in process.children(recursive=True):
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:
            continue
        if command and Path(command[0]).name == "bwrap" and "--chdir" in command:
            return Path(command[command.index("--chdir") + 1]).parent.name  # .../autograded/<student>/<assignment>
    return None


def worker_processes(client) -> dict[str, psutil.Process]:
    """Each connected worker's process, by address (a worker that dies meanwhile is left out)."""
    processes = {}
    for address, pid in client.run(os.getpid, on_error="ignore").items():
        if isinstance(pid, int):
            try:
                processes[address] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
    return processes


def kill_a_worker_while_it_grades(client, grading: subprocess.Popen) -> tuple[str, str]:
    """SIGKILL the process of the first worker seen running a submission's kernel; return its address and the student."""
    while grading.poll() is None:
        for address, process in worker_processes(client).items():
            if student := graded_by_worker(process):
                process.kill()
                return address, student
        time.sleep(0.05)
    pytest.fail("grading finished before any worker was seen grading")


def outcomes(folder: Path, students: list[str], db_url: str | None = None) -> dict[str, tuple]:
    """Each student's score per test cell and what needs a person's attention, from the gradebook and autograded notebooks."""
    return {student: (graded.scores, graded.attention) for student, graded in read_results(folder, TINY, students, {}, db_url).items()}


def feedback_pages(folder: Path) -> dict[str, str]:
    """Each feedback page, by path. Cell ids are left out: the grader gives each test cell it puts back from the
    source a new random id (nbformat's), so two gradings of one submission differ there, wherever they ran."""
    return {path.relative_to(folder).as_posix(): re.sub(r'id="cell-id=[0-9a-f]+"', 'id="cell-id"', path.read_text())
            for path in sorted((folder / "feedback").rglob("*.html"))}


def run(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=folder, env=nbgrader_env(), capture_output=True, text=True)


def test_workers_and_scheduler_run_with_the_grading_settings(cluster):
    """`course worker` (and the local cluster's scheduler) start Dask with GRADING_DASK_SETTINGS, which a scheduler
    setting of the test's own (allowed-failures) does not replace."""
    import dask

    def settings() -> dict:
        return {key: str(dask.config.get(key)) for key in GRADING_DASK_SETTINGS}

    expected = dict(GRADING_DASK_SETTINGS)
    workers = cluster.client.run(settings)
    assert len(workers) == 2 and all(found == expected for found in workers.values()), workers
    scheduler = cluster.client.run_on_scheduler(lambda: {"allowed-failures": dask.config.get("distributed.scheduler.allowed-failures"),
                                                         **settings()})
    assert scheduler == {"allowed-failures": 1, **expected}


def test_the_demo_class_graded_through_a_killed_worker_gets_what_local_grading_and_plain_nbgrader_give(
        tiny_course, postgres, cluster, tmp_path):
    students = [student.name for student in write_demo_class(tiny_course, TINY, tiny_course)]
    local, plain = tmp_path / "local", tmp_path / "plain"
    for copy in (local, plain):
        shutil.copytree(tiny_course, copy)
    url = postgres.create_database("demo_on_the_cluster")

    grading = course_grade(tiny_course, cluster.address, url)
    killed_worker, killed_student = kill_a_worker_while_it_grades(cluster.client, grading)
    out, err = grading.communicate(timeout=900)
    assert grading.returncode == 3, out + err  # the broken file and the hostile student need a person

    # Nothing lost, nothing twice: one result per submission, the killed one graded on another worker.
    assert results_per_student(url) == {student: 1 for student in students}
    rows = record_rows(url)
    assert sorted(rows) == sorted(students) and {row["outcome"] for row in rows.values()} == {GRADED}
    assert rows[killed_student]["worker"] != killed_worker
    table = out[out.index("where each submission was graded"):out.index("per exercise")]
    assert all(sum(line.startswith(f"{student} ") for line in table.splitlines()) == 1 for student in students), table
    assert "127.0.0.1:" in err and "grading 99-tiny on the cluster" in err  # the progress bar counts per worker

    # The same grades, flags and feedback as local `course grade` and plain `nbgrader autograde`.
    graded_locally = run([sys.executable, "-m", "course.cli", "grade", TINY, "--jobs", "2"], local)
    assert graded_locally.returncode == 3, graded_locally.stdout + graded_locally.stderr
    for step in (["generate_assignment", TINY, "--force"], ["autograde", TINY], ["generate_feedback", TINY]):
        done = run([sys.executable, "-m", "nbgrader", *step], plain)
        assert done.returncode == 0, done.stdout + done.stderr
    on_the_cluster = outcomes(tiny_course, students, url)
    assert on_the_cluster == outcomes(local, students) == outcomes(plain, students)
    assert on_the_cluster["perfect"][0] == {"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0}
    assert "not a readable notebook" in on_the_cluster["broken-file"][1][0]
    assert any("check_equal" in reason for reason in on_the_cluster["hostile"][1])
    assert feedback_pages(tiny_course) == feedback_pages(local) == feedback_pages(plain)
    assert len(feedback_pages(tiny_course)) == len(students)


def test_a_rerun_after_course_grade_was_killed_grades_only_what_is_missing(tiny_course, postgres, cluster):
    students = make_class(tiny_course, TINY, tiny_course)
    url = postgres.create_database("killed_instructor")
    first = course_grade(tiny_course, cluster.address, url)
    while first.poll() is None and not record_rows(url):
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()
    before = {student: row["recorded"] for student, row in record_rows(url).items()}
    assert 1 <= len(before) < len(students), "the run was killed after the first result was recorded and before the last"

    second = course_grade(tiny_course, cluster.address, url)
    out, err = second.communicate(timeout=900)
    assert second.returncode == 0, out + err
    assert f"so not graded again: {len(before)} " in out
    after = record_rows(url)
    assert sorted(after) == students and {student: after[student]["recorded"] for student in before} == before
    assert results_per_student(url) == {student: 1 for student in students}
    rows = {row["student"]: (row["score"], row["needs_attention"]) for row in csv.DictReader((tiny_course / "grades.csv").open())}
    assert rows == {"blank": ("0", ""), "perfect": ("3", ""), "partial-01": ("0", ""), "partial-02": ("1", ""),
                    "partial-03": ("0", ""), "partial-04": ("3", "")}


class PodMemoryLimit:
    """Plays the memory limit of the container or batch job each worker runs in.

    A submission's kernel cannot signal its worker (the sandbox gives it another uid and
    process namespace). What does kill workers is memory: Kubernetes kills a container whose
    processes, together, pass its limit (all of them, since version 1.28 on cgroup v2), and
    Slurm does the same to a job. This thread does that to each worker process and
    everything under it: SIGKILL, when their resident memory together passes ``limit_mb``.
    """

    def __init__(self, client, limit_mb: int):
        self.client = client
        self.limit = limit_mb * 2**20
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "PodMemoryLimit":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for process in worker_processes(self.client).values():
                try:
                    group = [process, *process.children(recursive=True)]
                    if sum(member.memory_info().rss for member in group) > self.limit:
                        for member in group:
                            member.kill()
                        self.kills += 1
                        time.sleep(0.5)  # the scheduler's record of the dead worker goes with its connection
                except psutil.NoSuchProcess:
                    continue


MEMORY_HOG = """\
    return a + b


ballast = b"x" * 1_500_000_000  # 1.5 GB of resident memory, under the kernel's 3 GB address-space cap
"""


def test_a_submission_that_kills_its_worker_every_time_is_left_to_a_person_and_the_class_finishes(tiny_course, postgres, cluster):
    make_class(tiny_course, TINY, tiny_course)
    for student in ("partial-01", "partial-02", "partial-03"):
        shutil.rmtree(tiny_course / "submitted" / student)
    hog = nbformat.read(notebook_path(tiny_course, "source", TINY), as_version=4)
    for cell in hog.cells:
        cell.source = cell.source.replace("    return a + b\n", MEMORY_HOG)
    write_submissions(tiny_course, TINY, {"memory-hog": hog})
    url = postgres.create_database("memory_hog")

    with PodMemoryLimit(cluster.client, limit_mb=1200) as limit:
        grading = course_grade(tiny_course, cluster.address, url)
        out, err = grading.communicate(timeout=900)
    assert grading.returncode == 3, out + err
    assert limit.kills == 2  # the first try and the one retry the scheduler allows
    rows = record_rows(url)
    assert {student: row["outcome"] for student, row in rows.items()} == {
        "blank": GRADED, "partial-04": GRADED, "perfect": GRADED, "memory-hog": NEEDS_PERSON}
    assert "the worker died every time it graded this submission (2 tries" in rows["memory-hog"]["message"]
    assert f"memory-hog on {rows['memory-hog']['worker']}: the worker died every time" in out
    assert not (tiny_course / "autograded" / "memory-hog").exists()
    assert results_per_student(url) == {"blank": 1, "partial-04": 1, "perfect": 1}
    grades = {row["student"]: (row["score"], row["needs_attention"]) for row in csv.DictReader((tiny_course / "grades.csv").open())}
    assert grades["perfect"] == ("3", "") and grades["blank"] == ("0", "")
    assert grades["memory-hog"][0] == "0" and "the worker died every time" in grades["memory-hog"][1]


def test_a_worker_without_a_working_sandbox_refuses_to_grade_and_names_the_fix(tiny_course, postgres, cluster, tmp_path):
    no_bubblewrap = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    scheduler = ["--scheduler-file", str(cluster.scheduler_file), "--nthreads", "1"]
    refused = subprocess.run([sys.executable, "-m", "course.cli", "worker", *scheduler], env=no_bubblewrap,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "apt-get install bubblewrap" in refused.stderr

    # Dask's own command with the course's preload: the worker starts, but takes no grading task.
    dask = str(Path(sys.executable).parent / "dask")
    plain = subprocess.Popen([dask, "worker", *scheduler, "--preload", "course.grader.cluster_worker", "--no-dashboard",
                              "--host", "127.0.0.1", "--local-directory", str(tmp_path / "plain-worker")],
                             env=no_bubblewrap, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(worker_processes(cluster.client)) < 3:
            assert plain.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        assert grading_slots(cluster.client) == 2
        (broken,) = refusals(cluster.client)
        assert "this worker refuses to grade: bubblewrap (bwrap) is not installed" in broken and "apt-get install bubblewrap" in broken
        broken_address = broken.split(": ", 1)[0]

        make_class(tiny_course, TINY, tiny_course)
        for student in ("partial-01", "partial-02", "partial-03", "partial-04"):
            shutil.rmtree(tiny_course / "submitted" / student)
        url = postgres.create_database("refusing_worker")
        grading = course_grade(tiny_course, cluster.address, url)
        out, err = grading.communicate(timeout=900)
        assert grading.returncode == 0, out + err
        assert f"not grading on {broken_address}: this worker refuses to grade" in err
        assert {row["worker"] for row in record_rows(url).values()} <= set(worker_processes(cluster.client)) - {broken_address}
    finally:
        plain.send_signal(signal.SIGTERM)
        plain.wait(timeout=60)


def test_a_grader_fault_on_a_worker_stops_grading_records_no_grade_and_exits_2(tiny_course, postgres, cluster):
    with (tiny_course / "nbgrader_config.py").open("a") as config:  # travels to the workers: no kernel can start there
        config.write("\nc.SandboxedKernelManager.memory_mb = 16\n")
    make_class(tiny_course, TINY, tiny_course)
    url = postgres.create_database("grader_fault")

    grading = course_grade(tiny_course, cluster.address, url)
    out, err = grading.communicate(timeout=900)
    assert grading.returncode == 2, out + err
    assert "grading 99-tiny on the cluster stopped: the grading kernel did not start" in err
    assert "not of any submission" in err and "Fix the cause and grade again" in err
    assert re.search(r"no grade was recorded for [\w-]+ \(on tcp://127\.0\.0\.1:\d+\)", err), err
    assert record_rows(url) == {} and results_per_student(url) == {}
    assert not list((tiny_course / "autograded").glob(f"*/{TINY}/{TINY}.ipynb"))
