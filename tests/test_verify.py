import copy

import nbformat
import pytest

from course.assignments import assignment_ids, nbgrader_meta, notebook_path, read_notebook
from course.verify import leak_problems, output_problems, verify_assignment
from conftest import REPO

TINY = "99-tiny"


def test_a_release_showing_solution_lines_or_markers_is_caught(tiny_course):
    source = read_notebook(notebook_path(tiny_course, "source", TINY))
    release = read_notebook(notebook_path(tiny_course, "release", TINY))
    assert leak_problems(source, release, "release") == []
    leaky = copy.deepcopy(release)
    leaky.cells[3].source += "\ncheck_equal(add(-4, 10), 6, \"the sum of a negative and a positive number\", \"return the sum of the two arguments\")"
    leaky.cells[4].source += "\n### BEGIN SOLUTION"
    problems = leak_problems(source, leaky, "release")
    assert "release contains the marker 'BEGIN SOLUTION'" in problems
    assert any("shows a line from a solution or hidden test" in p and "add(-4, 10)" in p for p in problems)


def test_committed_outputs_are_caught(tiny_course):
    source = read_notebook(notebook_path(tiny_course, "source", TINY))
    assert output_problems(source, "source") == []
    source.cells[1].outputs = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    assert "has outputs committed" in output_problems(source, "source")[0]


def test_tiny_assignment_verifies_through_nbgrader(tiny_course):
    report = verify_assignment(tiny_course, TINY, jobs=2)
    assert report.ok, report.lines()
    assert "solution scores 3/3" in report.passed and "release scores 0/3" in report.passed
    assert [(v.mutant.name, v.judged_right, v.named_mistake) for v in report.verdicts] == [
        ("subtracts", True, True), ("ignores-the-first-argument", True, True),
        ("returns-a-string", True, True), ("builtin-sum", True, True)]


def test_verify_reports_weak_tests_broken_alternatives_and_a_stale_release(tiny_course):
    mutants = tiny_course / "source" / TINY / "mutants.toml"
    mutants.write_text(mutants.read_text()
                       .replace("return a - b", "return a + b")           # a "wrong" answer that is right
                       .replace("return sum([a, b])", "return a * b"))    # an "alternative" that is wrong
    release = notebook_path(tiny_course, "release", TINY)
    release.write_text(release.read_text().replace("add two numbers", "add some numbers"))
    report = verify_assignment(tiny_course, TINY, jobs=2)
    problems = "\n".join(report.problems)
    assert "wrong answer add-numbers/subtracts keeps full marks (3/3)" in problems
    assert "alternative answer add-numbers/builtin-sum gets 0/3, not full marks" in problems
    assert f"release/{TINY}/{TINY}.ipynb differs from what `course build` makes" in problems


def test_verify_reports_a_test_cell_that_writes_to_stderr(tiny_course):
    path = notebook_path(tiny_course, "source", TINY)
    source = read_notebook(path)
    visible = next(cell for cell in source.cells if nbgrader_meta(cell).get("grade_id") == "add-numbers-visible")
    visible.source += "\nimport sys\nsys.stderr.write('a library warning\\n')"
    nbformat.write(source, path)
    report = verify_assignment(tiny_course, TINY, jobs=2)
    problems = "\n".join(report.problems)
    assert "test cell add-numbers-visible writes to stderr" in problems
    assert "the solution loses points in add-numbers-visible" in problems


@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignment_ids(REPO))
def test_course_assignment_verifies(repo, assignment):
    report = verify_assignment(repo, assignment, jobs=1)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    wrong = [v for v in report.verdicts if v.mutant.kind == "wrong"]
    assert wrong and all(v.named_mistake for v in wrong), "\n".join(report.lines())


def test_honest_first_use_of_lazily_initialised_modules_is_not_flagged(tiny_course):
    """tempfile and pyplot fill in module state on first use; a notebook using them honestly is not tampering."""
    from course.build import build

    path = notebook_path(tiny_course, "source", TINY)
    source = read_notebook(path)
    setup = next(cell for cell in source.cells if nbgrader_meta(cell).get("grade_id") == "setup")
    setup.source += "\nimport tempfile\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt"
    answer = next(cell for cell in source.cells if nbgrader_meta(cell).get("grade_id") == "add-numbers")
    answer.source = answer.source.replace("### BEGIN SOLUTION", "### BEGIN SOLUTION\n    plt.plot([a, b])\n    tempfile.gettempdir()")
    nbformat.write(source, path)
    build(tiny_course, [TINY])
    report = verify_assignment(tiny_course, TINY, jobs=2)
    assert report.ok, "\n".join(report.problems)
    assert "neither the solution nor the release is flagged for a person" in report.passed
