"""Item analysis: which tests and exercises tell students apart, and which ones look wrong.

For every autograded test cell (an *item*) and every exercise (the sum of its tests), over the
students of one assignment:

- **difficulty**: the mean share of the item's points the class earned (1 = everyone earned
  everything; classical test theory calls this the p-value);
- **discrimination**: the corrected item-total correlation, the Pearson correlation between
  the item's score and the student's score on the *rest* of the assignment (the item itself
  left out, so it does not correlate with itself). Undefined when the item or the rest is the
  same for every student.

Submissions that need a person's attention (not a readable notebook, tampering with the
grader) are left out: their zeros measure the incident, not the item.

An item *flags itself* when almost everyone earns it (difficulty at least ``EASY``), almost
nobody does (at most ``HARD``), or stronger students do worse on it than weaker ones
(negative discrimination); ``FLAG_SENTENCES`` says what each usually means.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from course.assignments import CourseLayoutError, exercises, notebook_path, read_notebook
from course.grader.grading import GradedSubmission

EASY = 0.9
HARD = 0.2
FLAG_SENTENCES = {
    "easy": "Almost everyone earns these points, so they tell students apart little: fine for a warm-up; if the exercise "
            "is meant to stretch students, its tests may miss the edge cases the statement names.",
    "hard": "Almost nobody earns these points: the statement may be unclear, the exercise may need something not taught "
            "yet, or the test may reject correct answers (check it against the exercise's alternative answers with "
            "`course verify`).",
    "negative": "Students who do well on the rest of the assignment do worse here than those who do not: the test may "
                "check something the statement does not ask for, reject a correct alternative, or depend on luck "
                "(a tolerance, a seed, the order of a result).",
}


@dataclass(frozen=True)
class ItemStatistics:
    """Difficulty and discrimination of one test cell or one exercise."""

    name: str
    kind: str  # "test" or "exercise"
    exercise: str
    points: float
    students: int
    difficulty: float
    discrimination: float | None

    @property
    def flags(self) -> list[str]:
        """Which of ``FLAG_SENTENCES`` apply, in that order."""
        found = []
        if self.difficulty >= EASY:
            found.append("easy")
        if self.difficulty <= HARD:
            found.append("hard")
        if self.discrimination is not None and self.discrimination < 0:
            found.append("negative")
        return found


def exercise_groups(course_dir: Path, assignment: str, results: dict[str, GradedSubmission]) -> list[tuple[str, list[str]]]:
    """Each exercise's grade id and test ids, in notebook order, from the source notebook; each test alone without one."""
    try:
        return [(e.grade_id, list(e.test_ids)) for e in exercises(read_notebook(notebook_path(course_dir, "source", assignment)))]
    except CourseLayoutError:
        return [(test, [test]) for test in sorted({t for graded in results.values() for t in graded.max_scores})]


def score_table(results: dict[str, GradedSubmission]) -> pd.DataFrame:
    """Points per student (rows) and test cell (columns), for the submissions graded normally."""
    rows = {student: graded.scores for student, graded in results.items() if not graded.attention}
    table = pd.DataFrame.from_dict(rows, orient="index", dtype=float)
    return table.reindex(columns=sorted({t for g in results.values() for t in g.max_scores})).fillna(0.0).sort_index()


def item_statistics(results: dict[str, GradedSubmission], groups: list[tuple[str, list[str]]]) -> list[ItemStatistics]:
    """Statistics of every exercise followed by its tests, in ``groups`` order (exercise grade id, its test ids)."""
    scores = score_table(results)
    if scores.empty:
        return []
    points = {test: max(g.max_scores.get(test, 0.0) for g in results.values()) for test in scores.columns}
    total = scores.sum(axis=1)
    found = []
    for exercise, tests in groups:
        items = [(exercise, "exercise", tests)] + [(test, "test", [test]) for test in tests]
        for name, kind, columns in items:
            item = scores[columns].sum(axis=1)
            available = sum(points[c] for c in columns)
            found.append(ItemStatistics(name, kind, exercise, available, len(item),
                                        float(item.mean() / available) if available else 0.0,
                                        corrected_item_total(item, total - item)))
    return found


def corrected_item_total(item: pd.Series, rest: pd.Series) -> float | None:
    """Pearson correlation of ``item`` with ``rest``; None with fewer than three students or when either is constant."""
    if len(item) < 3 or item.nunique() < 2 or rest.nunique() < 2:
        return None
    return float(np.corrcoef(item.to_numpy(), rest.to_numpy())[0, 1])


def item_analysis(course_dir: Path, assignment: str, results: dict[str, GradedSubmission]) -> list[ItemStatistics]:
    """``item_statistics`` of ``assignment``, its exercises taken from the course's source notebook."""
    return item_statistics(results, exercise_groups(course_dir, assignment, results))


def flagged(items: list[ItemStatistics]) -> list[ItemStatistics]:
    """The items that flag themselves, in order; a test that is its exercise's only test is said once, as the exercise."""
    tests = {}
    for item in items:
        if item.kind == "test":
            tests[item.exercise] = tests.get(item.exercise, 0) + 1
    return [item for item in items if item.flags and not (item.kind == "test" and tests[item.exercise] == 1)]


def flagged_by_exercise(items: list[ItemStatistics]) -> dict[str, list[ItemStatistics]]:
    """``flagged`` items grouped by exercise, in order: an exercise and its tests often flag themselves together."""
    groups: dict[str, list[ItemStatistics]] = {}
    for item in flagged(items):
        groups.setdefault(item.exercise, []).append(item)
    return groups
