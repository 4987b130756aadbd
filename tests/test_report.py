"""The HTML grade report, built from a tiny class graded by the real nbgrader."""
from __future__ import annotations

import base64
import html
import io
import re

import pytest
from PIL import Image

from course.cli import main
from course.grader.grading import GradedSubmission
from course.report import (ExerciseOutcome, exercise_outcomes, most_missed, most_missed_figure, render_report,
                           summary_table, write_report)

TINY = "99-tiny"
PNG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def embedded_pngs(page: str) -> dict[str, Image.Image]:
    """Every figure of the page, by its alt text, decoded and checked as a PNG."""
    images = {}
    for alt, data in PNG.findall(page):
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG"
        image.load()
        images[html.unescape(alt)] = image
    return images


def test_the_grades_are_what_the_class_earned(graded_tiny_class):
    _, results = graded_tiny_class
    assert {s: (g.score, bool(g.attention)) for s, g in results.items()} == {
        "ada": (3, False), "bob": (1, False), "cy": (0, False), "dee": (0, True)}


def test_report_embeds_every_figure_as_a_readable_png(graded_tiny_class):
    folder, results = graded_tiny_class
    path = write_report(folder, {TINY: results}, folder / "report.html")
    page = path.read_text()
    images = embedded_pngs(page)
    assert len(PNG.findall(page)) == len(images) == 5
    assert set(images) == {"Each student's share of the autograded points, per assignment",
                           "The exercises students miss most, across all assignments",
                           f"Total scores of {TINY}", f"How each exercise of {TINY} went", f"Item analysis of {TINY}"}
    for alt, image in images.items():
        assert image.width >= 700 and image.height >= 200, (alt, image.size)
        assert len(image.convert("L").getcolors(maxcolors=256) or []) > 20, f"{alt} is blank"
    assert "http://" not in page and "https://" not in page, "the report must open without a network"
    assert not path.with_suffix(".html.partial").exists()


def test_report_numbers_match_the_grades(graded_tiny_class):
    folder, results = graded_tiny_class
    [outcome] = exercise_outcomes(folder, TINY, results)
    assert (outcome.grade_id, outcome.points, outcome.full, outcome.some, outcome.none) == ("add-numbers", 3, 1, 1, 2)
    assert outcome.pass_rate == 0.25 and outcome.mean_share == pytest.approx(4 / 12)
    assert summary_table({TINY: results}).splitlines()[1].split() == [TINY, "4", "0.5/3", "33%", "1", "1"]
    page = render_report(folder, {TINY: results}, folder)
    rows = dict(re.findall(r'<tr(?: class="flagged")?><td class="who">(\w+)</td><td class="num">(.*?)</td>', page))
    assert {student: re.sub(r"<[^>]+>", "", cell) for student, cell in rows.items()} == {
        "ada": "3/3", "bob": "1/3", "cy": "0/3", "dee": "0/3"}
    assert f'href="feedback/ada/{TINY}/{TINY}.html"' in page and (folder / "feedback" / "ada" / TINY / f"{TINY}.html").is_file()
    assert "not a readable notebook" in page


def test_student_provided_text_is_escaped(graded_tiny_class):
    folder, results = graded_tiny_class
    hostile_id = '<script>alert("id")</script>'
    rigged = GradedSubmission(hostile_id, {"add-numbers-visible": 0.0, "add-numbers-hidden": 0.0},
                              {"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0},
                              attention=["the file said <img src=x onerror=alert(1)>"])
    page = render_report(folder, {TINY: {**results, hostile_id: rigged}}, folder,
                         notes={TINY: {hostile_id: "<b>bold</b> & more"}})
    assert "<script>" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;id&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page


def test_most_missed_ranks_by_the_share_without_full_marks():
    def outcome(grade_id, full, some, none, share):
        return ExerciseOutcome("01-x", grade_id, (grade_id,), 2.0, full, some, none, share)

    outcomes = [outcome("easy", 9, 1, 0, 0.95), outcome("hard", 2, 4, 4, 0.3), outcome("nobody-missed", 10, 0, 0, 1.0),
                outcome("hard-but-close", 2, 8, 0, 0.6), outcome("medium", 5, 0, 5, 0.5)]
    assert [o.grade_id for o in most_missed(outcomes)] == ["hard", "hard-but-close", "medium", "easy"]
    assert [o.grade_id for o in most_missed(outcomes, limit=2)] == ["hard", "hard-but-close"]
    assert most_missed_figure([outcomes[2]]) is None


def test_a_class_with_full_marks_says_nobody_missed_anything(graded_tiny_class):
    folder, results = graded_tiny_class
    page = render_report(folder, {TINY: {"ada": results["ada"]}}, folder)
    assert "every student earned every point" in page
    assert "Nothing needs a person" in page
    assert len(embedded_pngs(page)) == 4


def test_course_report_writes_the_report_of_a_graded_folder(graded_tiny_class, capsys):
    folder, _ = graded_tiny_class
    assert main(["--root", str(folder), "report", "--output", str(folder / "out" / "grades.html")]) == 0
    out = capsys.readouterr().out
    assert TINY in out and "dee (99): the submitted file is not a readable notebook" in out
    page = (folder / "out" / "grades.html").read_text()
    assert len(embedded_pngs(page)) == 5
    assert f'href="../feedback/ada/{TINY}/{TINY}.html"' in page


def test_course_report_before_grading_says_to_grade_first(tiny_course, capsys):
    assert main(["--root", str(tiny_course), "report"]) == 2
    assert "grade first" in capsys.readouterr().err
    assert not (tiny_course / "gradebook.db").exists() and not (tiny_course / "report.html").exists()


def test_help_lists_the_report_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" in capsys.readouterr().out


def test_the_report_has_item_analysis_and_similarity_for_each_assignment(graded_tiny_class):
    folder, results = graded_tiny_class
    page = render_report(folder, {TINY: results}, folder)
    text = re.sub(r"<[^>]+>", " ", page)
    assert f"Item analysis · {TINY}" in text and "Over 3 students graded normally" in text
    assert re.search(r"add-numbers-visible\s+test\s+1\s+67%\s+\+0\.50", text)
    assert "No item flags itself" in text
    assert f"Similar submissions · {TINY}" in text
    assert "Not compared: cy (no code beyond the starter code), dee (not a readable notebook (NotJSONError))" in text
    assert "No pair shares most of its code" in text
    alone = render_report(folder, {TINY: {"ada": results["ada"]}}, folder)
    sentence = "Almost everyone earns these points"
    assert alone.count(sentence) == 1 and "add-numbers (exercise: 100%, undefined); add-numbers-visible (test: 100%, " \
        "undefined); add-numbers-hidden (test: 100%, undefined). Almost everyone" in html.unescape(re.sub(r"<[^>]+>", "", alone))


def test_the_report_lists_late_submissions_with_their_penalty(class_with_late_work):
    from course.report import graded_results

    page = render_report(class_with_late_work, graded_results(class_with_late_work, [TINY]), class_with_late_work)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert f"Late submissions · {TINY}" in text
    assert re.search(r"bob\s+2025-01-11 00:00 \(extension 12 hours\)\s+2025-01-11 13:00\s+13 hours\s+-0.2 of 2", text), text
    assert not re.search(r"alice\s+2025-01-10", text)
