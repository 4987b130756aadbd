"""Grade a class with the real ``nbgrader autograde``, several students at once.

nbgrader grades one submission after another. ``autograde_class`` starts ``jobs`` workers
(``course.grader.worker``: nbgrader's own Autograde and GenerateFeedback converters in one long-lived
process each), all in the same course folder and gradebook, and hands each worker the next
student as soon as it is free. The course's ``nbgrader_config.py`` configures every worker,
so grading is sandboxed and hardened exactly as plain ``nbgrader autograde`` is. Scores are
read back with nbgrader's API.

``course grade`` grades the course folder itself; ``course verify`` and ``course demo``
grade in a scratch copy made by ``prepare_course``.
"""
from __future__ import annotations

import csv
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from course.assignments import (CourseLayoutError, exercises, is_autograded_test, nbgrader_meta, notebook_path, read_notebook,
                                student_notebook_path)
from course.grader.gradebook import DB_URL_VARIABLE, course_id, url_for, prepare_gradebook
from course.grader.preprocessors import INCIDENT_KEY, TAMPERING_KEY
from course.grader.worker import FEEDBACK_FLAG, TOKEN_VARIABLE

NBGRADER = [sys.executable, "-m", "nbgrader"]


class GradingError(RuntimeError):
    """nbgrader itself failed (not a submission): the message carries the end of its log."""


@dataclass
class GradedSubmission:
    """The outcome of autograding one student's notebook, and anything a person should look at."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)
    max_scores: dict[str, float] = field(default_factory=dict)
    notebook: nbformat.NotebookNode | None = None
    attention: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """Autograded points earned."""
        return sum(self.scores.values())

    @property
    def max_score(self) -> float:
        """Autograded points available."""
        return sum(self.max_scores.values())

    def test_output(self, grade_id: str) -> str:
        """Everything the autograded test cell ``grade_id`` printed or raised, as text."""
        if self.notebook is None:
            return ""
        for cell in self.notebook.cells:
            if nbgrader_meta(cell).get("grade_id") == grade_id:
                return "\n".join(_output_text(output) for output in cell.get("outputs", []))
        return ""

    def stderr_test_cells(self) -> list[str]:
        """Grade ids of autograded test cells that wrote to stderr (nbgrader scores those 0)."""
        if self.notebook is None:
            return []
        return [
            nbgrader_meta(cell)["grade_id"]
            for cell in self.notebook.cells
            if is_autograded_test(cell)
            and any(o.output_type == "stream" and o.name == "stderr" for o in cell.get("outputs", []))
        ]


def nbgrader_env(db_url: str | None = None) -> dict[str, str]:
    """The environment nbgrader runs in: this Python's scripts first on PATH (nbgrader calls
    ``alembic`` by name), one BLAS thread per kernel, and the gradebook ``db_url`` (by default
    the course folder's own SQLite file, whatever ``COURSE_DB_URL`` the caller has set)."""
    env = dict(os.environ)
    env.pop(DB_URL_VARIABLE, None)
    if db_url:
        env[DB_URL_VARIABLE] = db_url
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # The parallelism comes from grading several notebooks at once, not from threads in each.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def run_nbgrader_checked(args: list[str], course_dir: Path, env: dict[str, str] | None = None) -> str:
    """Run ``nbgrader ARGS`` in ``course_dir`` (in ``env``, default ``nbgrader_env()``); return its log, or raise
    GradingError with the end of it when nbgrader fails."""
    done = subprocess.run(NBGRADER + args, cwd=course_dir, env=env or nbgrader_env(), text=True,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-25:])
        raise GradingError(f"`nbgrader {' '.join(args)}` failed in {course_dir} (exit {done.returncode}):\n{tail}")
    return done.stdout


def prepare_course(root: Path, assignment: str, folder: Path) -> Path:
    """Make ``folder`` a minimal course for ``assignment``: config, source, release and gradebook."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(root / "source" / assignment, folder / "source" / assignment, dirs_exist_ok=True)
    run_nbgrader_checked(["generate_assignment", assignment, "--force"], folder)
    return folder


class GradingWorker:
    """A running ``course.grader.worker``: one nbgrader process that grades the students handed to it, one at a time."""

    def __init__(self, course_dir: Path, assignment: str, *, feedback: bool, nbgrader_args: tuple[str, ...],
                 db_url: str | None = None):
        self.token = secrets.token_hex(16)
        command = [sys.executable, "-m", "course.grader.worker", assignment, "--force",
                   *([FEEDBACK_FLAG] if feedback else []), *nbgrader_args]
        self.process = subprocess.Popen(command, cwd=course_dir, env={**nbgrader_env(db_url), TOKEN_VARIABLE: self.token},
                                        text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def grade(self, student: str) -> tuple[str, str]:
        """Autograde (and give feedback to) ``student``; returns the verdict and nbgrader's log.

        The verdict is ``ok``, ``failed`` (nbgrader could not grade the submission) or, for a
        fault of the grader before the submission's first cell, the fault's message. When the
        worker itself dies, the verdict is ``failed`` and ``alive`` turns false.
        """
        lines, reason = [], None
        try:
            self.process.stdin.write(student + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            return "failed", ""
        for line in self.process.stdout:
            if line.startswith(self.token + " reason "):
                reason = line.split(" ", 2)[2].strip()
            elif line.startswith(self.token + " "):
                verdict = line.split(" ", 2)[1]
                return (reason if verdict == "fault" else verdict), "".join(lines)
            else:
                lines.append(line)
        self.process.wait()
        lines.append(f"the nbgrader worker stopped (exit {self.process.returncode}) while grading {student}\n")
        return "failed", "".join(lines)

    @property
    def alive(self) -> bool:
        """Whether the worker can take another student."""
        return self.process.poll() is None

    def close(self) -> None:
        """Let the worker finish and wait for it (killed if it does not stop within a minute)."""
        if self.alive:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()


def autograde_class(course_dir: Path, assignment: str, students: list[str], jobs: int, *, feedback: bool = True,
                    nbgrader_args: tuple[str, ...] = (), db_url: str | None = None,
                    on_student_done: Callable[[], None] | None = None) -> dict[str, GradedSubmission]:
    """Autograde (and give feedback to) ``students`` of ``assignment`` in ``course_dir``, ``jobs`` nbgrader workers at a time.

    Grades go to the gradebook ``db_url`` (default: the folder's ``gradebook.db``).

    Each worker takes the next student in the list as soon as it is free. The assignment must
    already be in the folder's gradebook (``nbgrader generate_assignment``). Every student gets
    a result: one nbgrader could not grade scores 0 and says why in ``attention``. A fault of
    the grader (``GraderFault``: the sandbox, a kernel or the guard failed before a submission's
    first cell) stops grading and raises ``GradingError``, naming the fault; the students it
    hit get no result at all, never a zero.
    """
    pending = deque(students)
    logs: dict[str, str] = {}
    faults: dict[str, str] = {}
    lock = threading.Lock()

    def next_student() -> str | None:
        with lock:
            return pending.popleft() if pending else None

    def work() -> None:
        worker = None
        try:
            while (student := next_student()) is not None:
                if worker is None or not worker.alive:
                    worker = GradingWorker(course_dir, assignment, feedback=feedback, nbgrader_args=nbgrader_args, db_url=db_url)
                verdict, logs[student] = worker.grade(student)
                if verdict not in ("ok", "failed"):
                    with lock:
                        faults[student] = verdict
                        pending.clear()  # the next submissions would fail the same way
                    continue
                if on_student_done:
                    with lock:
                        on_student_done()
        finally:
            if worker is not None:
                worker.close()

    with ThreadPoolExecutor(max(1, min(jobs, len(students)))) as pool:
        for running in [pool.submit(work) for _ in range(min(jobs, len(students)))]:
            running.result()
    if faults:
        graded = [student for student in students if student in logs and student not in faults]
        raise GradingError(
            f"grading {assignment} stopped: {next(iter(faults.values()))}. This is a fault of the grading set-up, not "
            f"of any submission: no grade was recorded for {', '.join(sorted(faults))}"
            + (f"; {len(students) - len(graded) - len(faults)} more were not graded" if len(graded) + len(faults) < len(students) else "")
            + (f" ({len(graded)} graded before it: their results are in the gradebook)" if graded else "")
            + ". Fix the cause and grade again.")
    return read_results(course_dir, assignment, students, logs, db_url=db_url)


def read_results(course_dir: Path, assignment: str, students: list[str], logs: dict[str, str],
                 db_url: str | None = None) -> dict[str, GradedSubmission]:
    """Each student's autograded scores from the gradebook (``db_url``, default the folder's ``gradebook.db``),
    the autograded notebook, and what needs attention."""
    from nbgrader.api import Gradebook, MissingEntry

    results = {}
    with Gradebook(url_for(course_dir, db_url)) as gradebook:
        max_scores = {cell.name: float(cell.max_score) for cell in gradebook.find_notebook(assignment, assignment).grade_cells
                      if cell.cell_type == "code"}
        for student in students:
            graded = GradedSubmission(student, max_scores=dict(max_scores))
            path = student_notebook_path(course_dir, "autograded", student, assignment)
            try:
                notebook = gradebook.find_submission_notebook(assignment, assignment, student)
                graded.scores = {g.name: float(g.score) for g in notebook.grades if g.name in max_scores}
            except MissingEntry:
                pass
            if not path.is_file() or len(graded.scores) < len(max_scores):
                graded.scores = {name: 0.0 for name in max_scores}
                graded.attention.append(f"nbgrader could not grade this submission: {_log_excerpt(logs.get(student, ''), student)}")
            else:
                graded.notebook = nbformat.read(path, as_version=4)
                if incident := graded.notebook.metadata.get(INCIDENT_KEY):
                    graded.attention.append(incident)
                if tampering := graded.notebook.metadata.get(TAMPERING_KEY):
                    graded.attention.append("the submission changed the grading environment: " + "; ".join(tampering))
            results[student] = graded
    return results


def autograde(root: Path, assignment: str, submissions: dict[str, nbformat.NotebookNode], jobs: int = 1) -> dict[str, GradedSubmission]:
    """Autograde ``submissions`` (student id -> notebook) in a scratch copy of the course, without feedback."""
    with tempfile.TemporaryDirectory(prefix=f"grade-{assignment}-") as scratch:
        folder = prepare_course(root, assignment, Path(scratch) / "course")
        for student, notebook in submissions.items():
            target = student_notebook_path(folder, "submitted", student, assignment)
            target.parent.mkdir(parents=True)
            nbformat.write(notebook, target)
        return autograde_class(folder, assignment, sorted(submissions), jobs, feedback=False)


def submitted_students(course_dir: Path, assignment: str) -> list[str]:
    """Students with a folder for ``assignment`` in ``course_dir/submitted``."""
    return sorted(path.parent.name for path in (course_dir / "submitted").glob(f"*/{assignment}") if path.is_dir())


def grade_class(course_dir: Path, assignment: str, jobs: int, *, progress: bool = False,
                unsafe_no_sandbox: bool = False, db_url: str | None = None) -> dict[str, GradedSubmission]:
    """``course grade``: autograde every submission of ``assignment`` in ``course_dir`` and write feedback.

    Registers the assignment in the gradebook first (``nbgrader generate_assignment``), so a
    fresh course folder works, and its schema and course row before any worker opens it; results land in the
    gradebook (``db_url``, default ``gradebook.db``), ``autograded/`` and ``feedback/``.
    Refuses to start without a working sandbox unless ``unsafe_no_sandbox``.
    """
    from course.grader.sandbox import sandbox_problem

    if not unsafe_no_sandbox and (problem := sandbox_problem()):
        raise GradingError(f"refusing to grade without a sandbox: {problem}. "
                           "To grade notebooks you trust unconfined, pass --unsafe-no-sandbox.")
    students = submitted_students(course_dir, assignment)
    if not students:
        raise GradingError(f"no submissions of {assignment} in {course_dir / 'submitted'} "
                           f"(expected submitted/<student>/{assignment}/{assignment}.ipynb)")
    if db_url:
        prepare_gradebook(db_url, course_id(course_dir))
    run_nbgrader_checked(["generate_assignment", assignment, "--force"], course_dir, env=nbgrader_env(db_url))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(students), desc=f"grading {assignment}", unit="student", file=sys.stderr)
    try:
        unsafe = ("--SandboxedKernelManager.unsafe_no_sandbox=True",) if unsafe_no_sandbox else ()
        return autograde_class(course_dir, assignment, students, jobs, nbgrader_args=unsafe, db_url=db_url,
                               on_student_done=bar.update if bar else None)
    finally:
        if bar:
            bar.close()


def write_grades_csv(grades: dict[str, dict[str, GradedSubmission]], path: Path) -> None:
    """Write one row per student and assignment: total, maximum, what needs attention and each test cell's score."""
    test_ids = sorted({test_id for results in grades.values() for graded in results.values() for test_id in graded.max_scores})
    partial = path.with_suffix(".csv.partial")
    with partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "assignment", "score", "max_score", "needs_attention", *test_ids])
        for assignment, results in sorted(grades.items()):
            for student, graded in sorted(results.items()):
                writer.writerow([student, assignment, f"{graded.score:g}", f"{graded.max_score:g}", " | ".join(graded.attention),
                                 *(f"{graded.scores[t]:g}" if t in graded.scores else "" for t in test_ids)])
    partial.replace(path)


def grades_table(grades: dict[str, dict[str, GradedSubmission]]) -> str:
    """A plain-text table of each student's autograded score per assignment, marking who needs attention."""
    assignments = sorted(grades)
    students = sorted({student for results in grades.values() for student in results})
    width = max([len("student"), *map(len, students)])
    lines = ["student".ljust(width) + "".join(f"  {a[:24]:>24}" for a in assignments)]
    for student in students:
        cells = []
        for assignment in assignments:
            graded = grades[assignment].get(student)
            text = f"{graded.score:g}/{graded.max_score:g}{' !' if graded.attention else ''}" if graded else "-"
            cells.append(f"  {text:>24}")
        lines.append(student.ljust(width) + "".join(cells))
    return "\n".join(lines)


def exercise_table(course_dir: Path, assignment: str, results: dict[str, GradedSubmission]) -> str:
    """Per exercise: the mean share of its points the class earned, and how many students earned them all."""
    try:
        exercise_list = exercises(read_notebook(notebook_path(course_dir, "source", assignment)))
    except CourseLayoutError:
        return ""
    lines = [f"{'exercise':32}  {'mean':>6}  {'full marks':>10}"]
    for exercise in exercise_list:
        earned = [sum(g.scores.get(t, 0.0) for t in exercise.test_ids) for g in results.values()]
        mean = sum(earned) / (len(earned) * exercise.points) if earned and exercise.points else 0.0
        full = sum(score == exercise.points for score in earned)
        lines.append(f"{exercise.grade_id[:32]:32}  {mean:>6.0%}  {full:>5}/{len(earned):<4}")
    return "\n".join(lines)


def _log_excerpt(log: str, student: str) -> str:
    relevant = [line for line in log.splitlines() if student in line or "Error" in line or "error" in line]
    return " / ".join(line.strip() for line in relevant[-4:]) or "see nbgrader's log"


def _output_text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join([f"{output.ename}: {output.evalue}", *output.traceback])
    return str(output.get("data", {}).get("text/plain", ""))
