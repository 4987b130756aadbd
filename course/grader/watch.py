"""``course grade ASSIGNMENT --watch``: feedback minutes after a student hands in.

The watcher keeps running until it is stopped (Ctrl-C or SIGTERM). Every ``interval``
seconds it

1. with ``--collect``, runs ``nbgrader collect ASSIGNMENT --update``, which brings each
   student's latest submission from the exchange into ``submitted/``;
2. looks for submissions in ``submitted/<student>/ASSIGNMENT/`` it has not graded: a
   submission is identified by its assignment, student, ``timestamp.txt`` and a SHA-256 of
   every file in its folder, so a resubmission (new time or new content) is graded again and
   the same files never are;
3. grades them with nbgrader's own autograder and feedback converters, in parallel, exactly
   as ``course grade`` does (sandboxed, hardened, late policy applied);
4. with ``--release-feedback``, releases the feedback to the exchange
   (``nbgrader release_feedback``), so students can fetch it at once.

What it graded is appended to a ledger, ``.course-watch.jsonl`` in the course folder, one JSON
line per event, flushed to disk as soon as a submission is graded and again when its feedback
is released. Stopping and starting loses nothing: a submission that arrived while the watcher
was stopped, or whose grading was cut short, is not in the ledger and is graded on the next
start; feedback graded but not yet released is released then. A submission nbgrader itself
could not grade (a fault of the grader, not of the student) is reported, not recorded, and
tried again at the next start. A submission that crashes its kernel is graded like any other:
the cells that did not run score 0 and the feedback says why.

Polling, not file-system events: no watching library is pinned in the course's environment;
``nbgrader collect`` has to be run on a schedule anyway; and on shared file systems (home
folders over NFS, an exchange on another machine) inotify does not see other machines' writes.
A poll costs a directory listing and a hash of the files that changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from course.grader.grading import GradingError, autograde_class, nbgrader_env, run_nbgrader_checked, submitted_students

LEDGER = ".course-watch.jsonl"
SETTLE_SECONDS = 2.0  # a folder written to more recently than this may still be being copied in
COULD_NOT_GRADE = "nbgrader could not grade this submission"


@dataclass(frozen=True)
class Arrival:
    """A submission in ``submitted/``: whose, of what, handed in when, and the digest of its files."""

    assignment: str
    student: str
    timestamp: str
    digest: str

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two sightings the same submission."""
        return (self.assignment, self.student, self.timestamp, self.digest)


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file in ``folder``: relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def newest_change(folder: Path) -> float:
    """The latest modification time of ``folder`` or anything in it."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


def arrival(course_dir: Path, assignment: str, student: str) -> Arrival:
    """The submission of ``student`` now in ``submitted/``."""
    folder = course_dir / "submitted" / student / assignment
    stamp = folder / "timestamp.txt"
    return Arrival(assignment, student, stamp.read_text().strip() if stamp.is_file() else "", folder_digest(folder))


class Ledger:
    """The submissions the watcher graded and released, kept as appended JSON lines that survive a stop."""

    def __init__(self, path: Path):
        self.path = path
        self.graded: dict[tuple, dict] = {}
        self.released: set[tuple] = set()
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a watcher killed while writing it: that submission is graded again
                key = tuple(event["key"])
                self.graded[key] = event
                if event.get("released"):
                    self.released.add(key)

    def record(self, arrival: Arrival, **details) -> None:
        """Append an event about ``arrival`` (graded, or released) and flush it to disk."""
        event = {"key": list(arrival.key), "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **details}
        with self.path.open("a") as handle:
            handle.write(json.dumps(event) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.graded[arrival.key] = event
        if details.get("released"):
            self.released.add(arrival.key)

    def __contains__(self, arrival: Arrival) -> bool:
        return arrival.key in self.graded


class Watcher:
    """Grades each new submission of ``assignments`` as it arrives; see the module's docstring."""

    def __init__(self, course_dir: Path, assignments: list[str], *, jobs: int = 1, collect: bool = False,
                 release_feedback: bool = False, unsafe_no_sandbox: bool = False, db_url: str | None = None,
                 say: Callable[[str], None] = print):
        self.course_dir = course_dir
        self.db_url = db_url
        self.assignments = assignments
        self.jobs = jobs
        self.collect = collect
        self.release_feedback = release_feedback
        self.nbgrader_args = ("--SandboxedKernelManager.unsafe_no_sandbox=True",) if unsafe_no_sandbox else ()
        self.say = say
        self.ledger = Ledger(course_dir / LEDGER)
        self.failed: set[tuple] = set()  # could not be graded in this run: tried again at the next start
        self.graded = 0
        self.last_problem = ""

    def start(self) -> None:
        """Record the assignments in the gradebook (as ``course grade`` does) and say what is being watched."""
        from course.grader.sandbox import sandbox_problem

        if not self.nbgrader_args and (problem := sandbox_problem()):
            raise GradingError(f"refusing to grade without a sandbox: {problem}. "
                               "To grade notebooks you trust unconfined, pass --unsafe-no-sandbox.")
        for assignment in self.assignments:
            run_nbgrader_checked(["generate_assignment", assignment, "--force"], self.course_dir, env=nbgrader_env(self.db_url))
        self.say(f"watching {self.course_dir / 'submitted'} for {', '.join(self.assignments)}"
                 f"{' (collecting from the exchange)' if self.collect else ''}; "
                 f"{len(self.ledger.graded)} submissions graded before, in {self.ledger.path.name}; Ctrl-C stops")

    def poll(self) -> None:
        """One round: collect, grade what is new, release feedback."""
        for assignment in self.assignments:
            if self.collect:
                self._nbgrader(["collect", assignment, "--update"])
            new = self.new_arrivals(assignment)
            if new:
                self.grade(assignment, new)
            if self.release_feedback:
                self.release(assignment)

    def new_arrivals(self, assignment: str) -> list[Arrival]:
        """Submissions of ``assignment`` not graded yet (nor failed in this run), whose files have settled."""
        found = []
        for student in submitted_students(self.course_dir, assignment):
            folder = self.course_dir / "submitted" / student / assignment
            try:
                if time.time() - newest_change(folder) < SETTLE_SECONDS:
                    continue
                seen = arrival(self.course_dir, assignment, student)
            except OSError:
                continue  # replaced while being read (a `collect --update` run elsewhere): seen again next round
            if seen not in self.ledger and seen.key not in self.failed:
                found.append(seen)
        return found

    def grade(self, assignment: str, arrivals: list[Arrival]) -> None:
        """Autograde and give feedback to ``arrivals``; record each one graded, report the others."""
        try:
            results = autograde_class(self.course_dir, assignment, [a.student for a in arrivals], self.jobs,
                                      nbgrader_args=self.nbgrader_args, db_url=self.db_url)
        except GradingError as fault:
            self.failed.update(seen.key for seen in arrivals)
            self.say(f"{_now()} {fault}\n(the watcher keeps running; these submissions are tried again when it restarts)")
            return
        for seen in arrivals:
            graded = results[seen.student]
            try:
                unchanged = arrival(self.course_dir, assignment, seen.student) == seen
            except OSError:
                unchanged = False
            if not unchanged:
                self.say(f"{_now()} {seen.student} ({assignment}) changed while being graded: grading it again")
                continue
            if any(reason.startswith(COULD_NOT_GRADE) for reason in graded.attention):
                self.failed.add(seen.key)
                self.say(f"{_now()} {seen.student} ({assignment}) NOT graded, a fault of the grader: "
                         f"{'; '.join(graded.attention)} (it is tried again when the watcher restarts)")
                continue
            self.ledger.record(seen, score=graded.score, max_score=graded.max_score, attention=graded.attention)
            self.graded += 1
            note = f"; needs a person: {'; '.join(graded.attention)}" if graded.attention else ""
            self.say(f"{_now()} graded {seen.student} ({assignment}): {graded.score:g}/{graded.max_score:g}, "
                     f"feedback written{note}")

    def release(self, assignment: str) -> None:
        """Release the feedback of every graded submission of ``assignment`` not released yet."""
        pending = [key for key in self.ledger.graded if key[0] == assignment and key not in self.ledger.released]
        if not pending or not self._nbgrader(["release_feedback", assignment]):
            return
        for key in pending:
            self.ledger.record(Arrival(*key), released=True)
        self.say(f"{_now()} feedback released to the exchange for {', '.join(sorted({key[1] for key in pending}))} ({assignment})")

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set; a round in progress finishes first."""
        self.start()
        while not stop.is_set():
            self.poll()
            stop.wait(interval)
        self.say(f"stopped: graded {self.graded} submissions in this run"
                 + (f"; {len(self.failed)} could not be graded and are tried again at the next start" if self.failed else ""))

    def _nbgrader(self, args: list[str]) -> bool:
        """Run an nbgrader command; on failure say why (once until it changes) and carry on."""
        try:
            run_nbgrader_checked(args, self.course_dir, env=nbgrader_env(self.db_url))
        except GradingError as error:
            if str(error) != self.last_problem:
                self.say(f"{_now()} {error}\n(the watcher keeps running and tries again at the next round)")
                self.last_problem = str(error)
            return False
        self.last_problem = ""
        return True


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def watch(course_dir: Path, assignments: list[str], *, jobs: int, interval: float, collect: bool, release_feedback: bool,
          unsafe_no_sandbox: bool, db_url: str | None = None) -> int:
    """``course grade --watch``: run a Watcher until SIGINT or SIGTERM; exit status 0 after a clean stop."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    watcher = Watcher(course_dir, assignments, jobs=jobs, collect=collect, release_feedback=release_feedback,
                      unsafe_no_sandbox=unsafe_no_sandbox, db_url=db_url, say=lambda line: print(line, flush=True))
    watcher.run(stop, interval)
    return 0

