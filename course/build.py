"""Make ``release/`` from ``source/`` with nbgrader's ``generate_assignment``.

nbgrader runs in a scratch copy of the course so that building never touches the
instructor's gradebook; the generated folder then replaces ``release/NN-slug``.
"""
from __future__ import annotations

import filecmp
import shutil
import tempfile
from pathlib import Path

from course.grader.grading import prepare_course


def generate_release(root: Path, assignment: str, scratch: Path) -> Path:
    """Generate ``assignment``'s release inside ``scratch``; returns the generated folder."""
    return prepare_course(root, assignment, scratch) / "release" / assignment


def build(root: Path, assignments: list[str]) -> None:
    """Regenerate ``release/<assignment>`` for each assignment."""
    for assignment in assignments:
        with tempfile.TemporaryDirectory(prefix=f"build-{assignment}-") as scratch:
            generated = generate_release(root, assignment, Path(scratch))
            target = root / "release" / assignment
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(generated, target)


def release_differences(root: Path, assignment: str) -> list[str]:
    """Files in which ``release/<assignment>`` differs from what ``course build`` would make."""
    with tempfile.TemporaryDirectory(prefix=f"build-{assignment}-") as scratch:
        generated = generate_release(root, assignment, Path(scratch))
        committed = root / "release" / assignment
        if not committed.is_dir():
            return [f"release/{assignment}/ is missing"]
        return _tree_differences(generated, committed, f"release/{assignment}")


def _tree_differences(expected: Path, actual: Path, label: str) -> list[str]:
    comparison = filecmp.dircmp(expected, actual, ignore=[".ipynb_checkpoints", "__pycache__"])
    problems = [f"{label}/{name} is missing" for name in comparison.left_only]
    problems += [f"{label}/{name} should not be there" for name in comparison.right_only]
    _, mismatch, errors = filecmp.cmpfiles(expected, actual, comparison.common_files, shallow=False)
    problems += [f"{label}/{name} differs from what `course build` makes" for name in mismatch + errors]
    for name in comparison.common_dirs:
        problems += _tree_differences(expected / name, actual / name, f"{label}/{name}")
    return problems
