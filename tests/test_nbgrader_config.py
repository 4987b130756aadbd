"""Plain nbgrader, run from the repository root with the repository's config, works."""
import json
import shutil
import subprocess

import nbformat
from nbgrader.api import Gradebook

from course.assignments import notebook_path
from course.grader.grading import nbgrader_env

ASSIGNMENT = "01-what-is-ai-engineering"
TINY = "99-tiny"


def nbgrader(*args, cwd):
    """The `nbgrader` console script, as an instructor runs it (the venv's bin first on PATH)."""
    return subprocess.run(["nbgrader", *args], cwd=cwd, capture_output=True, text=True, env=nbgrader_env())


def test_generate_and_autograde_from_the_root(repo, tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    shutil.copy2(repo / "nbgrader_config.py", root)
    shutil.copytree(repo / "source" / ASSIGNMENT, root / "source" / ASSIGNMENT)
    generated = nbgrader("generate_assignment", ASSIGNMENT, cwd=root)
    assert generated.returncode == 0, generated.stderr
    assert not (root / "release" / ASSIGNMENT / "mutants.toml").exists()
    assert (root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text() == \
        notebook_path(repo, "release", ASSIGNMENT).read_text()

    submitted = root / "submitted" / "alice" / ASSIGNMENT
    submitted.mkdir(parents=True)
    shutil.copy2(notebook_path(repo, "source", ASSIGNMENT), submitted)
    graded = nbgrader("autograde", ASSIGNMENT, cwd=root)
    assert graded.returncode == 0, graded.stderr
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, "alice")
        assert submission.max_score == 32  # 30 autograded + 2 for the written answer
        autograded = sum(g.score for g in gradebook.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, "alice").grades
                         if g.auto_score is not None and g.cell_type == "code")
        assert autograded == 30
    assert (root / "autograded" / "alice" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()


def broken_metadata_class(solution: dict) -> dict[str, dict]:
    """Submissions of the right answer whose notebook metadata nbgrader itself would stop the whole run on."""
    def with_copied_tests(notebook):
        # An unlocked copy of each test cell, under the same cell id and grade id.
        cells = []
        for cell in notebook["cells"]:
            cells.append(cell)
            meta = cell["metadata"].get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution") and cell["cell_type"] == "code":
                copy = json.loads(json.dumps(cell))
                copy["metadata"]["nbgrader"]["locked"] = False
                copy["source"] = "pass"
                cells.append(copy)
        notebook["cells"] = cells

    def answers(change):
        def apply(notebook):
            for cell in notebook["cells"]:
                if cell["metadata"].get("nbgrader", {}).get("solution"):
                    change(cell["metadata"])
        return apply

    def with_bad_cell_ids(notebook):
        notebook["cells"][1]["id"] = "not a valid id!"
        notebook["cells"][2]["id"] = "x" * 100
        notebook["cells"][3]["id"] = notebook["cells"][4]["id"]

    changes = {
        "copied-tests": with_copied_tests,
        "schema-too-new": answers(lambda meta: meta["nbgrader"].update(schema_version=4)),
        "schema-too-old": answers(lambda meta: meta["nbgrader"].update(schema_version=1)),
        "schema-not-a-number": answers(lambda meta: meta["nbgrader"].update(schema_version="3")),
        "one-grade-id-twice": answers(lambda meta: meta["nbgrader"].update(grade_id="add-numbers")),
        "metadata-not-a-dict": answers(lambda meta: meta.update(nbgrader="add-numbers")),
        "bad-cell-ids": with_bad_cell_ids,
    }
    submissions = {"a-first-honest": solution, "z-last-honest": solution}
    for name, change in changes.items():
        notebook = json.loads(json.dumps(solution))
        change(notebook)
        submissions[name] = notebook
    return submissions


def test_no_submission_stops_plain_nbgrader_for_the_others(built_tiny_course, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(built_tiny_course, root)
    solution = json.loads((root / "source" / TINY / f"{TINY}.ipynb").read_text())
    submissions = broken_metadata_class(solution)
    for student, notebook in submissions.items():
        target = root / "submitted" / student / TINY / f"{TINY}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(json.dumps(notebook))
    assert nbgrader("generate_assignment", TINY, "--force", cwd=root).returncode == 0
    graded = nbgrader("autograde", TINY, cwd=root)
    assert graded.returncode == 0, graded.stderr[-3000:]
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        scores = {student: sum(g.score for g in gradebook.find_submission_notebook(TINY, TINY, student).grades
                               if g.cell_type == "code") for student in submissions}
    assert scores == dict.fromkeys(submissions, 3)
    for student in submissions:
        notebook = nbformat.read(root / "autograded" / student / TINY / f"{TINY}.ipynb", as_version=4)
        nbformat.validate(notebook)
