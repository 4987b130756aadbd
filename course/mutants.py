"""Wrong and alternative answers that prove each exercise's tests are worth their points.

Each assignment keeps ``source/NN-slug/mutants.toml`` beside its notebook: a list of
``[[mutant]]`` tables with ``exercise`` (the solution cell's grade id), ``name``, ``kind``
(``"wrong"`` or ``"alternative"``), ``code`` (the whole replacement solution cell) and, for
wrong answers, ``message`` (a phrase a student making that mistake should see) and
``mistake``: which kind of mistake it is, one of ``MISTAKE_KINDS``, so that ``course verify``
can say how many kinds of mistake each exercise's tests are proven against.

To keep verification fast, mutants are graded in *batches*: batch k is the solution
notebook with the k-th mutant of every exercise swapped in at once. The tests of one
exercise do not use another exercise's answer, so each exercise is judged on its own.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from pathlib import Path

from course.assignments import CourseLayoutError, Exercise, is_exercise_solution, nbgrader_meta
from course.grader.grading import GradedSubmission

MIN_WRONG = 3
MIN_ALTERNATIVE = 1
# The kinds of mistake a wrong answer can make (docs/authors.md has the checklist behind them).
MISTAKE_KINDS = {
    "edge-case": "ignores an edge case the statement names (missing values, ties, an empty group, a long text)",
    "property": "breaks a property the statement names (by type not by name, order, dtype, a library convention)",
    "formula": "computes something else: another definition, formula or algorithm",
    "boundary": "is off at a boundary: > for >=, off by one, a rounding or a quantile level",
    "shortcut": "takes a shortcut that clears a loose check (a subset of rows, a fixed column list, a memorised value)",
    "input-mutation": "changes an input it was told to leave alone",
    "leakage": "lets test rows or future information into fitting",
    "security": "breaks a security or privacy property the statement names",
    "interface": "returns the wrong type, shape or structure, or fails on valid input",
}


@dataclass(frozen=True)
class Mutant:
    """One wrong or alternative answer to an exercise."""

    exercise: str
    name: str
    kind: str
    code: str
    message: str = ""
    mistake: str = ""


@dataclass(frozen=True)
class Verdict:
    """How one mutant fared: whether its exercise's tests judged it right, and whether they named the mistake."""

    mutant: Mutant
    score: float
    max_score: float
    judged_right: bool
    named_mistake: bool


def mutants_path(root: Path, assignment: str) -> Path:
    """Where ``assignment``'s mutants are kept."""
    return root / "source" / assignment / "mutants.toml"


def load_mutants(path: Path) -> list[Mutant]:
    """Read and check a mutants file; errors name the file and the entry at fault."""
    try:
        entries = tomllib.loads(path.read_text()).get("mutant", [])
    except FileNotFoundError:
        raise CourseLayoutError(f"{path} is missing: every assignment needs wrong and alternative answers for its exercises") from None
    except tomllib.TOMLDecodeError as error:
        raise CourseLayoutError(f"{path} is not valid TOML: {error}") from None
    mutants = []
    for number, entry in enumerate(entries, 1):
        missing = {"exercise", "name", "kind", "code"} - set(entry)
        wrong = entry.get("kind") == "wrong"
        if missing or entry.get("kind") not in ("wrong", "alternative") or \
                (wrong and (not entry.get("message") or entry.get("mistake") not in MISTAKE_KINDS)):
            raise CourseLayoutError(
                f"{path}: mutant #{number} ({entry.get('name', 'unnamed')}) needs exercise, name, kind "
                "('wrong' or 'alternative'), code, and for a wrong answer the message a student should see and "
                f"its mistake, one of: {', '.join(MISTAKE_KINDS)}"
            )
        mutants.append(Mutant(entry["exercise"], entry["name"], entry["kind"], entry["code"].strip("\n"),
                              entry.get("message", ""), entry.get("mistake", "")))
    return mutants


def coverage_problems(mutants: list[Mutant], exercises: list[Exercise]) -> list[str]:
    """What the mutants file lacks: too few mutants for an exercise, unknown exercises, duplicate names."""
    problems = []
    known = {exercise.grade_id for exercise in exercises}
    for mutant in mutants:
        if mutant.exercise not in known:
            problems.append(f"mutant {mutant.name!r} names exercise {mutant.exercise!r}, which the notebook does not have")
    names = [(m.exercise, m.name) for m in mutants]
    problems += [f"mutant name {name!r} is used twice for {exercise!r}" for exercise, name in sorted(set(names)) if names.count((exercise, name)) > 1]
    for exercise in exercises:
        kinds = [m.kind for m in mutants if m.exercise == exercise.grade_id]
        if kinds.count("wrong") < MIN_WRONG or kinds.count("alternative") < MIN_ALTERNATIVE:
            problems.append(
                f"exercise {exercise.grade_id!r} has {kinds.count('wrong')} wrong and {kinds.count('alternative')} alternative "
                f"answers; it needs at least {MIN_WRONG} and {MIN_ALTERNATIVE}"
            )
    return problems


def mistake_coverage(mutants: list[Mutant], exercises: list[Exercise]) -> dict[str, list[str]]:
    """For each exercise, the distinct kinds of mistake its wrong answers make, in ``MISTAKE_KINDS`` order."""
    return {exercise.grade_id: [kind for kind in MISTAKE_KINDS
                                if any(m.exercise == exercise.grade_id and m.mistake == kind for m in mutants)]
            for exercise in exercises}


def batches(mutants: list[Mutant]) -> list[dict[str, Mutant]]:
    """Group mutants so that each batch holds at most one mutant per exercise."""
    by_exercise: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_exercise.setdefault(mutant.exercise, []).append(mutant)
    depth = max((len(group) for group in by_exercise.values()), default=0)
    return [{ex: group[k] for ex, group in by_exercise.items() if k < len(group)} for k in range(depth)]


def apply_batch(solution_notebook, batch: dict[str, Mutant]):
    """A copy of the solution notebook with each batched exercise's solution cell replaced by its mutant."""
    notebook = copy.deepcopy(solution_notebook)
    for cell in notebook.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if is_exercise_solution(cell) and grade_id in batch:
            cell.source = batch[grade_id].code
    return notebook


def judge(mutant: Mutant, exercise: Exercise, graded: GradedSubmission) -> Verdict:
    """Judge one mutant from the grades of the batch it was graded in."""
    score = sum(graded.scores.get(test_id, 0.0) for test_id in exercise.test_ids)
    if mutant.kind == "alternative":
        return Verdict(mutant, score, exercise.points, score == exercise.points, True)
    output = "\n".join(graded.test_output(test_id) for test_id in exercise.test_ids)
    return Verdict(mutant, score, exercise.points, score < exercise.points, mutant.message in output)
