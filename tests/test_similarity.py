"""``course similarity``: a disguised copy is found; honest, independent solutions of the real notebooks are not."""
from __future__ import annotations

import shutil

import nbformat
import pytest

from course.assignments import assignment_ids, is_exercise_solution, nbgrader_meta, notebook_path, read_notebook
from course.cli import main
from course.demo import disguised_copy
from course.mutants import apply_batch, load_mutants, mutants_path
from course.similarity import own_code, similarity_report
from conftest import REPO

FIRST = "01-what-is-ai-engineering"


def alternatives(root, assignment: str, which: int) -> dict:
    """Each exercise's ``which``-th alternative answer (0-based), for the exercises that have one."""
    found = {}
    for mutant in load_mutants(mutants_path(root, assignment)):
        if mutant.kind == "alternative":
            found.setdefault(mutant.exercise, []).append(mutant)
    return {exercise: answers[which] for exercise, answers in found.items() if len(answers) > which}


def course_with(root, tmp_path, assignment: str, notebooks: dict) -> object:
    """A course folder holding ``assignment``'s source and release and the ``notebooks`` (student -> notebook) as submitted."""
    folder = tmp_path / "course"
    folder.mkdir()
    shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    for area in ("source", "release"):
        shutil.copytree(root / area / assignment, folder / area / assignment)
    for student, notebook in notebooks.items():
        target = folder / "submitted" / student / assignment / f"{assignment}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(notebook if isinstance(notebook, str) else nbformat.writes(notebook))
    return folder


def answers(notebook) -> dict[str, str]:
    return {nbgrader_meta(cell)["grade_id"]: cell.source for cell in notebook.cells if is_exercise_solution(cell)}


def test_renamed_variables_and_reordered_functions_do_not_hide_a_copy(repo, tmp_path, capsys):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    honest = apply_batch(source, alternatives(repo, FIRST, 0))
    copied = apply_batch(honest, {})
    for cell in copied.cells:
        if is_exercise_solution(cell):
            cell.source = disguised_copy(cell.source)
    changed = [g for g, code in answers(copied).items() if code != answers(honest)[g]]
    assert len(changed) == len(answers(honest)) and any("my_" in code for code in answers(copied).values())
    broken = nbformat.writes(source)[:200]
    folder = course_with(repo, tmp_path, FIRST, {"original": honest, "copier": copied, "solution": source, "broken": broken,
                                                 "blank": read_notebook(notebook_path(repo, "release", FIRST))})

    assert main(["--root", str(folder), "similarity", FIRST]) == 3
    out = capsys.readouterr().out
    report = similarity_report(folder, FIRST)
    [pair] = report.pairs
    assert {pair.first, pair.second} == {"original", "copier"} and min(pair.first_share, pair.second_share) > 0.85
    assert [m.first for m in report.reference] == ["solution"]
    assert report.skipped == {"blank": "no code beyond the starter code", "broken": "not a readable notebook (NotJSONError)"}
    # The matching lines, side by side: the copier's renamed line faces the original's.
    label, left, right = pair.side_by_side()[0]
    assert label in answers(honest) and left.matched and right.matched
    assert "copier ~ original" in out or "original ~ copier" in out
    assert any("my_" in line and "|" in line and line.strip().startswith(">") for line in out.splitlines())


@pytest.mark.parametrize("assignment", assignment_ids(REPO))
def test_honest_independent_solutions_are_not_flagged(repo, tmp_path, assignment):
    source = read_notebook(notebook_path(repo, "source", assignment))
    release = read_notebook(notebook_path(repo, "release", assignment))
    first, second = alternatives(repo, assignment, 0), alternatives(repo, assignment, 1)
    second_only = apply_batch(release, second)  # exercises without a second alternative stay unanswered
    folder = course_with(repo, tmp_path, assignment, {"solution": source, "alternatives": apply_batch(source, first),
                                                      "other-alternatives": second_only})
    report = similarity_report(folder, assignment)
    assert report.pairs == [], [(m.first, m.second, m.share) for m in report.pairs]
    assert [m.first for m in report.reference] == ["solution"]
    assert "alternatives" in report.compared and report.code_size["alternatives"] > report.min_match


def test_own_code_is_the_answer_cells_and_the_cells_a_student_added(repo):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    notebook = apply_batch(source, {})
    notebook.cells.append(nbformat.v4.new_code_cell("print('my own cell')"))
    cells = own_code(notebook)
    assert [c.label for c in cells if c.label in answers(source)] == list(answers(source))
    assert (cells[-1].label, cells[-1].code) == (f"cell {len(notebook.cells)}", "print('my own cell')")
    assert not any("BEGIN SOLUTION" in c.code or "HIDDEN TESTS" in c.code or "check_equal" in c.code for c in cells)
