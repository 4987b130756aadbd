"""RestoreTestCells, the sanitizing step that puts the source's cells back into a submission."""
import shutil

import nbformat
import pytest

from course.grader.grading import run_nbgrader_checked
from course.grader.preprocessors import RestoreTestCells, repair_cells

TINY = "99-tiny"


@pytest.fixture(scope="module")
def gradebook(built_tiny_course, tmp_path_factory):
    """A gradebook that knows the tiny assignment, as ``nbgrader generate_assignment`` leaves it."""
    folder = tmp_path_factory.mktemp("restore") / "course"
    shutil.copytree(built_tiny_course, folder)
    run_nbgrader_checked(["generate_assignment", TINY, "--force"], folder)
    return folder / "gradebook.db"


@pytest.fixture
def restore(gradebook):
    """Run RestoreTestCells on a notebook against the tiny course's gradebook; returns the cells' (id, first line)."""
    resources = {"nbgrader": {"db_url": f"sqlite:///{gradebook}", "notebook": TINY, "assignment": TINY}}

    def run(notebook):
        restored, _ = RestoreTestCells().preprocess(notebook, resources)
        return [(cell.metadata.get("nbgrader", {}).get("grade_id"), cell.source.splitlines()[0] if cell.source else "")
                for cell in restored.cells]
    return run


def release(built_tiny_course):
    return nbformat.read(built_tiny_course / "release" / TINY / f"{TINY}.ipynb", as_version=4)


def grade_ids(cells):
    return [grade_id for grade_id, _ in cells]


def test_an_untouched_submission_keeps_its_order(restore, built_tiny_course):
    notebook = release(built_tiny_course)
    expected = [cell.metadata.get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    assert grade_ids(restore(notebook)) == expected
    assert expected[:2] == [None, "setup"]  # the title (no nbgrader metadata) stays above the setup cell


def test_edited_and_deleted_test_cells_come_back_in_their_places(restore, built_tiny_course):
    notebook = release(built_tiny_course)
    expected = grade_ids(restore(release(built_tiny_course)))
    visible = next(cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == "add-numbers-visible")
    visible.source = "pass  # tests? what tests"
    notebook.cells = [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") != "add-numbers-hidden"]
    notebook.cells.insert(0, nbformat.v4.new_code_cell("x = 1  # the student's own cell"))
    cells = restore(notebook)
    assert grade_ids(cells) == [None, *expected]
    assert dict(cells)["add-numbers-visible"].startswith("check_equal(add(2, 3), 5")
    assert dict(cells)["add-numbers-hidden"].startswith("# Hidden tests run here")


def test_a_duplicated_graded_cell_and_an_unknown_one_earn_nothing(restore, built_tiny_course):
    notebook = release(built_tiny_course)
    expected = grade_ids(restore(release(built_tiny_course)))
    fake = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {"grade": True, "grade_id": "bonus", "points": 100,
                                                                    "locked": True, "solution": False, "schema_version": 3}})
    duplicate = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": dict(notebook.cells[4].metadata["nbgrader"])})
    notebook.cells += [fake, duplicate]
    assert grade_ids(restore(notebook)) == expected


def test_an_answer_keeps_its_text_and_gets_the_sources_metadata(restore, built_tiny_course):
    notebook = release(built_tiny_course)
    answer = next(cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("grade_id") == "add-numbers")
    answer.source = "def add(a, b):\n    return a + b\n"
    answer.metadata["nbgrader"].update(schema_version=99, points="many", locked=True)
    cells = restore(notebook)
    assert dict(cells)["add-numbers"] == "def add(a, b):"
    assert answer.metadata["nbgrader"]["schema_version"] == 3 and "points" not in answer.metadata["nbgrader"]
    assert answer.metadata["nbgrader"]["locked"] is False


def test_cell_ids_are_repaired_so_nbformat_accepts_the_notebook(built_tiny_course):
    notebook = release(built_tiny_course)
    notebook.cells[0]["id"] = "not a valid id!"
    notebook.cells[1]["id"] = notebook.cells[2]["id"]
    notebook.cells[3]["metadata"] = "not a dict"
    repair_cells(notebook)
    ids = [cell["id"] for cell in notebook.cells]
    assert len(set(ids)) == len(ids) and notebook.cells[3]["metadata"] == {}
    nbformat.validate(notebook)
