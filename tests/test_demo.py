"""``course demo``: the demo class made from the real notebooks, and the whole job on a real assignment."""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil

import nbformat
import pytest
from PIL import Image

from course.assignments import CourseLayoutError, exercises, is_exercise_solution, nbgrader_meta, notebook_path, read_notebook
from course.cli import main
from course.demo import (COPY_PAIR, DemoStudent, demo_class, disguised_copy, prepare_folder, real_class_state,
                         similarity_surprises, surprises, with_syntax_error)
from course.grader.grading import GradedSubmission
from course.mutants import load_mutants, mutants_path

FIRST = "01-what-is-ai-engineering"
STUDENTS = ["perfect", *(f"partial-{n:02d}" for n in range(1, 7)), "blank", "broken-file", "hostile", "copied-from", "copier"]


def answers(notebook) -> dict[str, str]:
    """The answer cell of each exercise, by grade id."""
    return {nbgrader_meta(cell)["grade_id"]: cell.source for cell in notebook.cells if is_exercise_solution(cell)}


@pytest.fixture(scope="module")
def first_class(repo):
    return {student.name: student for student in demo_class(repo, FIRST)}


def test_the_demo_class_has_every_kind_of_student(repo, first_class):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    release = read_notebook(notebook_path(repo, "release", FIRST))
    total = sum(exercise.points for exercise in exercises(source))
    assert list(first_class) == STUDENTS
    perfect, blank = first_class["perfect"], first_class["blank"]
    assert answers(nbformat.reads(perfect.file_text, 4)) == answers(source)
    assert (perfect.least, perfect.most, perfect.flagged) == (total, total, False)
    assert answers(nbformat.reads(blank.file_text, 4)) == answers(release)
    assert (blank.least, blank.most, blank.flagged) == (0, 0, False)
    with pytest.raises(json.JSONDecodeError):
        json.loads(first_class["broken-file"].file_text)
    assert first_class["broken-file"].flagged


def test_the_hostile_student_cheats_on_the_first_exercise_only(repo, first_class):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    first, *rest = exercises(source)
    hostile = first_class["hostile"]
    handed_in = answers(nbformat.reads(hostile.file_text, 4))
    assert "setattr(course.checks, name" in handed_in[first.grade_id] and f"source/{FIRST}/{FIRST}.ipynb" in handed_in[first.grade_id]
    assert {g: a for g, a in handed_in.items() if g != first.grade_id} == {e.grade_id: answers(source)[e.grade_id] for e in rest}
    assert hostile.least == hostile.most == sum(e.points for e in rest) and hostile.flagged


def test_partial_students_mix_right_answers_and_misses(repo, first_class):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    release = read_notebook(notebook_path(repo, "release", FIRST))
    mutants = load_mutants(mutants_path(repo, FIRST))
    right = {g: {a, *(m.code for m in mutants if m.exercise == g and m.kind == "alternative")} for g, a in answers(source).items()}
    missed = {g: {answers(release)[g], with_syntax_error(a), *(m.code for m in mutants if m.exercise == g and m.kind == "wrong")}
              for g, a in answers(source).items()}
    total = sum(exercise.points for exercise in exercises(source))
    for number in range(1, 7):
        student = first_class[f"partial-{number:02d}"]
        handed_in = answers(nbformat.reads(student.file_text, 4))
        assert all(handed_in[g] in right[g] | missed[g] for g in handed_in), student.name
        assert any(handed_in[g] in right[g] for g in handed_in) and any(handed_in[g] in missed[g] for g in handed_in), student.name
        assert 0 < student.least <= student.most < total and not student.flagged
    again = {student.name: student for student in demo_class(repo, FIRST)}
    assert again == first_class, "the demo class must be the same on every run"


def test_the_copier_hands_in_the_honest_answers_disguised(repo, first_class):
    source = read_notebook(notebook_path(repo, "source", FIRST))
    mutants = load_mutants(mutants_path(repo, FIRST))
    first_alternative = {}
    for mutant in mutants:
        if mutant.kind == "alternative":
            first_alternative.setdefault(mutant.exercise, mutant.code)
    original = answers(nbformat.reads(first_class["copied-from"].file_text, 4))
    copied = answers(nbformat.reads(first_class["copier"].file_text, 4))
    assert original == {g: first_alternative.get(g, a) for g, a in answers(source).items()}
    assert copied == {g: disguised_copy(a) for g, a in original.items()} and all(copied[g] != original[g] for g in original)
    total = sum(exercise.points for exercise in exercises(source))
    assert all((first_class[s].least, first_class[s].most, first_class[s].flagged) == (total, total, False) for s in COPY_PAIR)
    # Nobody else hands in those answers, and at most one partial student hands in a mutant of each exercise.
    used = {}
    for number in range(1, 7):
        handed_in = answers(nbformat.reads(first_class[f"partial-{number:02d}"].file_text, 4))
        for grade_id, code in handed_in.items():
            assert code != first_alternative.get(grade_id)
            if code in {m.code for m in mutants if m.exercise == grade_id}:
                used.setdefault(grade_id, []).append(number)
    assert all(len(students) == 1 for students in used.values()), used


def test_a_disguised_copy_renames_reorders_and_behaves_the_same():
    code = """
import math

def area(radius):
    # the area of a circle
    squared = radius ** 2
    return math.pi * squared

def areas(radii, scale=2):
    total = [area(r) * scale for r in radii]
    return total
"""
    disguised = disguised_copy(code)
    assert disguised.index("def areas") < disguised.index("def area(")
    assert "my_squared" in disguised and "my_total" in disguised and "# the area" not in disguised
    assert "def area(radius)" in disguised and "scale=2" in disguised
    original, copy = {}, {}
    exec(code, original)
    exec(disguised, copy)
    assert copy["areas"]([1.0, 2.0]) == original["areas"]([1.0, 2.0])


def test_similarity_surprises_name_a_missed_copy_and_a_wrong_pair():
    from course.similarity import Match, SimilarityReport

    students = [DemoStudent(name, "", "", 0, 0) for name in ("perfect", *COPY_PAIR)]

    def match(first, second):
        return Match(first, second, 0.9, 0.9, 500, (), ())

    report = SimilarityReport(FIRST, 0.5, 100, code_size={"copied-from": 800, "copier": 790})
    report.pairs = [match("copied-from", "copier")]
    assert similarity_surprises(students, report) == []
    report.pairs, report.reference = [match("perfect", "copier")], [match("copied-from", "reference solution")]
    assert similarity_surprises(students, report) == [
        "the similarity check did not pair copied-from and copier", "the similarity check paired copier and perfect, who did not copy",
        "the similarity check took copied-from's own answers for the reference solution"]
    report.pairs, report.reference, report.code_size = [], [], {"copied-from": 40, "copier": 40}
    assert similarity_surprises(students, report) == []  # answers too short to tell from an idiom


def test_a_syntax_error_answer_does_not_compile(repo):
    for answer in answers(read_notebook(notebook_path(repo, "source", FIRST))).values():
        with pytest.raises(SyntaxError):
            compile(with_syntax_error(answer), "answer", "exec")
    with pytest.raises(SyntaxError):
        compile(with_syntax_error("x = 1"), "answer", "exec")


def test_surprises_name_a_wrong_grade_and_a_wrong_flag():
    students = [DemoStudent("ok", "", "", 2, 3), DemoStudent("low", "", "", 2, 3), DemoStudent("quiet", "", "", 0, 0, flagged=True),
                DemoStudent("absent", "", "", 0, 0)]
    graded = {"ok": GradedSubmission("ok", {"t": 3.0}, {"t": 3.0}), "low": GradedSubmission("low", {"t": 1.0}, {"t": 3.0}),
              "quiet": GradedSubmission("quiet", {"t": 0.0}, {"t": 3.0})}
    assert surprises(students, graded) == ["low scored 1/3, expected 2 to 3", "quiet was not flagged for a person (no reason given)",
                                           "absent was not graded"]


def test_the_demo_folder_never_replaces_a_folder_it_did_not_make(repo, tmp_path):
    for folder in (repo, repo.parent):
        with pytest.raises(CourseLayoutError, match="not a demo folder"):
            prepare_folder(repo, folder, [FIRST])
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    with pytest.raises(CourseLayoutError, match="not a demo folder"):
        prepare_folder(repo, precious, [FIRST])
    assert (precious / "notes.txt").read_text() == "keep"
    demo = tmp_path / "demo"
    prepare_folder(repo, demo, [FIRST])
    (demo / "leftover.txt").write_text("from the last demo")
    prepare_folder(repo, demo, [FIRST])
    assert not (demo / "leftover.txt").exists() and (demo / "source" / FIRST / f"{FIRST}.ipynb").is_file()


@pytest.mark.slow
def test_course_demo_grades_a_real_assignment_and_reports_it(repo, tmp_path, capsys):
    # The command rebuilds release/ in its course folder; a copy keeps the repository's release/ steady for other tests.
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(repo / "nbgrader_config.py", course / "nbgrader_config.py")
    for area in ("source", "release"):
        shutil.copytree(repo / area / FIRST, course / area / FIRST)
    real_before = real_class_state(repo)
    demo = tmp_path / "demo"

    assert main(["--root", str(course), "demo", FIRST, "--jobs", "2", "--output", str(demo)]) == 0
    out = capsys.readouterr().out

    source = read_notebook(notebook_path(course, "source", FIRST))
    first, *rest = exercises(source)
    total = sum(exercise.points for exercise in exercises(source))
    assert re.search(rf"^{FIRST}\s+12\s+\S+/{total:g}\s+\d+%\s+3\s+2$", out, re.M), out
    assert "every demo student got the points its submission earns" in out
    assert f"report:   {demo / 'report.html'}" in out and f"grades:   {demo / 'grades.csv'}" in out

    rows = {row["student"]: row for row in csv.DictReader((demo / "grades.csv").open())}
    assert sorted(rows) == sorted(STUDENTS)
    assert (rows["perfect"]["score"], rows["perfect"]["needs_attention"]) == (f"{total:g}", "")
    assert (rows["blank"]["score"], rows["blank"]["needs_attention"]) == ("0", "")
    assert rows["broken-file"]["score"] == "0" and "not a readable notebook" in rows["broken-file"]["needs_attention"]
    assert rows["hostile"]["score"] == f"{sum(e.points for e in rest):g}"
    assert all(rows["hostile"][test_id] == "0" for test_id in first.test_ids)
    assert re.search(r"changed [^;]*\bcheck_equal\b[^;]* in course\.checks", rows["hostile"]["needs_attention"]), rows["hostile"]
    for student in STUDENTS:
        assert (demo / "feedback" / student / FIRST / f"{FIRST}.html").is_file(), student
    hostile_feedback = (demo / "feedback" / "hostile" / FIRST / f"{FIRST}.html").read_text()
    assert "BEGIN HIDDEN TESTS" not in hostile_feedback

    page = (demo / "report.html").read_text()
    figures = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(figures) == 5
    for data in figures:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        assert image.format == "PNG" and image.width >= 700
    assert "<th>about</th>" in page and "hands in the solution notebook" in page
    assert f"Item analysis · {FIRST}" in page and f"Similar submissions · {FIRST}" in page
    assert "<h3>copied-from ~ copier</h3>" in page
    assert rows["copied-from"]["score"] == rows["copier"]["score"] == f"{total:g}"

    assert not (course / "submitted").exists() and not (course / "gradebook.db").exists()
    assert real_class_state(repo) == real_before
