"""``course grade ASSIGNMENT --cluster ADDRESS``: grade a class on Dask workers, record it on the instructor's machine.

Each submission becomes one Dask task (``course.grader.cluster_worker.grade_submission``)
that carries what it needs (``course.grader.shipment``) to a worker started for grading
(``course worker``). This process, the only one that holds the gradebook's credentials,
collects the results with ``as_completed`` and records each one the moment it arrives
(``course.grader.record``), so the gradebook, not the scheduler's memory, says what is done:

- running it again grades only the students with no record for the same submission and
  assignment: killing this process loses at most the submissions being graded at that moment;
- a worker killed in the middle of a submission: Dask runs the task again on another worker;
  its result arrives once and is recorded once;
- a submission whose worker dies on every try: after the scheduler's
  ``distributed.scheduler.allowed-failures`` (default 3) further tries, Dask gives up with
  ``KilledWorker``; the submission is recorded as needing a person, and the class goes on;
- a grader fault on a worker (``course.grader.GraderFault``: its sandbox, kernel or guard
  failed before the submission's first cell) follows the rule of local grading: nothing is
  recorded for that submission, no more are handed out, those running are recorded, and
  ``GradingError`` names the fault, the submission and the worker.

Tasks go to the scheduler as grading slots free up (one per unit of the ``grading`` resource
the connected workers offer), not all at once: Dask counts a worker's death against every
task assigned to it, so tasks queued behind a submission that kills its worker would be
charged with deaths they did not cause.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, deque
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from course.assignments import student_notebook_path
from course.grader.cluster_worker import RESOURCE, grade_submission, refusal
from course.grader.gradebook import course_id, prepare_gradebook, url_for
from course.grader.grading import (GradedSubmission, GradingError, _log_excerpt, nbgrader_env, read_results, run_nbgrader_checked,
                                   submitted_students)
from course.grader.record import FAILED, NEEDS_PERSON, Recorder
from course.grader.shipment import AssignmentPackage, Outcome, package_assignment, read_submission

CONNECT_SECONDS = 30
WORKER_WAIT_SECONDS = 120


@dataclass
class Job:
    """One submission's way through the cluster: when it was handed to Dask, what came back, when it was recorded."""

    student: str
    submission_digest: str = ""
    queued: float = 0.0
    outcome: Outcome | None = None
    worker: str = ""
    problem: str = ""
    received: float = 0.0
    recording: float = 0.0
    recorded: float = 0.0

    @property
    def overhead(self) -> float:
        """The cluster's own cost for this submission, in seconds: shipping it to a worker and scheduling it, the
        worker's scratch files, shipping the result back, and writing it into the gradebook (not waiting for
        earlier writes: that overlaps with grading)."""
        outcome = self.outcome
        return ((outcome.grading_started - self.queued) + (self.received - outcome.grading_finished)
                + (self.recorded - self.recording))


@dataclass
class ClusterRun:
    """What ``grade_on_cluster`` did: each job, the students graded earlier, and everyone's results."""

    assignment: str
    jobs: list[Job]
    skipped: list[str]
    results: dict[str, GradedSubmission] = field(default_factory=dict)

    def where_table(self) -> str:
        """Where each submission ran and when (seconds since the first was handed to Dask), and how long it waited and ran."""
        if not self.jobs:
            return ""
        start = min(job.queued for job in self.jobs)
        width = max(len("student"), *(len(job.student) for job in self.jobs))
        worker_width = max(len("worker"), *(len(job.worker) for job in self.jobs))
        lines = [f"{'student':{width}}  {'worker':{worker_width}}  {'queued':>7}  {'started':>7}  {'finished':>8}  "
                 f"{'waited':>6}  {'grading':>7}  outcome"]
        for job in sorted(self.jobs, key=lambda job: (job.outcome.task_started if job.outcome else float("inf"), job.student)):
            outcome = job.outcome
            if outcome is None:
                times = f"{job.queued - start:7.1f}  {'-':>7}  {'-':>8}  {'-':>6}  {'-':>7}"
            else:
                times = (f"{job.queued - start:7.1f}  {outcome.task_started - start:7.1f}  {outcome.task_finished - start:8.1f}  "
                         f"{outcome.task_started - job.queued:6.1f}  {outcome.grading_finished - outcome.grading_started:7.1f}")
            lines.append(f"{job.student:{width}}  {job.worker:{worker_width}}  {times}  {'not graded' if job.problem else 'graded'}")
        return "\n".join(lines)

    def failures(self) -> list[str]:
        """One line per submission that could not be graded: which, on which worker, and why."""
        return [f"{job.student} on {job.worker or 'no worker'}: {job.problem}" for job in self.jobs if job.problem]

    def summary(self) -> str:
        """The table, what was graded earlier, and the failures, for the instructor."""
        parts = [f"{self.assignment}: where each submission was graded (seconds since the first was queued)\n{self.where_table()}"
                 if self.jobs else f"{self.assignment}: nothing to grade"]
        if self.skipped:
            parts.append(f"graded earlier with the same submission and assignment, so not graded again: {len(self.skipped)} "
                         f"({', '.join(self.skipped)})")
        if failures := self.failures():
            parts.append("not graded:\n  " + "\n  ".join(failures))
        return "\n\n".join(parts)


def connect(address: str | None = None, scheduler_file: str | None = None):
    """A Dask client of the scheduler at ``address`` (or named in ``scheduler_file``)."""
    from distributed import Client

    try:
        return Client(address, scheduler_file=scheduler_file, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as error:
        where = address or f"the address in {scheduler_file}"
        raise GradingError(f"cannot reach the Dask scheduler at {where} ({error}): start one with `dask scheduler` "
                           "and check the address, the port and the network between this machine and it") from None


def grading_slots(client) -> int:
    """How many submissions the connected workers can grade at once: their ``grading`` resource, summed."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    return int(sum(info.get("resources", {}).get(RESOURCE, 0) for info in workers.values()))


def refusals(client) -> list[str]:
    """Each connected worker that offers no grading slot, and why, in its own words."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    idle = [address for address, info in workers.items() if not info.get("resources", {}).get(RESOURCE)]
    reasons = client.run(refusal, workers=idle, on_error="return") if idle else {}
    return [f"{address}: {reason}" if isinstance(reason, str) else
            f"{address}: this worker cannot run the course's code ({type(reason).__name__}: {reason}): install the course on it"
            for address, reason in sorted(reasons.items())]


def wait_for_graders(client, seconds: float = WORKER_WAIT_SECONDS) -> int:
    """Wait until a worker that can grade is connected; return the grading slots, or raise after ``seconds``."""
    deadline = time.monotonic() + seconds
    while (slots := grading_slots(client)) == 0:
        if time.monotonic() > deadline:
            connected = len(client.scheduler_info(n_workers=-1)["workers"])
            refused = "".join(f"\n  {line}" for line in refusals(client))
            raise GradingError(f"no worker of the scheduler at {client.scheduler.address} can grade: {connected} connected, "
                               f"none offering a {RESOURCE!r} slot after {seconds:.0f} s. Start workers with "
                               f"`course worker {client.scheduler.address}` (see docs/instructors.md){refused}")
        time.sleep(0.5)
    return slots


def grade_on_cluster(course_dir: Path, assignment: str, client, *, db_url: str | None = None, progress: bool = False,
                     worker_wait: float = WORKER_WAIT_SECONDS) -> ClusterRun:
    """``course grade --cluster``: grade every submission of ``assignment`` in ``course_dir`` not yet graded on the workers of
    ``client``; record results in ``autograded/``, ``feedback/`` and the gradebook (``db_url``, default ``gradebook.db``)."""
    students = submitted_students(course_dir, assignment)
    if not students:
        raise GradingError(f"no submissions of {assignment} in {course_dir / 'submitted'} "
                           f"(expected submitted/<student>/{assignment}/{assignment}.ipynb)")
    url = url_for(course_dir, db_url)
    course = course_id(course_dir)
    if db_url:
        prepare_gradebook(db_url, course)
    run_nbgrader_checked(["generate_assignment", assignment, "--force"], course_dir, env=nbgrader_env(db_url))
    recorder = Recorder(course_dir, assignment, url, course)
    try:
        package = package_assignment(course_dir, assignment, url, ignore=recorder.ignore, course_files=recorder.course_files())
        graded = recorder.graded_digests()
        jobs, skipped = [], []
        for student in students:
            digest = read_submission(course_dir, assignment, student, recorder.ignore).digest
            if graded.get(student) == (digest, package.digest) and \
                    student_notebook_path(course_dir, "autograded", student, assignment).is_file():
                skipped.append(student)
            else:
                jobs.append(Job(student))
        if jobs:
            for refusal_line in refusals(client):
                print(f"not grading on {refusal_line}", file=sys.stderr)
            wait_for_graders(client, worker_wait)
            _grade_jobs(client, course_dir, package, jobs, recorder, progress)
        logs = {job.student: f"{job.student}: {job.problem}" for job in jobs if job.problem}
        return ClusterRun(assignment, jobs, skipped, read_results(course_dir, assignment, students, logs, db_url=db_url))
    finally:
        recorder.close()


def _grade_jobs(client, course_dir: Path, package: AssignmentPackage, jobs: list[Job], recorder: Recorder, progress: bool) -> None:
    """Hand ``jobs`` to Dask as grading slots free up, and record each result as it arrives.

    Results are written by a thread of their own, one after another, so the next job is handed
    out the moment a worker is free, not after the gradebook write of the one before.
    """
    from distributed import KilledWorker, as_completed

    pending = deque(jobs)
    running = {}
    finished = as_completed(loop=client.loop)
    per_worker = Counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc=f"grading {package.assignment} on the cluster", unit="student", file=sys.stderr)

    def hand_out() -> None:
        free = max(1, grading_slots(client)) - len(running)
        while free > 0 and pending:
            job = pending.popleft()
            submission = read_submission(course_dir, package.assignment, job.student, recorder.ignore)
            job.submission_digest = submission.digest
            job.queued = time.time()
            future = client.submit(grade_submission, package, submission, resources={RESOURCE: 1},
                                   key=f"grade-{package.assignment}-{job.student}-{submission.digest[:12]}-{package.digest[:12]}")
            running[future] = job
            finished.add(future)
            free -= 1

    def record(job: Job) -> None:
        _record(job, package, recorder)
        per_worker[job.worker.removeprefix("tcp://")] += 1
        if bar:
            bar.set_postfix_str(", ".join(f"{worker}: {count}" for worker, count in sorted(per_worker.items())), refresh=False)
            bar.update()

    recordings = []
    with ThreadPoolExecutor(1, thread_name_prefix="gradebook-writer") as writer:
        try:
            hand_out()
            for future in finished:
                job = running.pop(future)
                try:
                    job.outcome = future.result()
                except KilledWorker as error:
                    job.worker = error.last_worker.address
                    job.problem = (f"the worker died every time it graded this submission ({error.allowed_failures + 1} tries, "
                                   f"the last on {job.worker}): it needs a person, for example to grade it on a machine with "
                                   "more memory; running `course grade --cluster` again tries it again")
                except CancelledError:
                    raise GradingError(f"the Dask scheduler dropped the grading of {job.student}: grades recorded so far "
                                       "are kept; run `course grade --cluster` again to grade the rest") from None
                finally:
                    job.received = time.time()
                    future.release()
                if job.outcome is not None and job.outcome.fault:
                    job.worker, job.problem = job.outcome.worker, f"grader fault: {job.outcome.fault}"
                    pending.clear()  # the next submissions would fail the same way; those running finish
                    continue
                hand_out()
                recordings.append(writer.submit(record, job))
                # Keep the writes still under way; a failed one raises here (result() of a finished write is None).
                recordings = [recording for recording in recordings if not recording.done() or recording.result()]
        finally:
            pending.clear()
    try:
        for recording in recordings:
            recording.result()
    finally:
        if bar:
            bar.close()
    if faulted := [job for job in jobs if job.outcome is not None and job.outcome.fault]:
        raise GradingError(_fault_message(package.assignment, jobs, faulted))


def _fault_message(assignment: str, jobs: list[Job], faulted: list[Job]) -> str:
    """What stopped grading (as local grading says it), where, and what became of the other submissions."""
    graded = [job for job in jobs if job.recorded and not job.problem]
    untouched = [job for job in jobs if job.outcome is None and not job.problem]
    return (f"grading {assignment} on the cluster stopped: {faulted[0].outcome.fault}. This is a fault of the grading "
            f"set-up, not of any submission: no grade was recorded for "
            + ", ".join(f"{job.student} (on {job.worker})" for job in faulted)
            + (f"; {len(untouched)} more were not graded" if untouched else "")
            + (f" ({len(graded)} graded before it: their results are in the gradebook, and running `course grade --cluster` "
               "again grades only the rest)" if graded else "")
            + ". Fix the cause and grade again.")


def _record(job: Job, package: AssignmentPackage, recorder: Recorder) -> None:
    """Write ``job``'s result (or why there is none) into the course folder and the gradebook."""
    job.recording = time.time()
    row = {"submission_digest": job.submission_digest, "assignment_digest": package.digest, "queued": job.queued}
    outcome = job.outcome
    if outcome is None:
        recorder.record_not_graded(job.student, NEEDS_PERSON, job.problem, worker=job.worker, **row)
    else:
        job.worker = outcome.worker
        row.update(worker=outcome.worker, started=outcome.task_started, finished=outcome.task_finished)
        if outcome.graded and outcome.notebooks:
            recorder.record_graded(job.student, outcome.notebooks, outcome.feedback, **row)
        else:
            job.problem = (f"nbgrader could not grade it: {_log_excerpt(outcome.log, job.student)}" if outcome.graded is False
                           else "nbgrader reported success but wrote no autograded notebook")
            recorder.record_not_graded(job.student, FAILED, job.problem, **row)
    job.recorded = time.time()
