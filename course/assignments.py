"""Where the course's assignments live and how their notebooks are structured.

An assignment ``NN-slug`` is one notebook, ``source/NN-slug/NN-slug.ipynb`` (solutions and
hidden tests) and ``release/NN-slug/NN-slug.ipynb`` (what students get). An *exercise* is an
autograded solution cell (nbgrader metadata ``solution: true``, code) together with the
autograded test cells that follow it, up to the next exercise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ASSIGNMENT_ID = re.compile(r"^\d\d-[a-z0-9]+(-[a-z0-9]+)*$")


class CourseLayoutError(RuntimeError):
    """The course folder, an assignment or its notebook is not where or what it should be."""


@dataclass
class Exercise:
    """One exercise: the solution cell's grade id and the test cells that grade it."""

    grade_id: str
    test_ids: list[str] = field(default_factory=list)
    points: float = 0.0


def find_root(start: Path | None = None) -> Path:
    """The course folder: ``start`` (default: the working directory) or its nearest parent holding ``source/`` and ``nbgrader_config.py``."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "source").is_dir() and (folder / "nbgrader_config.py").is_file():
            return folder
    raise CourseLayoutError(
        f"no course folder at or above {here}: run this from the course repository "
        "(the folder with source/ and nbgrader_config.py) or pass --root"
    )


def assignment_ids(root: Path) -> list[str]:
    """All assignment ids under ``root/source``, in order."""
    return sorted(p.name for p in (root / "source").iterdir() if p.is_dir() and ASSIGNMENT_ID.match(p.name))


def resolve(root: Path, names: list[str] | None) -> list[str]:
    """Turn names given on a command line (``01`` or ``01-slug``; none means all) into assignment ids."""
    known = assignment_ids(root)
    if not names:
        return known
    chosen = []
    for name in names:
        matches = [a for a in known if a == name or a.split("-", 1)[0] == name]
        if len(matches) != 1:
            raise CourseLayoutError(f"no assignment {name!r} in {root / 'source'}; known: {', '.join(known) or 'none'}")
        chosen.append(matches[0])
    return chosen


def notebook_path(root: Path, area: str, assignment: str) -> Path:
    """The notebook of ``assignment`` in ``area`` (``source`` or ``release``)."""
    return root / area / assignment / f"{assignment}.ipynb"


def student_notebook_path(root: Path, area: str, student: str, assignment: str) -> Path:
    """A student's notebook of ``assignment`` in ``area`` (``submitted``, ``autograded``)."""
    return root / area / student / assignment / f"{assignment}.ipynb"


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, with an error that names the file and the fix when it is missing or broken."""
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise CourseLayoutError(f"notebook {path} is missing: every assignment NN-slug needs source/NN-slug/NN-slug.ipynb") from None
    except Exception as error:  # noqa: BLE001 - nbformat raises several unrelated types for bad JSON
        raise CourseLayoutError(f"notebook {path} cannot be read ({type(error).__name__}: {error}); restore it from git") from None


def nbgrader_meta(cell) -> dict:
    """The cell's nbgrader metadata (empty when it has none)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def is_autograded_test(cell) -> bool:
    """True for an nbgrader autograded-test cell (a graded, non-solution code cell)."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_exercise_solution(cell) -> bool:
    """True for the code cell in which a student writes an exercise's answer."""
    meta = nbgrader_meta(cell)
    return cell.cell_type == "code" and bool(meta.get("solution")) and not meta.get("grade")


def exercises(notebook) -> list[Exercise]:
    """The notebook's exercises, in order, each with the test cells that follow its solution cell."""
    found: list[Exercise] = []
    for cell in notebook.cells:
        meta = nbgrader_meta(cell)
        if is_exercise_solution(cell):
            found.append(Exercise(meta["grade_id"]))
        elif is_autograded_test(cell):
            if not found:
                raise CourseLayoutError(f"test cell {meta.get('grade_id')!r} comes before any exercise's solution cell")
            found[-1].test_ids.append(meta["grade_id"])
            found[-1].points += float(meta.get("points", 0))
    return found


SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")


def solved_release(root: Path, assignment: str) -> nbformat.NotebookNode:
    """The release notebook as a student who solved everything hands it in: each answer cell
    holds the source's solution (without nbgrader's markers); every other cell is the release's."""
    source = read_notebook(notebook_path(root, "source", assignment))
    solutions = {nbgrader_meta(cell)["grade_id"]: cell.source for cell in source.cells if nbgrader_meta(cell).get("solution")}
    release = read_notebook(notebook_path(root, "release", assignment))
    for cell in release.cells:
        if nbgrader_meta(cell).get("solution"):
            lines = solutions[nbgrader_meta(cell)["grade_id"]].splitlines()
            cell.source = "\n".join(line for line in lines if not SOLUTION_MARKER.match(line))
    return release
