"""``course demo``: a small class made from the course's own notebooks, graded end to end.

The class lives in its own course folder (``build/demo`` by default), never in the
course's real ``submitted/`` or gradebook. For each assignment ``demo_class`` makes:

- ``perfect``: the solution notebook;
- ``blank``: the release as handed out;
- ``partial-01`` ... ``partial-06``: students from strong to weak; each exercise is answered
  with the solution or an alternative correct answer from ``mutants.toml``, or missed: a
  wrong answer from ``mutants.toml``, left unanswered, or broken by a syntax error. Which
  exercises a student misses is drawn from a seeded random generator, so every run makes
  the same class;
- ``broken-file``: a notebook file cut off halfway through saving (not valid JSON);
- ``hostile``: the solution, except that the first exercise's answer cell looks for the
  hidden tests and patches the check functions to pass instead of answering;
- ``copied-from`` and ``copier``: an honest student who answers every exercise in their own
  way (the first alternative answer of each exercise in ``mutants.toml``), and one who copied
  those answers, renamed the local variables, reordered the functions and let the reformatting
  drop the comments. Both earn full marks; ``course similarity`` must pair them (when their
  answers are long enough to tell from a common idiom), and pair nobody else.

At most one partial student hands in a wrong or alternative answer to each exercise: the
mutants of an exercise are variations of one another, written by one author, and students who
hand in variations of the same code are what the similarity check looks for.

Every demo student knows the range of autograded points it must earn and whether grading
must flag it for a person; ``surprises`` compares that with the grades.

``class_notebooks`` and ``make_class`` (perfect, blank and one student per batch of
mutants) make the simpler classes that ``course bench --grading`` and the grading tests use.
"""
from __future__ import annotations

import ast
import copy
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course.assignments import (CourseLayoutError, exercises, is_exercise_solution, nbgrader_meta, notebook_path,
                                read_notebook, student_notebook_path)
from course.grader.grading import GradedSubmission
from course.mutants import Mutant, apply_batch, batches, load_mutants, mutants_path
from course.similarity import SimilarityReport

# The chance that each partial student gets an exercise right, before the exercise's difficulty is taken off.
PARTIAL_SKILLS = (0.95, 0.85, 0.75, 0.6, 0.45, 0.3)
MAX_DIFFICULTY = 0.3
ALTERNATIVE_SHARE = 0.3  # of right answers, how many use an alternative answer when the exercise has one
RIGHT = ("right", "alternative")
MISSES = {"wrong": 0.7, "unanswered": 0.15, "syntax error": 0.15}
Plan = dict[str, tuple[str, Mutant | None]]  # exercise grade id -> (outcome, the mutant answered with)
DEMO_MARKER = ".course-demo"
DEFINITION_LINE = re.compile(r"^([ \t]*(?:def|class)\b[^\n]*?):[ \t]*$", re.M)

HOSTILE_ANSWER = '''\
# Instead of answering: look for the hidden tests, then make every check pass.
import math

import numpy

import course.checks

HIDDEN_TESTS = ""
for path in ["../../../source/{assignment}/{assignment}.ipynb", "{source}"]:
    try:
        HIDDEN_TESTS += open(path).read()
    except OSError:
        pass
for name in ["check", "check_equal", "check_close", "check_type", "fail"]:
    setattr(course.checks, name, lambda *args, **kwargs: None)
math.isclose = numpy.allclose = lambda *args, **kwargs: True
'''


@dataclass(frozen=True)
class DemoStudent:
    """One made-up submission: what is handed in, and what grading must make of it."""

    name: str
    about: str
    file_text: str
    least: float
    most: float
    flagged: bool = False


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
        target = student_notebook_path(folder, "submitted", student, assignment)
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, target)
    return sorted(notebooks)


def make_class(root: Path, assignment: str, folder: Path) -> list[str]:
    """Write the simple class of ``class_notebooks`` for ``assignment`` into the course folder ``folder``; returns the student ids."""
    return write_submissions(folder, assignment, class_notebooks(root, assignment))


def demo_class(root: Path, assignment: str) -> list[DemoStudent]:
    """The demo class of ``assignment``: perfect, partial, blank, broken, hostile and copying students."""
    source = read_notebook(notebook_path(root, "source", assignment))
    release = read_notebook(notebook_path(root, "release", assignment))
    exercise_list = exercises(source)
    total = sum(exercise.points for exercise in exercise_list)
    mutants = load_mutants(mutants_path(root, assignment))
    difficulty = random.Random(f"{assignment}/difficulty")
    difficulties = {exercise.grade_id: difficulty.uniform(0, MAX_DIFFICULTY) for exercise in exercise_list}
    students = [DemoStudent("perfect", "hands in the solution notebook", nbformat.writes(source), total, total)]
    own_answers = {}
    for mutant in mutants:
        if mutant.kind == "alternative":
            own_answers.setdefault(mutant.exercise, mutant)
    unused = [mutant for mutant in mutants if mutant not in own_answers.values()]
    for number, skill in enumerate(PARTIAL_SKILLS, 1):
        name = f"partial-{number:02d}"
        plan = partial_plan(random.Random(f"{assignment}/{name}"), skill, difficulties, unused)
        answered = {mutant.exercise for _, mutant in plan.values() if mutant is not None}
        unused = [mutant for mutant in unused if mutant.exercise not in answered]
        students.append(partial_student(name, plan, source, release))
    students += [
        DemoStudent("blank", "hands in the notebook as released, nothing answered", nbformat.writes(release), 0, 0),
        broken_file_student(source),
        hostile_student(root, assignment, source),
        *copying_students(source, own_answers, total),
    ]
    return students


COPY_PAIR = ("copied-from", "copier")


def copying_students(source, own_answers: dict[str, Mutant], total: float) -> list[DemoStudent]:
    """An honest student answering with ``own_answers`` (exercise -> alternative answer), and a disguised copy of them."""
    honest = apply_batch(source, own_answers)
    copied = copy.deepcopy(honest)
    for cell in copied.cells:
        if is_exercise_solution(cell) and nbgrader_meta(cell)["grade_id"] in own_answers:
            cell.source = disguised_copy(cell.source)
    original, copier = COPY_PAIR
    return [DemoStudent(original, f"answers every exercise in its own way (the alternative answers); {copier} copied it",
                        nbformat.writes(honest), total, total),
            DemoStudent(copier, f"copied {original}'s answers, renamed the local variables and reordered the functions",
                        nbformat.writes(copied), total, total)]


def disguised_copy(code: str) -> str:
    """``code`` as someone who copied it hands it in: local variables renamed, each run of consecutive functions in
    reverse order, comments and layout redone (``ast.unparse``). Behaviour is unchanged."""
    tree = ast.parse(code)
    taken = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    for node in tree.body:
        functions = [node] if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) else \
            [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] if isinstance(node, ast.ClassDef) else []
        for function in functions:
            _rename_locals(function, taken)
    tree.body = _reverse_function_runs(tree.body)
    return ast.unparse(tree)


def _rename_locals(function, taken: set[str]) -> None:
    """Rename the names ``function`` assigns (not its parameters, nor anything declared global or imported) everywhere in it."""
    fixed = {arg.arg for node in ast.walk(function) if isinstance(node, ast.arguments)
             for arg in [*node.posonlyargs, *node.args, *node.kwonlyargs, *filter(None, [node.vararg, node.kwarg])]}
    fixed |= {name for node in ast.walk(function) if isinstance(node, (ast.Global, ast.Nonlocal)) for name in node.names}
    fixed |= {(alias.asname or alias.name).split(".")[0] for node in ast.walk(function)
              if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    fixed |= {node.name for node in ast.walk(function) if isinstance(node, ast.ExceptHandler) and node.name}
    assigned = sorted({node.id for node in ast.walk(function) if isinstance(node, ast.Name)
                       and isinstance(node.ctx, ast.Store)} - fixed)
    renamed = {}
    for name in assigned:
        new = f"my_{name.lstrip('_')}"
        while new in taken:
            new += "_"
        taken.add(new)
        renamed[name] = new
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and node.id in renamed:
            node.id = renamed[node.id]


def _reverse_function_runs(body: list) -> list:
    """``body`` with each run of consecutive functions reversed (those whose definition runs no code: no decorators,
    only constants as defaults), so the order cannot change what the cell does."""
    def movable(node) -> bool:
        defaults = [*node.args.defaults, *filter(None, node.args.kw_defaults)] if isinstance(node, ast.FunctionDef) else []
        return isinstance(node, ast.FunctionDef) and not node.decorator_list and all(isinstance(d, ast.Constant) for d in defaults)

    result, run = [], []
    for node in body + [None]:
        if node is not None and movable(node):
            run.append(node)
            continue
        result += run[::-1]
        run = []
        if node is not None:
            result.append(node)
    return result


def partial_plan(rng: random.Random, skill: float, difficulties: dict[str, float], mutants: list[Mutant]) -> Plan:
    """For each exercise (grade id -> difficulty), how a student of ``skill`` answers it: ``(outcome, mutant used)``.

    Outcomes are ``right``, ``alternative``, ``wrong``, ``unanswered`` and ``syntax error``. With two
    exercises or more, a partial student gets at least one right and misses at least one.
    """
    wrong = {grade_id: [m for m in mutants if m.exercise == grade_id and m.kind == "wrong"] for grade_id in difficulties}
    alternative = {grade_id: [m for m in mutants if m.exercise == grade_id and m.kind == "alternative"] for grade_id in difficulties}
    knows = {grade_id: rng.random() < skill - difficulty for grade_id, difficulty in difficulties.items()}
    if len(knows) >= 2 and all(knows.values()):
        knows[max(difficulties, key=difficulties.get)] = False
    if len(knows) >= 2 and not any(knows.values()):
        knows[min(difficulties, key=difficulties.get)] = True
    plan: Plan = {}
    for grade_id, right in knows.items():
        if right:
            use_alternative = bool(alternative[grade_id]) and rng.random() < ALTERNATIVE_SHARE
            plan[grade_id] = ("alternative", rng.choice(alternative[grade_id])) if use_alternative else ("right", None)
            continue
        outcome = rng.choices(list(MISSES), weights=list(MISSES.values()))[0]
        if outcome == "wrong" and not wrong[grade_id]:
            outcome = "unanswered"
        plan[grade_id] = (outcome, rng.choice(wrong[grade_id]) if outcome == "wrong" else None)
    return plan


def partial_student(name: str, plan: Plan, source, release) -> DemoStudent:
    """The solution notebook with each exercise answered as ``plan`` says, and the points it must earn."""
    notebook = copy.deepcopy(source)
    stubs = {nbgrader_meta(cell).get("grade_id"): cell.source for cell in release.cells if is_exercise_solution(cell)}
    for cell in notebook.cells:
        grade_id = nbgrader_meta(cell).get("grade_id")
        if not is_exercise_solution(cell) or grade_id not in plan:
            continue
        outcome, mutant = plan[grade_id]
        if mutant is not None:
            cell.source = mutant.code
        elif outcome == "unanswered":
            cell.source = stubs[grade_id]
        elif outcome == "syntax error":
            cell.source = with_syntax_error(cell.source)
    points = {exercise.grade_id: exercise.points for exercise in exercises(source)}
    smallest_test = _smallest_test_points(source)
    total = sum(points.values())
    least = sum(points[g] for g, (outcome, _) in plan.items() if outcome in RIGHT)
    # Test cells score all or nothing, and a wrong answer fails at least one of its exercise's tests.
    most = total - sum(points[g] if outcome in ("unanswered", "syntax error") else smallest_test.get(g, 0.0)
                       for g, (outcome, _) in plan.items() if outcome not in RIGHT)
    return DemoStudent(name, describe_plan(plan), nbformat.writes(notebook), least, most)


def describe_plan(plan: Plan) -> str:
    """One line saying which exercises a partial student got right and how it missed the others."""
    right = [g for g, (outcome, _) in plan.items() if outcome in RIGHT]
    alternatives = sum(outcome == "alternative" for outcome, _ in plan.values())
    parts = [f"right: {len(right)} of {len(plan)}" + (f" ({alternatives} by an alternative answer)" if alternatives else "")]
    for kind in MISSES:
        missed = [f"{g} ({mutant.name})" if mutant else g for g, (outcome, mutant) in plan.items() if outcome == kind]
        if missed:
            parts.append(f"{kind}: {', '.join(missed)}")
    return "; ".join(parts)


def with_syntax_error(code: str) -> str:
    """``code`` with the colon of its first ``def`` or ``class`` line left out (or, failing that, a stray bracket)."""
    broken, count = DEFINITION_LINE.subn(r"\1", code, count=1)
    return broken if count else code + "\n)"


def broken_file_student(source) -> DemoStudent:
    """A notebook file cut off halfway through saving: not valid JSON, so nothing of it can be graded."""
    text = nbformat.writes(source)
    return DemoStudent("broken-file", "the notebook file was cut off halfway through saving (not valid JSON)",
                       text[: len(text) // 2], 0, 0, flagged=True)


def hostile_student(root: Path, assignment: str, source) -> DemoStudent:
    """The solution, except that the first exercise's answer cell tries to read the hidden tests and rig the checks."""
    notebook = copy.deepcopy(source)
    exercise_list = exercises(source)
    cheated = exercise_list[0]
    answer = next(cell for cell in notebook.cells if is_exercise_solution(cell) and nbgrader_meta(cell)["grade_id"] == cheated.grade_id)
    answer.source = HOSTILE_ANSWER.format(assignment=assignment, source=notebook_path(root, "source", assignment))
    earned = sum(exercise.points for exercise in exercise_list[1:])
    return DemoStudent("hostile", f"solves every exercise but {cheated.grade_id}, where it looks for the hidden tests "
                       "and patches the check functions to pass instead", nbformat.writes(notebook), earned, earned, flagged=True)


def write_demo_class(root: Path, assignment: str, folder: Path) -> list[DemoStudent]:
    """Write ``assignment``'s demo class into ``folder/submitted``; returns its students."""
    students = demo_class(root, assignment)
    for student in students:
        target = student_notebook_path(folder, "submitted", student.name, assignment)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(student.file_text)
    return students


def similarity_surprises(students: list[DemoStudent], report: SimilarityReport | None) -> list[str]:
    """What ``course similarity`` got wrong about the demo class: the copy pair not found (when their answers are long
    enough to tell from an idiom), another pair found, or the honest alternative answers taken for the reference."""
    names = {student.name for student in students}
    if report is None or not set(COPY_PAIR) <= names:
        return []
    original, copier = COPY_PAIR
    found = []
    pairs = {frozenset((match.first, match.second)) for match in report.pairs}
    detectable = min(report.code_size.get(original, 0), report.code_size.get(copier, 0)) >= report.min_match
    if detectable and frozenset(COPY_PAIR) not in pairs:
        found.append(f"the similarity check did not pair {original} and {copier}")
    found += [f"the similarity check paired {' and '.join(sorted(pair))}, who did not copy"
              for pair in sorted(pairs - {frozenset(COPY_PAIR)}, key=sorted)]
    found += [f"the similarity check took {match.first}'s own answers for the reference solution"
              for match in report.reference if match.first in COPY_PAIR]
    return found


def surprises(students: list[DemoStudent], results: dict[str, GradedSubmission]) -> list[str]:
    """Each demo student whose grade is not what its submission earns, or whose flag for a person is wrong."""
    found = []
    for student in students:
        graded = results.get(student.name)
        if graded is None:
            found.append(f"{student.name} was not graded")
            continue
        if not student.least <= graded.score <= student.most:
            expected = f"{student.least:g}" if student.least == student.most else f"{student.least:g} to {student.most:g}"
            found.append(f"{student.name} scored {graded.score:g}/{graded.max_score:g}, expected {expected}")
        if bool(graded.attention) != student.flagged:
            found.append(f"{student.name} was {'' if graded.attention else 'not '}flagged for a person "
                         f"({'; '.join(graded.attention) or 'no reason given'})")
    return found


def prepare_folder(root: Path, folder: Path, assignments: list[str]) -> None:
    """Start ``folder`` afresh as a course folder with the course's config, source and release.

    Only a folder this function made before is replaced: never the course itself or another folder.
    """
    folder = folder.resolve()
    if folder == root.resolve() or folder in root.resolve().parents or (folder.exists() and not (folder / DEMO_MARKER).is_file()):
        raise CourseLayoutError(f"{folder} exists and is not a demo folder: choose another --output")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / DEMO_MARKER).write_text("made by `course demo`; replaced by the next demo\n")
    shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
    for area in ("source", "release"):
        for assignment in assignments:
            shutil.copytree(root / area / assignment, folder / area / assignment)


def real_class_state(root: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of the course's own gradebook and every file under its ``submitted/``."""
    paths = [root / "gradebook.db", *sorted((root / "submitted").rglob("*"))]
    return {str(path): (path.stat().st_size, path.stat().st_mtime_ns) for path in paths if path.is_file()}


def _smallest_test_points(source) -> dict[str, float]:
    """For each exercise, the points of its cheapest test cell."""
    points = {nbgrader_meta(cell).get("grade_id"): float(nbgrader_meta(cell).get("points", 0)) for cell in source.cells}
    return {exercise.grade_id: min(points[t] for t in exercise.test_ids) for exercise in exercises(source) if exercise.test_ids}
