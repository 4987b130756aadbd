"""``course demo``: a small class made from the course's own notebooks, graded end to end.

The class lives in its own course folder (``build/demo`` by default), never in the
course's real ``submitted/`` or gradebook: a perfect student (the solution), a blank one
(the release as handed out) and partial students, each the solution with some exercises
answered by the wrong or alternative answers of ``mutants.toml``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from course.assignments import notebook_path, read_notebook
from course.mutants import apply_batch, batches, load_mutants, mutants_path


def class_notebooks(root: Path, assignment: str, size: int | None = None) -> dict[str, nbformat.NotebookNode]:
    """Submissions of a made-up class: perfect, blank and partial students (``size`` of them, cycling, if given)."""
    source = read_notebook(notebook_path(root, "source", assignment))
    students = {"perfect": source, "blank": read_notebook(notebook_path(root, "release", assignment))}
    for k, batch in enumerate(batches(load_mutants(mutants_path(root, assignment)))):
        students[f"partial-{k + 1:02d}"] = apply_batch(source, batch)
    if size is None:
        return students
    kinds = list(students.items())
    return {f"{name}-{n // len(kinds) + 1:02d}": notebook
            for n, (name, notebook) in ((n, kinds[n % len(kinds)]) for n in range(size))}


def write_submissions(folder: Path, assignment: str, notebooks: dict[str, nbformat.NotebookNode]) -> list[str]:
    """Put ``notebooks`` (student id -> notebook) in ``folder/submitted``; returns the student ids."""
    for student, notebook in notebooks.items():
        target = folder / "submitted" / student / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
    return sorted(notebooks)


def make_class(root: Path, assignment: str, folder: Path) -> list[str]:
    """Write a demo class for ``assignment`` into the course folder ``folder``; returns the student ids."""
    return write_submissions(folder, assignment, class_notebooks(root, assignment))


def prepare_folder(root: Path, folder: Path, assignments: list[str]) -> None:
    """Start ``folder`` afresh as a course folder with the course's config, source and release."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    for area in ("source", "release"):
        for assignment in assignments:
            shutil.copytree(root / area / assignment, folder / area / assignment)
