"""``course verify``: prove, with the real ``nbgrader autograde``, that an assignment is sound.

For each assignment, in a scratch copy of the course:
- ``source/`` holds no outputs, and ``release/`` is exactly what ``course build`` makes;
- the release holds no solution code, no hidden-test line and no nbgrader marker;
- the source notebook scores full autograded marks and the release notebook scores 0;
- no test cell of the solved notebook writes to stderr (nbgrader would score it 0);
- every wrong answer in ``mutants.toml`` loses points on its exercise, every alternative
  answer gets full marks without writing to stderr in its exercise's test cells, and the
  graded output of each wrong answer is searched for the message that names its mistake;
- per exercise, how many distinct kinds of mistake its wrong answers cover.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from course.assignments import exercises, nbgrader_meta, notebook_path, read_notebook
from course.build import release_differences
from course.grader.grading import autograde
from course.mutants import (Verdict, apply_batch, batches, coverage_problems, judge, load_mutants, mistake_coverage,
                            mutants_path)

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME", "END MARK SCHEME")
SECRET_REGION = re.compile(r"^[ \t]*(?:###|===) BEGIN (SOLUTION|HIDDEN TESTS|MARK SCHEME)\b.*?^[ \t]*(?:###|===) END \1\b[^\n]*", re.S | re.M)
MIN_SECRET_LINE = 12  # shorter lines ("return X, y") may appear in a release by coincidence


@dataclass
class Report:
    """What ``course verify`` found for one assignment."""

    assignment: str
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def record(self, problems: list[str], success: str) -> None:
        """Add ``problems``, or ``success`` when there are none."""
        if problems:
            self.problems += problems
        else:
            self.passed.append(success)

    def lines(self) -> list[str]:
        """The report as printed: what passed, then each problem."""
        return [self.assignment, *(f"  ✓ {line}" for line in self.passed), *(f"  ✗ {line}" for line in self.problems)]


def cell_text(notebook) -> str:
    """The sources of all cells, joined."""
    return "\n".join(cell.source for cell in notebook.cells)


def output_problems(notebook, label: str) -> list[str]:
    """Cells of a committed notebook that carry outputs or execution counts."""
    return [
        f"{label}: cell {nbgrader_meta(cell).get('grade_id') or cell.get('id')} has outputs committed (clear them: "
        "Edit → Clear Outputs of All Cells, then save)"
        for cell in notebook.cells
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]


def leak_problems(source, release, label: str) -> list[str]:
    """Solution code, hidden tests, mark schemes or nbgrader markers found in the release."""
    source_text, release_text = cell_text(source), cell_text(release)
    problems = [f"{label} contains the marker '{marker}'" for marker in MARKERS if marker in release_text]
    public = {line.strip() for line in SECRET_REGION.sub("", source_text).splitlines()}
    secret = {line.strip() for block in SECRET_REGION.finditer(source_text) for line in block.group(0).splitlines()}
    released = {line.strip() for line in release_text.splitlines()}
    leaked = sorted(line for line in secret - public if len(line) >= MIN_SECRET_LINE and line in released)
    problems += [f"{label} shows a line from a solution or hidden test: {line[:80]!r}" for line in leaked]
    return problems


def verify_assignment(root: Path, assignment: str, jobs: int = 1) -> Report:
    """Run every check on one assignment and return the report."""
    report = Report(assignment)
    source = read_notebook(notebook_path(root, "source", assignment))
    release = read_notebook(notebook_path(root, "release", assignment))
    report.record(output_problems(source, f"source/{assignment}"), "source has no outputs")
    report.record(release_differences(root, assignment), "release/ is exactly what `course build` makes")
    report.record(leak_problems(source, release, f"release/{assignment}"), "release holds no solution, hidden test or marker")

    exercise_list = exercises(source)
    mutants = load_mutants(mutants_path(root, assignment))
    report.record(coverage_problems(mutants, exercise_list),
                  f"{len(exercise_list)} exercises, each with ≥3 wrong and ≥1 alternative answers")
    mutant_batches = batches(mutants)
    submissions = {"solution": source, "release": release}
    submissions.update({f"mutants-{k + 1:02d}": apply_batch(source, batch) for k, batch in enumerate(mutant_batches)})
    graded = autograde(root, assignment, submissions, jobs=jobs)

    solution = graded["solution"]
    failing = [test_id for test_id, score in solution.scores.items() if score < solution.max_scores[test_id]]
    report.record(
        [f"the solution loses points in {test_id}:\n{_indent(solution.test_output(test_id))}" for test_id in failing]
        + ([] if solution.max_scores else ["the solution was not graded: no autograded test cells found"]),
        f"solution scores {solution.score:g}/{solution.max_score:g}",
    )
    blank = graded["release"]
    report.record([f"the release notebook scores {blank.score:g}, not 0: a test passes without any answer"] if blank.score else [],
                  f"release scores 0/{blank.max_score:g}")
    report.record([f"grading flags the {name} for a person ({'; '.join(graded[name].attention)}): an honest notebook "
                   "must not look like tampering or an incident" for name in ("solution", "release") if graded[name].attention],
                  "neither the solution nor the release is flagged for a person")
    report.record([f"test cell {test_id} writes to stderr when the solution runs (nbgrader scores that 0): "
                   "silence the warning in the course code" for test_id in solution.stderr_test_cells()],
                  "no test cell writes to stderr")

    by_id = {exercise.grade_id: exercise for exercise in exercise_list}
    noisy_alternatives = []
    for k, batch in enumerate(mutant_batches):
        batch_result = graded[f"mutants-{k + 1:02d}"]
        stderr_cells = set(batch_result.stderr_test_cells())
        for exercise_id, mutant in batch.items():
            if exercise_id in by_id:
                report.verdicts.append(judge(mutant, by_id[exercise_id], batch_result))
                if mutant.kind == "alternative" and stderr_cells & set(by_id[exercise_id].test_ids):
                    noisy_alternatives.append(f"{exercise_id}/{mutant.name}")
    report.record([f"alternative answer {name} writes to stderr in a test cell (nbgrader scores that 0): silence the "
                   "warning in the course code or change the statement's advice" for name in noisy_alternatives],
                  "no alternative answer writes to stderr in its test cells")
    wrong = [v for v in report.verdicts if v.mutant.kind == "wrong"]
    alternatives = [v for v in report.verdicts if v.mutant.kind == "alternative"]
    report.record(
        [f"wrong answer {v.mutant.exercise}/{v.mutant.name} keeps full marks ({v.score:g}/{v.max_score:g}): "
         "add a test that catches it" for v in wrong if not v.judged_right]
        + [f"alternative answer {v.mutant.exercise}/{v.mutant.name} gets {v.score:g}/{v.max_score:g}, not full marks"
           for v in alternatives if not v.judged_right],
        f"mutants: {len(wrong)} wrong answers all lose points; {len(alternatives)} alternatives get full marks",
    )
    kinds = mistake_coverage(mutants, exercise_list)
    report.passed.append("kinds of mistake caught per exercise: " + ", ".join(
        f"{exercise_id} {len(covered)} ({' '.join(covered)})" for exercise_id, covered in kinds.items()))
    unnamed = [v for v in wrong if not v.named_mistake]
    named = f"{len(wrong) - len(unnamed)}/{len(wrong)} wrong answers are told their mistake"
    report.passed.append(named if not unnamed else named + " (not told: " + ", ".join(
        f"{v.mutant.exercise}/{v.mutant.name} should see {v.mutant.message!r}" for v in unnamed) + ")")
    return report


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.strip().splitlines()[-12:])
