import shutil

import nbformat

from course.assignments import notebook_path
from course.build import build, release_differences

TINY = "99-tiny"


def test_build_regenerates_the_release_without_solutions_or_outputs(tiny_course):
    shutil.rmtree(tiny_course / "release")
    build(tiny_course, [TINY])
    release = nbformat.read(notebook_path(tiny_course, "release", TINY), as_version=4)
    text = "\n".join(cell.source for cell in release.cells)
    assert "raise NotImplementedError()" in text and "return a + b" not in text
    assert "BEGIN HIDDEN TESTS" not in text and "add(-4, 10)" not in text
    assert "Because sums are useful." not in text and "YOUR ANSWER HERE" in text
    assert not (tiny_course / "release" / TINY / "mutants.toml").exists()
    assert not (tiny_course / "gradebook.db").exists()
    assert release_differences(tiny_course, TINY) == []


def test_release_differences_catch_edits_and_extra_files(tiny_course):
    path = notebook_path(tiny_course, "release", TINY)
    path.write_text(path.read_text().replace("add two numbers", "add numbers"))
    (tiny_course / "release" / TINY / "notes.txt").write_text("stray")
    problems = release_differences(tiny_course, TINY)
    assert f"release/{TINY}/{TINY}.ipynb differs from what `course build` makes" in problems
    assert f"release/{TINY}/notes.txt should not be there" in problems


def test_a_missing_release_is_reported(tiny_course):
    shutil.rmtree(tiny_course / "release" / TINY)
    assert release_differences(tiny_course, TINY) == [f"release/{TINY}/ is missing"]
