"""A grade report a person would rather look at than read: one HTML page with matplotlib figures.

``write_report`` turns graded results (``course.grader.grading.GradedSubmission`` per student and
assignment) into a single self-contained HTML file (figures embedded as PNG, no network):

- the class at a glance: every student's share of the autograded points per assignment, and
  the exercises students miss most across the course;
- a grid of students by assignments, each cell linked to that student's feedback page;
- per assignment: the distribution of total scores out of the maximum, how each exercise
  went (full marks, some points, none) in notebook order, and a table per student with
  score, percent, points per exercise and what needs a person's attention;
- per assignment, item analysis (``course.itemanalysis``): difficulty and discrimination of
  every exercise and test in a figure and a table, the items that flag themselves with a
  sentence on what that usually means;
- per assignment, similar submissions (``course.similarity``): pairs of students whose own
  code is largely the same, with the matching lines side by side, and students whose code is
  mostly the course's reference solution;
- per assignment, late submissions (``course.grader.late``): when each was due and handed in,
  and the penalty the course's late policy takes off.

Only autograded points count; written answers are graded by hand in nbgrader. Everything a
student controls (ids, messages quoting their files) is HTML-escaped. ``summary_table`` and
``attention_summary`` are the short text versions the ``course`` command prints.
"""
from __future__ import annotations

import base64
import html
import io
import math
import os
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from course.assignments import CourseLayoutError, exercises, notebook_path, read_notebook
from course.grader.grading import GradedSubmission, read_results, submitted_students
from course.grader.late import Lateness, duration, late_submissions
from course.itemanalysis import EASY, FLAG_SENTENCES, HARD, ItemStatistics, flagged_by_exercise, item_analysis
from course.similarity import MatchedCell, SimilarityReport, similarity_report

Grades = dict[str, dict[str, GradedSubmission]]

FULL, SOME, NONE, FLAGGED = "#3b73b9", "#f2b04c", "#d0533f", "#8a94a6"
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
MOST_MISSED = 10
DPI = 144


@dataclass(frozen=True)
class ExerciseOutcome:
    """How a class did on one exercise: how many earned all its points, some, or none."""

    assignment: str
    grade_id: str
    test_ids: tuple[str, ...]
    points: float
    full: int
    some: int
    none: int
    mean_share: float

    @property
    def students(self) -> int:
        """Students graded on this exercise."""
        return self.full + self.some + self.none

    @property
    def missed(self) -> int:
        """Students without full marks on this exercise."""
        return self.some + self.none

    @property
    def pass_rate(self) -> float:
        """Share of students with full marks."""
        return self.full / self.students if self.students else 0.0


def exercise_outcomes(course_dir: Path, assignment: str, results: dict[str, GradedSubmission]) -> list[ExerciseOutcome]:
    """Per exercise, in notebook order, how the class did; each test cell counts as an exercise when the source is missing."""
    try:
        groups = [(e.grade_id, e.test_ids) for e in exercises(read_notebook(notebook_path(course_dir, "source", assignment)))]
    except CourseLayoutError:
        test_ids = sorted({t for graded in results.values() for t in graded.max_scores})
        groups = [(t, [t]) for t in test_ids]
    outcomes = []
    for grade_id, test_ids in groups:
        points = max((sum(g.max_scores.get(t, 0.0) for t in test_ids) for g in results.values()), default=0.0)
        earned = [sum(g.scores.get(t, 0.0) for t in test_ids) for g in results.values()]
        full = sum(score >= points for score in earned)
        none = sum(score <= 0 for score in earned) if points else 0
        share = statistics.fmean(earned) / points if earned and points else 0.0
        outcomes.append(ExerciseOutcome(assignment, grade_id, tuple(test_ids), points, full, len(earned) - full - none, none, share))
    return outcomes


def graded_results(course_dir: Path, assignments: list[str], db_url: str | None = None) -> Grades:
    """Results of the ``assignments`` already autograded in ``course_dir``, read from its gradebook (``db_url``,
    default the folder's ``gradebook.db``)."""
    if db_url is None and not (course_dir / "gradebook.db").is_file():
        raise CourseLayoutError(f"no gradebook in {course_dir}: grade first (`course grade ASSIGNMENT`)")
    grades = {}
    for assignment in assignments:
        autograded = sorted(p.parent.name for p in (course_dir / "autograded").glob(f"*/{assignment}") if p.is_dir())
        if autograded:
            students = sorted({*autograded, *submitted_students(course_dir, assignment)})
            grades[assignment] = read_results(course_dir, assignment, students, {}, db_url=db_url)
    if not grades:
        raise CourseLayoutError(f"nothing of {', '.join(assignments)} is graded in {course_dir}: grade first (`course grade ASSIGNMENT`)")
    return grades


def summary_table(grades: Grades) -> str:
    """A short text table, one line per assignment: students, median and mean score, full marks, who needs attention."""
    width = max([len("assignment"), *map(len, grades)])
    lines = [f"{'assignment':{width}}  {'students':>8}  {'median':>9}  {'mean':>5}  {'full marks':>10}  {'attention':>9}"]
    for assignment, results in sorted(grades.items()):
        scores = [graded.score for graded in results.values()]
        top = max((graded.max_score for graded in results.values()), default=0.0)
        median = f"{statistics.median(scores):g}/{top:g}" if scores else "-"
        mean = f"{statistics.fmean(scores) / top:.0%}" if scores and top else "-"
        full = sum(graded.score >= top for graded in results.values()) if top else 0
        flagged = sum(bool(graded.attention) for graded in results.values())
        lines.append(f"{assignment:{width}}  {len(results):>8}  {median:>9}  {mean:>5}  {full:>10}  {flagged:>9}")
    return "\n".join(lines)


def attention_summary(grades: Grades) -> list[str]:
    """One line per student and reason that needs a person, naming the assignments (by number) it happened in."""
    return [f"{student} ({', '.join(a.split('-', 1)[0] for a in assignments)}): {reason}"
            for (student, reason), assignments in attention_groups(grades).items()]


def attention_groups(grades: Grades) -> dict[tuple[str, str], list[str]]:
    """Each (student, reason for a person's attention), with the assignments it happened in, sorted by student."""
    where: dict[tuple[str, str], list[str]] = {}
    for assignment, results in sorted(grades.items()):
        for student, graded in results.items():
            for reason in graded.attention:
                where.setdefault((student, reason), []).append(assignment)
    return dict(sorted(where.items()))


def write_report(course_dir: Path, grades: Grades, path: Path, *, title: str = "Grade report",
                 notes: dict[str, dict[str, str]] | None = None,
                 similarity: dict[str, SimilarityReport | None] | None = None, db_url: str | None = None) -> Path:
    """Write the HTML report of ``grades`` to ``path`` and return it; ``notes`` adds a line per assignment and student;
    ``similarity`` gives each assignment's similarity report when it is already computed; due dates and submission
    times come from the gradebook ``db_url`` (default: the folder's ``gradebook.db``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(render_report(course_dir, grades, path.parent, title=title, notes=notes or {}, similarity=similarity,
                                      db_url=db_url),
                       encoding="utf-8")
    partial.replace(path)
    return path


def render_report(course_dir: Path, grades: Grades, report_dir: Path, *, title: str = "Grade report",
                  notes: dict[str, dict[str, str]] | None = None,
                  similarity: dict[str, SimilarityReport | None] | None = None, db_url: str | None = None) -> str:
    """The report as one HTML page; links to feedback are relative to ``report_dir``; late submissions are read from
    the gradebook ``db_url`` (default: the folder's ``gradebook.db``)."""
    notes = notes or {}
    similarity = similarity if similarity is not None else {a: class_similarity(course_dir, a) for a in grades}
    outcomes = {assignment: exercise_outcomes(course_dir, assignment, results) for assignment, results in sorted(grades.items())}
    students = sorted({student for results in grades.values() for student in results})
    submissions = [graded for results in grades.values() for graded in results.values()]
    shares = [graded.score / graded.max_score for graded in submissions if graded.max_score]
    flagged = [graded for graded in submissions if graded.attention]
    cards = [
        (str(len(students)), "students"),
        (str(len(grades)), "assignments"),
        (f"{statistics.median(shares):.0%}" if shares else "-", "median share of points"),
        (str(len(flagged)), "submissions need a person"),
    ]
    parts = [
        f"<h1>{_text(title)}</h1>",
        f'<p class="sub">{_text(str(course_dir))} · {datetime.now():%Y-%m-%d %H:%M} · autograded points only '
        "(written answers are graded by hand)</p>",
        '<p class="howto"><b>How to read this.</b> Blue means full marks, amber some points, red none; grey marks a '
        "submission the grader flagged for a person (it could not be graded normally, or it tampered with the grader). "
        "An exercise counts as passed when a student earned all of its points. Click a score to open that student's "
        "feedback.</p>",
        '<div class="cards">' + "".join(f'<div class="card"><b>{value}</b>{label}</div>' for value, label in cards) + "</div>",
        _attention_section(grades),
        '<section><h2>The class at a glance</h2>',
        _figure(overview_figure(grades), "Each student's share of the autograded points, per assignment"),
        _figure(most_missed_figure([o for group in outcomes.values() for o in group]),
                "The exercises students miss most, across all assignments"),
        _class_grid(grades, students, course_dir, report_dir),
        "</section>",
    ]
    for assignment, results in sorted(grades.items()):
        parts.append(_assignment_section(assignment, results, outcomes[assignment], notes.get(assignment, {}), course_dir, report_dir))
        parts.append(_item_analysis_section(assignment, item_analysis(course_dir, assignment, results)))
        parts.append(_similarity_section(similarity.get(assignment)))
        parts.append(_late_section(assignment, _late(course_dir, assignment, sorted(results), db_url)))
    body = "\n".join(part for part in parts if part)
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_text(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body><main>\n{body}\n</main></body></html>\n")


def overview_figure(grades: Grades) -> bytes:
    """A strip per assignment: one dot per student at its share of the points; hollow grey dots need a person."""
    assignments = sorted(grades)
    figure = Figure(figsize=(10, 0.62 * len(assignments) + 1.4), layout="constrained")
    axes = figure.subplots()
    for row, assignment in enumerate(assignments):
        results = [grades[assignment][s] for s in sorted(grades[assignment])]
        shares = np.array([g.score / g.max_score if g.max_score else 0.0 for g in results])
        flags = np.array([bool(g.attention) for g in results])
        # Spread dots vertically by their rank among equal scores, so a crowd at one score stays visible.
        offsets = np.zeros(len(shares))
        for value in np.unique(shares):
            same = np.flatnonzero(shares == value)
            offsets[same] = (np.arange(len(same)) - (len(same) - 1) / 2) * min(0.12, 0.6 / max(len(same), 1))
        y = row + offsets
        axes.scatter(shares[~flags], y[~flags], s=46, color=FULL, alpha=0.85, edgecolor="white", linewidth=0.6, zorder=3)
        axes.scatter(shares[flags], y[flags], s=46, facecolor="white", edgecolor=FLAGGED, linewidth=1.6, zorder=3)
        if len(shares):
            median = float(np.median(shares))
            axes.plot([median, median], [row - 0.34, row + 0.34], color=INK, linewidth=2.2, zorder=4)
            top = max(g.max_score for g in results)
            axes.annotate(f"median {median:.0%} of {top:g} pts", (1.02, row), xycoords=("axes fraction", "data"),
                          va="center", fontsize=9, color=MUTED)
    axes.set_yticks(range(len(assignments)), [_plain(a) for a in assignments])
    axes.set_ylim(len(assignments) - 0.5, -0.5)
    axes.set_xlim(-0.03, 1.03)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("share of the assignment's autograded points")
    _style(axes, grid_axis="x")
    axes.scatter([], [], s=46, color=FULL, label="graded")
    axes.scatter([], [], s=46, facecolor="white", edgecolor=FLAGGED, linewidth=1.6, label="needs a person")
    _heading(figure, axes, "Scores per assignment: one dot per student, a bar at the median")
    return _png(figure)


def score_distribution_figure(assignment: str, results: dict[str, GradedSubmission]) -> bytes:
    """A histogram of total scores out of the maximum, flagged submissions stacked in grey, the median marked."""
    top = max((g.max_score for g in results.values()), default=0.0)
    width = max(1, math.ceil(top / 40))
    slots = np.arange(0, top + width, width)
    graded = np.zeros(len(slots))
    flagged = np.zeros(len(slots))
    for g in results.values():
        slot = min(int(g.score // width), len(slots) - 1)
        (flagged if g.attention else graded)[slot] += 1
    figure = Figure(figsize=(5.6, 3.6), layout="constrained")
    axes = figure.subplots()
    axes.bar(slots, graded, width=0.8 * width, color=FULL, label="graded", zorder=3)
    if flagged.any():
        axes.bar(slots, flagged, bottom=graded, width=0.8 * width, color=FLAGGED, hatch="///", edgecolor="white",
                 label="needs a person", zorder=3)
    scores = [g.score for g in results.values()]
    if scores:
        median = statistics.median(scores)
        axes.axvline(median, color=INK, linestyle="--", linewidth=1.2, zorder=4)
        axes.annotate(f"median {median:g}", (median, 1.0), xycoords=("data", "axes fraction"), xytext=(4, -12),
                      textcoords="offset points", fontsize=9, color=INK, ha="left" if median < 0.75 * top else "right")
    axes.set_xlim(-width, top + width)
    axes.set_ylim(0, max(1, (graded + flagged).max()) * 1.15)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    ticks = [tick for tick in MaxNLocator(integer=True, nbins=8).tick_values(0, top) if 0 <= tick <= top]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    axes.set_xticks(ticks + [top] if top - ticks[-1] >= step / 2 else ticks)
    axes.set_xlabel(f"autograded points (out of {top:g})")
    axes.set_ylabel("students")
    _style(axes, grid_axis="y")
    _heading(figure, axes, "Total scores")
    return _png(figure)


def exercise_figure(outcomes: list[ExerciseOutcome]) -> bytes:
    """Per exercise, in notebook order: how many students earned full marks, some points, none."""
    figure = Figure(figsize=(5.6, 0.42 * len(outcomes) + 1.6), layout="constrained")
    axes = figure.subplots()
    rows = np.arange(len(outcomes))
    left = np.zeros(len(outcomes))
    for attribute, colour, label in (("full", FULL, "full marks"), ("some", SOME, "some points"), ("none", NONE, "no points")):
        counts = np.array([getattr(o, attribute) for o in outcomes], dtype=float)
        bars = axes.barh(rows, counts, left=left, color=colour, label=label, height=0.66, zorder=3)
        axes.bar_label(bars, labels=[f"{c:g}" if c else "" for c in counts], label_type="center", fontsize=8,
                       color="white" if colour != SOME else INK)
        left += counts
    for row, outcome in zip(rows, outcomes):
        axes.annotate(f"{outcome.pass_rate:.0%}", (left[row], row), xytext=(4, 0), textcoords="offset points",
                      va="center", fontsize=9, color=MUTED)
    axes.set_yticks(rows, [f"{n}. {_plain(o.grade_id)} ({o.points:g})" for n, o in enumerate(outcomes, 1)], fontsize=9)
    axes.set_ylim(len(outcomes) - 0.5, -0.5)
    axes.set_xlim(0, max(1, left.max()) * 1.14)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("students; at the right, the share with full marks")
    _style(axes, grid_axis="x")
    _heading(figure, axes, "How each exercise went")
    return _png(figure)


def most_missed(outcomes: list[ExerciseOutcome], limit: int = MOST_MISSED) -> list[ExerciseOutcome]:
    """The ``limit`` exercises with the largest share of students without full marks; ties: fewer points earned first."""
    return sorted((o for o in outcomes if o.missed), key=lambda o: (-o.missed / o.students, o.mean_share))[:limit]


def most_missed_figure(outcomes: list[ExerciseOutcome]) -> bytes | None:
    """The exercises most students did not get full marks on, across assignments (None when nobody missed any)."""
    missed = most_missed(outcomes)
    if not missed:
        return None
    figure = Figure(figsize=(10, 0.42 * len(missed) + 1.5), layout="constrained")
    axes = figure.subplots()
    rows = np.arange(len(missed))
    none = np.array([o.none / o.students for o in missed])
    some = np.array([o.some / o.students for o in missed])
    axes.barh(rows, none, color=NONE, height=0.66, label="no points", zorder=3)
    axes.barh(rows, some, left=none, color=SOME, height=0.66, label="some points", zorder=3)
    for row, outcome in zip(rows, missed):
        axes.annotate(f"{outcome.missed} of {outcome.students} · {outcome.mean_share:.0%} of its points earned on average",
                      (none[row] + some[row], row), xytext=(5, 0), textcoords="offset points", va="center", fontsize=9, color=MUTED)
    axes.set_yticks(rows, [f"{_plain(o.assignment.split('-', 1)[0])} · {_plain(o.grade_id)}" for o in missed])
    axes.set_ylim(len(missed) - 0.5, -0.5)
    axes.set_xlim(0, 1.45)
    axes.set_xticks(np.linspace(0, 1, 5))
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("share of students without full marks")
    _style(axes, grid_axis="x")
    _heading(figure, axes, "The exercises students miss most")
    return _png(figure)


def _heading(figure: Figure, axes, title: str) -> None:
    """The title at the figure's top left, and the legend in one row between it and the plot."""
    figure.suptitle(title, x=0.01, ha="left", fontsize=12, color=INK)
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, frameon=False, fontsize=9, handlelength=1.4,
                columnspacing=1.2, borderaxespad=0.3)


def _style(axes, grid_axis: str) -> None:
    axes.grid(axis=grid_axis, color=GRID, linewidth=0.8, zorder=0)
    axes.set_axisbelow(True)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    axes.spines["bottom"].set_color("#9aa5b1")
    axes.tick_params(colors=INK, length=0)
    axes.xaxis.label.set_color(MUTED)
    axes.yaxis.label.set_color(MUTED)


def _png(figure: Figure) -> bytes:
    """Render ``figure`` with the Agg backend at its exact size, so figures shown side by side share one scale.

    A Figure made without pyplot is freed with its last reference: there is nothing to close."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _figure(png: bytes | None, alt: str) -> str:
    if png is None:
        return f'<p class="muted">{_text(alt)}: every student earned every point.</p>'
    return f'<figure><img alt="{_text(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}"></figure>'


def _attention_section(grades: Grades) -> str:
    where = attention_groups(grades)
    if not where:
        return '<section class="calm"><h2>Nothing needs a person</h2><p>Every submission was graded normally.</p></section>'
    items = "".join(f'<tr><td class="who">{_text(student)}</td><td>{", ".join(_section_link(a) for a in assignments)}</td>'
                    f"<td>{_text(reason)}</td></tr>" for (student, reason), assignments in where.items())
    return ('<section class="attention"><h2>Needs a person</h2><p>These submissions kept the points their honest work '
            "earned, but the grader could not grade them normally or found them tampering with it: look at them.</p>"
            f"<table><thead><tr><th>student</th><th>in assignments</th><th>why</th></tr></thead><tbody>{items}</tbody></table></section>")


def _class_grid(grades: Grades, students: list[str], course_dir: Path, report_dir: Path) -> str:
    assignments = sorted(grades)

    def overall(student: str) -> float:
        results = [grades[a][student] for a in assignments if student in grades[a]]
        top = sum(g.max_score for g in results)
        return sum(g.score for g in results) / top if top else 0.0

    head = "".join(f'<th class="num">{_section_link(a)}</th>' for a in assignments)
    rows = []
    for student in sorted(students, key=lambda s: (-overall(s), s)):
        cells = []
        for assignment in assignments:
            graded = grades[assignment].get(student)
            if graded is None:
                cells.append('<td class="num muted">-</td>')
                continue
            share = graded.score / graded.max_score if graded.max_score else 0.0
            text = f"{graded.score:g}{' !' if graded.attention else ''}"
            link = _feedback_link(course_dir, report_dir, student, assignment, text)
            title = f"{student} · {assignment}: {graded.score:g}/{graded.max_score:g}"
            cells.append(f'<td class="num heat" style="{_heat(share, bool(graded.attention))}" title="{_text(title)}">{link}</td>')
        rows.append(f"<tr><th>{_text(student)}</th>{''.join(cells)}<td class=\"num\">{overall(student):.0%}</td></tr>")
    return ("<h3>Every student, every assignment</h3><p class=\"muted\">Autograded points; darker is more of the maximum; "
            "! and a grey frame: needs a person. Sorted by the share of all points earned; click an assignment for its details.</p>"
            f'<div class="scroll"><table class="grid"><thead><tr><th>student</th>{head}<th class="num">all</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _assignment_section(assignment: str, results: dict[str, GradedSubmission], outcomes: list[ExerciseOutcome],
                        notes: dict[str, str], course_dir: Path, report_dir: Path) -> str:
    top = max((g.max_score for g in results.values()), default=0.0)
    chips_legend = " · ".join(f"{n}. {_text(o.grade_id)}" for n, o in enumerate(outcomes, 1))
    rows = []
    for student, graded in sorted(results.items(), key=lambda item: (-item[1].score, item[0])):
        share = graded.score / graded.max_score if graded.max_score else 0.0
        chips = "".join(_chip(n, outcome, graded) for n, outcome in enumerate(outcomes, 1))
        attention = "<br>".join(_text(reason) for reason in graded.attention)
        about = f'<td class="about">{_text(notes.get(student, ""))}</td>' if notes else ""
        score = _feedback_link(course_dir, report_dir, student, assignment, f"{graded.score:g}/{graded.max_score:g}")
        row_class = ' class="flagged"' if graded.attention else ""
        rows.append(f"<tr{row_class}><td class=\"who\">{_text(student)}</td><td class=\"num\">{score}</td>"
                    f'<td class="pct"><div class="bar"><span style="width:{share:.0%}"></span></div>{share:.0%}</td>'
                    f"<td class=\"chips\">{chips}</td>{about}<td class=\"why\">{attention}</td></tr>")
    about_head = "<th>about</th>" if notes else ""
    return (f'<section id="{_text(quote(assignment))}"><h2>{_text(assignment)}</h2>'
            f'<p class="muted">{len(results)} students · {top:g} autograded points in {len(outcomes)} exercises</p>'
            '<div class="figs">'
            f"{_figure(score_distribution_figure(assignment, results), f'Total scores of {assignment}')}"
            f"{_figure(exercise_figure(outcomes), f'How each exercise of {assignment} went')}</div>"
            f'<p class="muted">Exercises: {chips_legend}</p>'
            f'<div class="scroll"><table><thead><tr><th>student</th><th class="num">score</th><th>percent</th><th>exercises</th>'
            f"{about_head}<th>needs a person because</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")



def class_similarity(course_dir: Path, assignment: str) -> SimilarityReport | None:
    """``course similarity`` for the report: None when the folder lacks the source, release or submissions to compare."""
    if not all(path.is_file() for path in (notebook_path(course_dir, "source", assignment), notebook_path(course_dir, "release", assignment))):
        return None
    if not submitted_students(course_dir, assignment):
        return None
    return similarity_report(course_dir, assignment)


def _late(course_dir: Path, assignment: str, students: list[str], db_url: str | None) -> dict[str, Lateness]:
    try:
        return late_submissions(course_dir, assignment, students, db_url=db_url)
    except CourseLayoutError:
        return {}


def item_analysis_figure(items: list[ItemStatistics]) -> bytes | None:
    """Each test at its difficulty and discrimination, the regions that flag an item shaded; a flagged test carries the
    number of its exercise in the list beside the figure."""
    shown = [item for item in items if item.kind == "test"]
    if not shown:
        return None
    numbers = {item.name: number for number, group in enumerate(flagged_by_exercise(items).values(), 1) for item in group}
    figure = Figure(figsize=(5.6, 3.9), layout="constrained")
    axes = figure.subplots()
    axes.axvspan(EASY, 1.04, color=SOME, alpha=0.16, zorder=0, label="almost everyone / nobody earns it")
    axes.axvspan(-0.04, HARD, color=SOME, alpha=0.16, zorder=0)
    axes.axhspan(-1.08, 0, color=NONE, alpha=0.08, zorder=0, label="negative discrimination")
    defined = [item for item in shown if item.discrimination is not None]
    undefined = [item for item in shown if item.discrimination is None]
    axes.scatter([i.difficulty for i in defined], [i.discrimination for i in defined], s=[30 + 12 * i.points for i in defined],
                 color=[NONE if i.name in numbers else FULL for i in defined], alpha=0.85, edgecolor="white", linewidth=0.6,
                 zorder=3)
    if undefined:
        axes.scatter([i.difficulty for i in undefined], [0.0] * len(undefined), marker="x", color=FLAGGED, zorder=3,
                     label="undefined (no spread)")
    labelled = set()
    for item in shown:
        place = (round(item.difficulty, 2), round(item.discrimination or 0.0, 1), numbers.get(item.name))
        if item.name in numbers and place not in labelled:
            labelled.add(place)
            axes.annotate(str(numbers[item.name]), (item.difficulty, item.discrimination or 0.0), xytext=(5, 4),
                          textcoords="offset points", fontsize=9, color=INK, fontweight="bold")
    axes.set_xlim(-0.04, 1.04)
    axes.set_ylim(-1.08, 1.08)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("difficulty: mean share of the points earned")
    axes.set_ylabel("discrimination (item vs rest)")
    _style(axes, grid_axis="both")
    _heading(figure, axes, "Item analysis: every test")
    return _png(figure)


def _item_analysis_section(assignment: str, items: list[ItemStatistics]) -> str:
    if not items:
        return ""

    def numbers(item: ItemStatistics) -> str:
        return f'{item.difficulty:.0%}, {"undefined" if item.discrimination is None else f"{item.discrimination:+.2f}"}'

    rows = "".join(
        f'<tr class="{"flagged" if item.flags else ""}"><td>{_text(item.name)}</td><td>{item.kind}</td>'
        f'<td class="num">{item.points:g}</td><td class="num">{item.difficulty:.0%}</td>'
        f'<td class="num">{"–" if item.discrimination is None else f"{item.discrimination:+.2f}"}</td>'
        f'<td>{", ".join(item.flags)}</td></tr>' for item in items)
    notes = ""
    for exercise, group in flagged_by_exercise(items).items():
        named = "; ".join(f"<b>{_text(item.name)}</b> ({item.kind}: {numbers(item)})" for item in group)
        flags = dict.fromkeys(flag for item in group for flag in item.flags)
        notes += f"<li>{named}. {' '.join(FLAG_SENTENCES[flag] for flag in flags)}</li>"
    students = items[0].students
    return (f'<section class="items"><h2>Item analysis · {_text(assignment)}</h2>'
            f'<p class="muted">Over {students} students graded normally. <b>Difficulty</b>: the mean share of an item\'s '
            "points the class earned. <b>Discrimination</b>: how the item's score goes with the score on the rest of the "
            "assignment (the corrected item-total correlation, from -1 to 1): high means stronger students earn it more "
            "often; near 0, it tells them apart little; negative, the weaker ones do better. With few students these "
            "numbers are rough. In brackets: difficulty, discrimination.</p>"
            f'<div class="figs">{_figure(item_analysis_figure(items), f"Item analysis of {assignment}")}'
            f'<div>{"<h3>Items that flag themselves</h3><ol>" + notes + "</ol>" if notes else "<p>No item flags itself.</p>"}'
            "</div></div>"
            '<details><summary>Every exercise and test</summary><div class="scroll"><table><thead><tr><th>item</th><th>kind</th>'
            '<th class="num">points</th><th class="num">difficulty</th><th class="num">discrimination</th><th>flags</th></tr>'
            f"</thead><tbody>{rows}</tbody></table></div></details></section>")


def _similarity_section(report: SimilarityReport | None) -> str:
    if report is None:
        return ""
    skipped = (f" Not compared: {_text(', '.join(f'{s} ({why})' for s, why in report.skipped.items()))}."
               if report.skipped else "")
    head = (f'<section class="similarity"><h2>Similar submissions · {_text(report.assignment)}</h2>'
            f'<p class="muted">{len(report.compared)} submissions compared by their own code (answer cells and unlocked code cells; '
            "copydetect fingerprints, so renamed variables and reordered functions still match). Starter code and the "
            f"course's reference solution do not count between students. Listed: pairs where at least {report.threshold:.0%} "
            f"of one student's own code is in the other's.{skipped}</p>")
    if not report.found:
        return head + "<p>No pair shares most of its code, and nobody's code is mostly the reference solution.</p></section>"
    pairs = "".join(_pair_html(match) for match in report.pairs) or "<p>No pair shares most of its code.</p>"
    reference = ""
    if report.reference:
        reference = ("<h3>Mostly the course's reference solution</h3><p class=\"muted\">Share of each student's own code "
                     "found in the solution notebook in <code>source/</code>; in a real class, it may have leaked.</p><p>"
                     + ", ".join(f"{_text(m.first)} ({m.first_share:.0%})" for m in report.reference) + "</p>")
    return head + pairs + reference + "</section>"


def _pair_html(match) -> str:
    rows = "".join(f'<tr><th colspan="2" class="cell-label">{_text(label)}</th></tr>'
                   f"<tr><td>{_code(left)}</td><td>{_code(right)}</td></tr>" for label, left, right in match.side_by_side())
    return (f'<h3>{_text(match.first)} ~ {_text(match.second)}</h3><p class="muted">{match.first_share:.0%} of '
            f"{_text(match.first)}'s own code is in {_text(match.second)}'s, {match.second_share:.0%} the other way; "
            f"{match.matched_characters} characters of code tokens match (highlighted).</p>"
            f'<div class="scroll"><table class="side"><thead><tr><th>{_text(match.first)}</th><th>{_text(match.second)}</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>")


def _code(cell: MatchedCell | None) -> str:
    if cell is None:
        return '<span class="muted">no matching code in this cell</span>'
    lines = "".join(f'<span class="{"hit" if i in cell.matched else ""}">{_text(line) or " "}</span>'
                    for i, line in enumerate(cell.lines))
    return f"<pre>{lines}</pre>"


def _late_section(assignment: str, late: dict[str, Lateness]) -> str:
    if not late:
        return ""
    rows = "".join(
        f"<tr><td>{_text(student)}</td><td>{l.due:%Y-%m-%d %H:%M}"
        f"{f' (extension {duration(l.extension.total_seconds())})' if l.extension else ''}</td>"
        f"<td>{l.submitted:%Y-%m-%d %H:%M}</td><td>{duration(l.seconds_late)}</td>"
        f'<td class="num">{f"-{l.penalty:.4g} of {l.score:.4g}" if l.penalty else "none (grace period)"}</td></tr>'
        for student, l in sorted(late.items()))
    return (f'<section class="late"><h2>Late submissions · {_text(assignment)}</h2><p class="muted">Times in UTC. The penalty '
            "is the course's late policy (nbgrader_config.py) applied to the points earned, written answers included; "
            "extensions come from extensions.csv and the gradebook. Each student's feedback explains it.</p>"
            '<table><thead><tr><th>student</th><th>due</th><th>handed in</th><th>late by</th><th class="num">penalty</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></section>")


def _chip(number: int, outcome: ExerciseOutcome, graded: GradedSubmission) -> str:
    earned = sum(graded.scores.get(t, 0.0) for t in outcome.test_ids)
    kind = "full" if outcome.points and earned >= outcome.points else "some" if earned > 0 else "none"
    title = f"{number}. {outcome.grade_id}: {earned:g}/{outcome.points:g}"
    return f'<span class="chip {kind}" title="{_text(title)}">{number}</span>'


def _section_link(assignment: str) -> str:
    """The assignment's number, linked to its section of the report, its full id shown on hover."""
    return f'<a href="#{_text(quote(assignment))}" title="{_text(assignment)}">{_text(assignment.split("-", 1)[0])}</a>'


def _feedback_link(course_dir: Path, report_dir: Path, student: str, assignment: str, text: str) -> str:
    page = course_dir / "feedback" / student / assignment / f"{assignment}.html"
    if not page.is_file():
        return _text(text)
    href = quote(Path(os.path.relpath(page, report_dir)).as_posix())
    return f'<a href="{_text(href)}">{_text(text)}</a>'


def _heat(share: float, flagged: bool) -> str:
    # From a pale to the full blue as the share grows; text turns white where the blue gets dark.
    pale, deep = np.array([234, 241, 251]), np.array([46, 94, 166])
    red, green, blue = (pale + (deep - pale) * share).round().astype(int)
    outline = f";box-shadow:inset 0 0 0 2px {FLAGGED}" if flagged else ""
    return f"background:rgb({red},{green},{blue});color:{'#fff' if share > 0.55 else INK}{outline}"


def _text(value: str) -> str:
    return html.escape(value, quote=True)


def _plain(text: str) -> str:
    """``text`` for a matplotlib label, with ``$`` kept literal instead of starting mathtext."""
    return text.replace("$", r"\$")


STYLE = """
:root { --full:#3b73b9; --some:#f2b04c; --none:#d0533f; --flag:#8a94a6; --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; }
* { box-sizing: border-box; }
body { margin: 0; background: #f5f7fa; color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 32px 24px 64px; }
h1 { font-size: 30px; margin: 0 0 2px; } h2 { font-size: 21px; margin: 0 0 6px; } h3 { font-size: 16px; margin: 24px 0 2px; }
.sub, .muted { color: var(--muted); } .sub { margin: 0 0 16px; font-size: 14px; }
.howto { background: #fff; border-left: 4px solid var(--full); padding: 10px 16px; border-radius: 0 8px 8px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 12px; margin: 20px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; color: var(--muted); }
.card b { display: block; font-size: 28px; color: var(--ink); line-height: 1.2; }
section { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 22px 26px; margin: 24px 0; }
section.attention { background: #fff7f5; border-color: #f1c4b9; } section.calm { background: #f4f8fd; }
figure { margin: 12px 0; } img { max-width: 100%; height: auto; display: block; }
.figs { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; align-items: start; }
@media (max-width: 860px) { .figs { grid-template-columns: 1fr; } }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; margin-top: 8px; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
thead th { color: var(--muted); font-weight: 600; font-size: 13px; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.grid { width: auto; min-width: 60%; } table.grid th:first-child { padding-right: 32px; }
table.grid td.heat, table.grid thead th.num { text-align: center; min-width: 52px; } table.grid td.heat a { color: inherit; }
a { color: #2457a0; text-decoration: none; } a:hover { text-decoration: underline; }
tr.flagged td { background: #fbf8f2; }
td.chips, td.pct, td.who { white-space: nowrap; }
.chip { display: inline-block; width: 22px; margin: 1px; border-radius: 4px; font-size: 11px; line-height: 18px;
        text-align: center; color: #fff; }
.chip.full { background: var(--full); } .chip.some { background: var(--some); color: var(--ink); } .chip.none { background: var(--none); }
.bar { display: inline-block; width: 70px; height: 8px; margin-right: 8px; background: var(--line); border-radius: 4px; overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--full); }
td.about { color: var(--muted); font-size: 12.5px; max-width: 340px; } td.why { color: #9c3d2c; font-size: 13px; max-width: 340px; }
details summary { cursor: pointer; color: #2457a0; margin-top: 10px; }
table.side { table-layout: fixed; } table.side td { width: 50%; vertical-align: top; padding: 0 6px; }
table.side th.cell-label { background: #f4f8fd; font-weight: 600; font-size: 13px; }
pre { margin: 4px 0; font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; }
pre span { display: block; } pre span.hit { background: #fde8c8; }
"""
