"""Grade notebooks with the real ``nbgrader autograde``, several at once.

nbgrader grades one submission after another. To use every core, the submissions are
split into groups and each group is graded by its own ``nbgrader autograde`` process in
its own scratch copy of the course (the assignment's source, the release, a gradebook
and this repository's ``nbgrader_config.py``); scores are then read back from each
scratch gradebook with nbgrader's own API.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.assignments import is_autograded_test, nbgrader_meta

NBGRADER = [sys.executable, "-m", "nbgrader"]


class GradingError(RuntimeError):
    """nbgrader itself failed (not a submission): the message carries the end of its log."""


@dataclass
class GradedSubmission:
    """The outcome of autograding one student's notebook."""

    student: str
    scores: dict[str, float] = field(default_factory=dict)
    max_scores: dict[str, float] = field(default_factory=dict)
    notebook: nbformat.NotebookNode | None = None

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


def run_nbgrader(args: list[str], course_dir: Path) -> None:
    """Run ``nbgrader ARGS`` in ``course_dir``; raise GradingError with its log when it fails."""
    result = subprocess.run(NBGRADER + args, cwd=course_dir, capture_output=True, text=True, env=nbgrader_env())
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise GradingError(f"`nbgrader {' '.join(args)}` failed in {course_dir} (exit {result.returncode}):\n{tail}")


def prepare_course(root: Path, assignment: str, folder: Path) -> Path:
    """Make ``folder`` a minimal course for ``assignment``: config, source, release and gradebook."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(root / "source" / assignment, folder / "source" / assignment, dirs_exist_ok=True)
    run_nbgrader(["generate_assignment", assignment, "--force"], folder)
    return folder


def autograde(root: Path, assignment: str, submissions: dict[str, nbformat.NotebookNode], jobs: int = 1,
              keep_in: Path | None = None) -> dict[str, GradedSubmission]:
    """Autograde ``submissions`` (student id -> notebook) of ``assignment`` with up to ``jobs`` nbgrader processes.

    Returns each student's scores per test cell and autograded notebook. When ``keep_in`` is
    given, the autograded notebooks are also copied to ``keep_in/<student>/<assignment>/``.
    """
    with tempfile.TemporaryDirectory(prefix=f"grade-{assignment}-") as scratch:
        base = prepare_course(root, assignment, Path(scratch) / "base")
        students = sorted(submissions)
        groups = [students[i::jobs] for i in range(max(1, min(jobs, len(students))))]
        folders = []
        for number, group in enumerate(groups):
            folder = Path(scratch) / f"group{number}"
            shutil.copytree(base, folder)
            for student in group:
                target = folder / "submitted" / student / assignment / f"{assignment}.ipynb"
                target.parent.mkdir(parents=True)
                nbformat.write(submissions[student], target)
            folders.append(folder)
        with ThreadPoolExecutor(len(folders)) as pool:
            list(pool.map(lambda f: run_nbgrader(["autograde", assignment, "--force"], f), folders))
        results: dict[str, GradedSubmission] = {}
        for folder, group in zip(folders, groups):
            results.update(_read_results(folder, assignment, group))
            if keep_in is not None:
                for student in group:
                    shutil.copytree(folder / "autograded" / student / assignment, keep_in / student / assignment, dirs_exist_ok=True)
        return results


def _read_results(folder: Path, assignment: str, students: list[str]) -> dict[str, GradedSubmission]:
    from nbgrader.api import Gradebook, MissingEntry

    results = {}
    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gradebook:
        for student in students:
            graded = GradedSubmission(student)
            try:
                notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            except MissingEntry:
                results[student] = graded
                continue
            for grade in notebook.grades:
                if grade.auto_score is not None and grade.cell_type == "code" and grade.max_score > 0:
                    graded.scores[grade.name] = float(grade.score)
                    graded.max_scores[grade.name] = float(grade.max_score)
            path = folder / "autograded" / student / assignment / f"{assignment}.ipynb"
            if path.is_file():
                graded.notebook = nbformat.read(path, as_version=4)
            results[student] = graded
    return results


def _output_text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join([f"{output.ename}: {output.evalue}", *output.traceback])
    return str(output.get("data", {}).get("text/plain", ""))


def nbgrader_env() -> dict[str, str]:
    """The environment nbgrader runs in: this Python's scripts first on PATH (nbgrader calls
    ``alembic`` by name), and one BLAS thread per kernel."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # The parallelism comes from grading several notebooks at once, not from threads in each.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    return env


def submitted_notebooks(root: Path, assignment: str) -> dict[str, nbformat.NotebookNode]:
    """Every student's submitted notebook of ``assignment``, from ``root/submitted/<student>/<assignment>/``."""
    from course.assignments import read_notebook

    return {path.parent.parent.name: read_notebook(path)
            for path in sorted((root / "submitted").glob(f"*/{assignment}/{assignment}.ipynb"))}


def grade_class(root: Path, assignment: str, jobs: int) -> dict[str, GradedSubmission]:
    """Autograde every submission of ``assignment`` in ``root/submitted``; autograded notebooks go to ``root/autograded``."""
    submissions = submitted_notebooks(root, assignment)
    if not submissions:
        raise GradingError(f"no submissions of {assignment} in {root / 'submitted'} (expected submitted/<student>/{assignment}/{assignment}.ipynb)")
    return autograde(root, assignment, submissions, jobs=jobs, keep_in=root / "autograded")


def write_grades_csv(grades: dict[str, dict[str, GradedSubmission]], path: Path) -> None:
    """Write one row per student and assignment: total, maximum and the score of every test cell."""
    import csv

    test_ids = sorted({test_id for results in grades.values() for graded in results.values() for test_id in graded.max_scores})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", "assignment", "score", "max_score", *test_ids])
        for assignment, results in sorted(grades.items()):
            for student, graded in sorted(results.items()):
                writer.writerow([student, assignment, f"{graded.score:g}", f"{graded.max_score:g}",
                                 *(f"{graded.scores[t]:g}" if t in graded.scores else "" for t in test_ids)])


def grades_table(grades: dict[str, dict[str, GradedSubmission]]) -> str:
    """A plain-text table of each student's autograded score per assignment."""
    assignments = sorted(grades)
    students = sorted({student for results in grades.values() for student in results})
    width = max([len("student"), *map(len, students)])
    lines = ["student".ljust(width) + "".join(f"  {a[:24]:>24}" for a in assignments)]
    for student in students:
        cells = []
        for assignment in assignments:
            graded = grades[assignment].get(student)
            cells.append(f"  {(f'{graded.score:g}/{graded.max_score:g}' if graded else '-'):>24}")
        lines.append(student.ljust(width) + "".join(cells))
    return "\n".join(lines)
