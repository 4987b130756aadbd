"""``course grade --watch``: feedback minutes after handing in, through nbgrader's local exchange.

The instructor releases the tiny assignment and starts the watcher with ``--collect
--release-feedback``; alice submits the solution and fetches her feedback; bob submits an answer
that kills its kernel, is graded 0 with the reason, and the watcher carries on. The watcher is
stopped; alice submits again while it is stopped; started again, it grades only her new
submission (bob's is not graded twice) and she fetches the new feedback.
"""
from __future__ import annotations

import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

from conftest import TINY, readable_text
from course.grader.grading import nbgrader_env
from course.grader.watch import LEDGER, Arrival, Ledger, folder_digest
from test_exchange import COURSE_ID, hand_in_work, new_person

SOLUTION = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
KERNEL_KILLER = "import os\n\ndef add(a, b):\n    return a + b\n\nos._exit(1)\n"


class RunningWatcher:
    """``course grade 99-tiny --watch`` as the instructor runs it, its output read line by line."""

    def __init__(self, course, home, *, exchange=True):
        env = {name: value for name, value in nbgrader_env().items() if not name.startswith(("JUPYTER", "XDG_"))}
        env["HOME"] = str(home)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "course.cli", "--root", str(course), "grade", TINY, "--watch",
             *(["--collect", "--release-feedback"] if exchange else []), "--interval", "3", "--jobs", "1"],
            cwd=course, env=env, text=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line) for line in self.process.stdout], daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 300) -> str:
        """The first line from now on matching ``pattern``; fails with everything printed when none comes in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.process.poll() is None, "the watcher stopped:\n" + "".join(self.seen)
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n" + "".join(self.seen))

    def stop(self) -> str:
        """SIGTERM, as a service manager stops it; returns the rest of its output after a clean exit."""
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=300) == 0, "".join(self.seen)
        time.sleep(0.5)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


def fetched_feedback(student, count: int) -> str:
    """The newest of the student's ``count`` feedback pages, once ``nbgrader fetch_feedback`` brought that many."""
    student.nbgrader("fetch_feedback", TINY)
    pages = sorted((student.home / TINY / "feedback").glob(f"*/{TINY}.html"))
    assert len(pages) == count, pages
    return readable_text(pages[-1].read_text())


def test_each_submission_is_graded_once_and_its_feedback_released_at_once(tiny_course, tmp_path):
    course = tiny_course
    exchange = tmp_path / "exchange"
    exchange.mkdir()
    instructor = new_person(tmp_path / "instructor", {"Exchange.root": str(exchange)}, workdir=course)
    alice, bob = (new_person(tmp_path / "homes" / name, {"Exchange.root": str(exchange), "CourseDirectory.course_id": COURSE_ID,
                                                         "CourseDirectory.student_id": name}) for name in ("alice", "bob"))
    instructor.nbgrader("generate_assignment", TINY, "--force")
    instructor.nbgrader("release_assignment", TINY)
    for student in (alice, bob):
        student.nbgrader("fetch_assignment", TINY)

    watcher = RunningWatcher(course, instructor.home)
    watcher.wait_for(r"^watching .*submitted.* for 99-tiny \(collecting from the exchange\); 0 submissions graded before")
    hand_in_work(alice.home / TINY / f"{TINY}.ipynb", SOLUTION)
    alice.nbgrader("submit", TINY)
    watcher.wait_for(r"graded alice \(99-tiny\): 3/3, feedback written$")
    watcher.wait_for(r"feedback released to the exchange for alice \(99-tiny\)")
    assert f"{TINY} (Score: 3.0 / 4.0)" in fetched_feedback(alice, 1)

    hand_in_work(bob.home / TINY / f"{TINY}.ipynb", KERNEL_KILLER)
    bob.nbgrader("submit", TINY)
    line = watcher.wait_for(r"graded bob \(99-tiny\)")
    assert "0/3, feedback written; needs a person:" in line and "kernel" in line
    watcher.wait_for(r"feedback released to the exchange for bob \(99-tiny\)")
    assert f"{TINY} (Score: 0.0 / 4.0)" in fetched_feedback(bob, 1)
    first_run = watcher.stop()
    assert "stopped: graded 2 submissions in this run" in first_run

    # While the watcher is stopped alice hands in again; nothing is lost, and nothing is graded twice.
    bob_graded = (course / "autograded" / "bob" / TINY / f"{TINY}.ipynb").stat().st_mtime_ns
    hand_in_work(alice.home / TINY / f"{TINY}.ipynb", WRONG)
    alice.nbgrader("submit", TINY)
    watcher = RunningWatcher(course, instructor.home)
    watcher.wait_for(r"; 2 submissions graded before")
    watcher.wait_for(r"graded alice \(99-tiny\): 0/3, feedback written$")
    watcher.wait_for(r"feedback released to the exchange for alice \(99-tiny\)")
    assert "subtracted instead of adding" in fetched_feedback(alice, 2)
    second_run = watcher.stop()
    assert "graded bob" not in second_run and "stopped: graded 1 submissions in this run" in second_run
    assert (course / "autograded" / "bob" / TINY / f"{TINY}.ipynb").stat().st_mtime_ns == bob_graded
    ledger = Ledger(course / LEDGER)
    assert sorted(key[1] for key in ledger.graded) == ["alice", "alice", "bob"] and ledger.released == set(ledger.graded)


def test_a_grader_fault_is_reported_never_graded_and_the_watcher_keeps_running(tiny_course, tmp_path):
    with (tiny_course / "nbgrader_config.py").open("a") as config:
        config.write("\nc.SandboxedKernelManager.memory_mb = 16\n")  # no kernel can start: a fault of the grader
    folder = tiny_course / "submitted" / "alice" / TINY
    folder.mkdir(parents=True)
    shutil.copy(tiny_course / "release" / TINY / f"{TINY}.ipynb", folder)
    hand_in_work(folder / f"{TINY}.ipynb", SOLUTION)
    (folder / "timestamp.txt").write_text("2025-01-10 11:00:00.000000 UTC")
    (tmp_path / "home").mkdir()

    watcher = RunningWatcher(tiny_course, tmp_path / "home", exchange=False)
    line = watcher.wait_for(r"grading 99-tiny stopped")
    assert "the grading kernel did not start" in line and "not of any submission" in line
    watcher.wait_for(r"the watcher keeps running; these submissions are tried again when it restarts")
    assert "stopped: graded 0 submissions in this run" in watcher.stop()
    assert not Ledger(tiny_course / LEDGER).graded
    assert not (tiny_course / "autograded" / "alice" / TINY / f"{TINY}.ipynb").exists()


def test_a_submission_is_its_files_and_their_time(tmp_path):
    folder = tmp_path / "submitted" / "alice" / TINY
    folder.mkdir(parents=True)
    (folder / f"{TINY}.ipynb").write_text("{}")
    (folder / "timestamp.txt").write_text("2025-01-10 11:00:00.000000 UTC")
    before = folder_digest(folder)
    (folder / "timestamp.txt").write_text("2025-01-10 11:05:00.000000 UTC")
    assert folder_digest(folder) != before
    (folder / "data.csv").write_text("x\n1\n")
    assert len({before, folder_digest(folder)}) == 2

    ledger = Ledger(tmp_path / LEDGER)
    seen = Arrival(TINY, "alice", "2025-01-10 11:05:00.000000 UTC", folder_digest(folder))
    ledger.record(seen, score=3.0)
    with (tmp_path / LEDGER).open("a") as handle:
        handle.write('{"key": ["99-tiny", "bob"')  # a watcher killed while writing a line
    again = Ledger(tmp_path / LEDGER)
    assert seen in again and list(again.graded) == [seen.key] and not again.released
