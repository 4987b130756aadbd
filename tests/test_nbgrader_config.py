"""Plain nbgrader, run from the repository root with the repository's config, works."""
import shutil
import subprocess

from nbgrader.api import Gradebook

from course.assignments import notebook_path
from course.grader.grading import nbgrader_env

ASSIGNMENT = "01-what-is-ai-engineering"


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
