"""``course similarity ASSIGNMENT``: submissions whose answers share code beyond what everyone was given.

Each submission's *own code* is its answer cells (the exercise solution cells) and its code cells
without nbgrader metadata (those it added, and unlocked example cells it may have changed), in
notebook order; test and setup cells are the course's, restored before grading anyway.
copydetect (winnowing over k-grams of tokens: names become ``V``/``F``, strings ``S``, comments
and layout vanish) fingerprints it, so renaming variables, reformatting, moving comments or
reordering functions does not hide a copy: the fingerprints are the same set, in another order.

Two comparisons, because a class has two sources of shared code besides each other:

- **pairs**: every pair of students, with the release notebook's code (starter code, stubs,
  visible tests) *and the course's reference solution* as boilerplate, so neither counts.
  A pair is listed when at least ``threshold`` of either student's own code is found in the
  other's and the match covers at least ``min_match`` characters of tokens (a few shared
  lines of a common idiom are not evidence). Copying onto the reference solution, or a
  common idiom, is not a pair: that is what the second comparison is for.
- **reference**: each student against the reference solution (``source/``), with only the
  release as boilerplate: students whose own code is mostly the course's solution (it may
  have leaked).

The thresholds were measured on the course's eight notebooks: of a student's own code written
with the alternative answers of ``mutants.toml``, at most 31% is found in the reference solution,
and two students with different alternative answers share at most 19% (honest, independent
solutions), while a copy with renamed variables and reordered functions shares 91-98%.
"""
from __future__ import annotations

import copy
import io
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import numpy as np

from course.assignments import (SOLUTION_MARKER, CourseLayoutError, is_exercise_solution, nbgrader_meta, notebook_path,
                                read_notebook, student_notebook_path)

THRESHOLD = 0.5
MIN_MATCH = 100
NOISE = 25  # copydetect's noise threshold: shortest match (in filtered characters) that counts
# Joins cells so that no fingerprint spans two cells: longer than a k-gram, and the same in every document.
SEPARATOR = "\n" + ";" * NOISE + "\n"


@dataclass(frozen=True)
class AnswerCell:
    """One cell of a student's own code: its exercise (grade id) or ``cell N``, and its code."""

    label: str
    code: str


@dataclass(frozen=True)
class MatchedCell:
    """A cell with code found in the other submission: its lines and which of them (0-based) matched."""

    label: str
    lines: tuple[str, ...]
    matched: frozenset[int]


@dataclass(frozen=True)
class Match:
    """Code shared by two documents: each one's share of its own code found in the other, and where."""

    first: str
    second: str
    first_share: float
    second_share: float
    matched_characters: int
    first_cells: tuple[MatchedCell, ...]
    second_cells: tuple[MatchedCell, ...]

    @property
    def share(self) -> float:
        """The larger of the two shares: how much of one of them is the other's code."""
        return max(self.first_share, self.second_share)

    def side_by_side(self) -> list[tuple[str, MatchedCell | None, MatchedCell | None]]:
        """Matched cells in pairs by label (exercise, or cell number), in the first submission's order."""
        second = {cell.label: cell for cell in self.second_cells}
        rows = [(cell.label, cell, second.pop(cell.label, None)) for cell in self.first_cells]
        return rows + [(label, None, cell) for label, cell in second.items()]


@dataclass
class SimilarityReport:
    """The pairs and reference matches of one assignment, with what was compared and skipped."""

    assignment: str
    threshold: float
    min_match: int
    compared: list[str] = field(default_factory=list)
    code_size: dict[str, int] = field(default_factory=dict)  # characters of code tokens beyond starter code and reference
    skipped: dict[str, str] = field(default_factory=dict)
    pairs: list[Match] = field(default_factory=list)
    reference: list[Match] = field(default_factory=list)

    @property
    def found(self) -> bool:
        """Whether a person should look: a similar pair or a student matching the reference solution."""
        return bool(self.pairs or self.reference)


def strip_markers(code: str) -> str:
    """``code`` without nbgrader's ``### BEGIN/END SOLUTION`` lines."""
    return "\n".join(line for line in code.splitlines() if not SOLUTION_MARKER.match(line))


def own_code(notebook) -> list[AnswerCell]:
    """A submission's answer cells and its code cells without nbgrader metadata (the unlocked ones it was given, which
    it may have changed, and those it added: ``cell N``, N counting all cells), in notebook order."""
    cells = []
    for number, cell in enumerate(notebook.cells, 1):
        if cell.cell_type != "code":
            continue
        if is_exercise_solution(cell):
            cells.append(AnswerCell(nbgrader_meta(cell)["grade_id"], strip_markers(cell.source)))
        elif not nbgrader_meta(cell):
            cells.append(AnswerCell(f"cell {number}", cell.source))
    return cells


def document(cells: list[AnswerCell]) -> tuple[str, list[tuple[int, int]]]:
    """The cells as one text, each between separators, and each cell's (start, end) in it."""
    text, spans = SEPARATOR, []
    for cell in cells:
        spans.append((len(text), len(text) + len(cell.code)))
        text += cell.code + SEPARATOR
    return text, spans


def fingerprint(text: str):
    """copydetect's fingerprint of the Python code ``text``."""
    from copydetect import CodeFingerprint

    return CodeFingerprint("answers.py", NOISE, 1, fp=io.StringIO(text), language="python")


def without(print_, hashes: frozenset[int]):
    """A copy of the fingerprint ``print_`` without ``hashes`` (boilerplate), its coverage recounted.

    copydetect can leave out boilerplate while fingerprinting, but then every comparison with
    other boilerplate would tokenize the document again (the slow part); its result is the same.
    """
    from copydetect.utils import get_token_coverage

    trimmed = copy.copy(print_)
    trimmed.hashes = print_.hashes - hashes
    trimmed.hash_idx = {h: places for h, places in print_.hash_idx.items() if h not in hashes}
    trimmed.token_coverage = get_token_coverage(trimmed.hash_idx, print_.k, len(print_.filtered_code))
    return trimmed


def boilerplate(*cell_lists: list[AnswerCell]) -> frozenset[int]:
    """The fingerprint hashes of every cell in ``cell_lists``, each cell fingerprinted on its own."""
    return frozenset(fingerprint(document([cell for cells in cell_lists for cell in cells])[0]).hashes)


def code_cells(notebook) -> list[AnswerCell]:
    """Every code cell of ``notebook`` (the release: everything a student was given)."""
    return [AnswerCell("", strip_markers(cell.source)) for cell in notebook.cells if cell.cell_type == "code"]


@dataclass(frozen=True)
class Submission:
    """A student's own code, ready to compare."""

    student: str
    cells: list[AnswerCell]
    text: str
    spans: list[tuple[int, int]]
    code_print: object

    @classmethod
    def of(cls, student: str, cells: list[AnswerCell]) -> "Submission":
        """The submission of ``student`` made of ``cells``, fingerprinted."""
        text, spans = document(cells)
        return cls(student, cells, text, spans, fingerprint(text))

    def matched_cells(self, slices: np.ndarray) -> tuple[MatchedCell, ...]:
        """The cells that ``slices`` (copydetect's start and end offsets in ``text``) touch, with the lines they cover."""
        found = []
        for cell, (start, end) in zip(self.cells, self.spans):
            lines = cell.code.splitlines()
            line_starts = np.cumsum([0] + [len(line) + 1 for line in lines])
            matched = set()
            for first, last in zip(slices[0], slices[1]):
                low, high = max(first, start) - start, min(last, end) - start
                if low < high:
                    matched.update(range(int(np.searchsorted(line_starts, low, "right")) - 1,
                                         int(np.searchsorted(line_starts, high, "left"))))
            if matched:
                found.append(MatchedCell(cell.label, tuple(lines), frozenset(i for i in matched if 0 <= i < len(lines))))
        return tuple(found)


def compare(first: Submission, first_print, second: Submission, second_print) -> Match | None:
    """The code ``first`` and ``second`` share, from their fingerprints (boilerplate already left out); None if none."""
    from copydetect import compare_files

    if not first_print.hashes or not second_print.hashes:
        return None
    overlap, (first_share, second_share), (first_slices, second_slices) = compare_files(first_print, second_print)
    if not overlap:
        return None
    return Match(first.student, second.student, float(first_share), float(second_share), int(overlap),
                 first.matched_cells(first_slices), second.matched_cells(second_slices))


def similar(submissions: list[Submission], reference: Submission, release: frozenset[int],
            threshold: float = THRESHOLD, min_match: int = MIN_MATCH) -> tuple[list[Match], list[Match]]:
    """Pairs of ``submissions`` over the thresholds, with the ``release`` hashes and the ``reference`` solution as
    boilerplate; and the submissions that mostly are ``reference`` (only the release as boilerplate). Most similar first."""
    def strong(match: Match | None, share: float) -> bool:
        return match is not None and share >= threshold and match.matched_characters >= min_match

    shared = release | reference.code_print.hashes
    prints = {s.student: without(s.code_print, shared) for s in submissions}
    pairs = [match for a, b in itertools.combinations(submissions, 2)
             if strong(match := compare(a, prints[a.student], b, prints[b.student]), match.share if match else 0.0)]
    reference_print = without(reference.code_print, release)
    mostly_reference = [match for s in submissions
                        if strong(match := compare(s, without(s.code_print, release), reference, reference_print),
                                  match.first_share if match else 0.0)]
    return (sorted(pairs, key=lambda m: (-m.share, m.first, m.second)),
            sorted(mostly_reference, key=lambda m: (-m.first_share, m.first)))


def similarity_report(course_dir: Path, assignment: str, threshold: float = THRESHOLD, min_match: int = MIN_MATCH) -> SimilarityReport:
    """Compare the submissions of ``assignment`` in ``course_dir/submitted`` with each other and with the reference solution."""
    source = read_notebook(notebook_path(course_dir, "source", assignment))
    try:
        release = read_notebook(notebook_path(course_dir, "release", assignment))
    except CourseLayoutError:
        raise CourseLayoutError(f"{assignment} has no release notebook in {course_dir / 'release'}: its starter code is "
                                f"what students share honestly; build it first (`course build {assignment}`)") from None
    report = SimilarityReport(assignment, threshold, min_match)
    given = boilerplate(code_cells(release))
    submissions = []
    for folder in sorted(p for p in (course_dir / "submitted").glob(f"*/{assignment}") if p.is_dir()):
        student = folder.parent.name
        try:
            cells = own_code(nbformat.read(student_notebook_path(course_dir, "submitted", student, assignment), as_version=4))
        except Exception as error:  # noqa: BLE001 - nbformat raises many unrelated types for broken files
            report.skipped[student] = f"not a readable notebook ({type(error).__name__})"
            continue
        submission = Submission.of(student, cells)
        if not submission.code_print.hashes - given:
            report.skipped[student] = "no code beyond the starter code"
            continue
        submissions.append(submission)
    report.compared = [s.student for s in submissions]
    reference = Submission.of("reference solution", own_code(source))
    report.code_size = {s.student: int(without(s.code_print, given | reference.code_print.hashes).token_coverage)
                       for s in submissions}
    report.pairs, report.reference = similar(submissions, reference, given, threshold, min_match)
    return report


def report_lines(report: SimilarityReport, width: int = 100) -> list[str]:
    """The report as text: pairs with their matching lines side by side, then reference matches."""
    lines = [f"{report.assignment}: compared {len(report.compared)} submissions" +
             (f"; skipped {', '.join(f'{s} ({why})' for s, why in report.skipped.items())}" if report.skipped else "")]
    if not report.found:
        lines.append(f"  no pair shares {report.threshold:.0%} of its own code, and nobody's code is mostly the reference solution")
    if report.pairs:
        lines.append(f"  similar pairs (at least {report.threshold:.0%} of one student's own code found in the other's; "
                     "> marks matching lines):")
    column = (width - 7) // 2
    for match in report.pairs:
        lines.append(f"  {match.first} ~ {match.second}: {match.first_share:.0%} of {match.first}'s code, "
                     f"{match.second_share:.0%} of {match.second}'s, {match.matched_characters} characters of tokens")
        for label, left, right in match.side_by_side():
            lines.append(f"    {label}")
            left_lines, right_lines = _marked(left), _marked(right)
            for a, b in itertools.zip_longest(left_lines, right_lines, fillvalue=""):
                lines.append(f"    {a[:column]:{column}} | {b[:column]}")
    if report.reference:
        lines.append(f"  mostly the course's reference solution (at least {report.threshold:.0%} of their own code):")
        lines += [f"  {match.first}: {match.first_share:.0%}" for match in report.reference]
    return lines


def _marked(cell: MatchedCell | None) -> list[str]:
    if cell is None:
        return []
    return [f"{'>' if i in cell.matched else ' '} {line}" for i, line in enumerate(cell.lines)]
