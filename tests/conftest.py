"""Shared fixtures: the repository itself, a tiny course folder for fast nbgrader runs, and a tiny class graded once."""
from __future__ import annotations

import copy
import html
import re
import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TINY = "99-tiny"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The course repository under test."""
    return REPO


@pytest.fixture(scope="session")
def built_tiny_course(tmp_path_factory) -> Path:
    """A course folder holding only the tiny assignment, with its release built once."""
    from course.build import build

    folder = tmp_path_factory.mktemp("tiny-course")
    shutil.copy2(REPO / "nbgrader_config.py", folder / "nbgrader_config.py")
    shutil.copytree(FIXTURES / TINY, folder / "source" / TINY)
    build(folder, [TINY])
    return folder


@pytest.fixture
def tiny_course(built_tiny_course, tmp_path) -> Path:
    """A fresh copy of the tiny course that a test may change."""
    folder = tmp_path / "course"
    shutil.copytree(built_tiny_course, folder)
    return folder


@pytest.fixture(scope="session")
def graded_tiny_class(built_tiny_course, tmp_path_factory):
    """The tiny course with four students graded: full marks, a wrong answer worth 1 of 3, blank, a broken file."""
    from course.assignments import nbgrader_meta, notebook_path, read_notebook
    from course.grader.grading import grade_class
    from course.mutants import load_mutants, mutants_path

    folder = tmp_path_factory.mktemp("report") / "course"
    shutil.copytree(built_tiny_course, folder)
    source = read_notebook(notebook_path(folder, "source", TINY))
    ignores_first = copy.deepcopy(source)
    wrong = next(m for m in load_mutants(mutants_path(folder, TINY)) if m.name == "ignores-the-first-argument")
    next(c for c in ignores_first.cells if nbgrader_meta(c).get("grade_id") == "add-numbers").source = wrong.code
    texts = {"ada": nbformat.writes(source), "bob": nbformat.writes(ignores_first),
             "cy": nbformat.writes(read_notebook(notebook_path(folder, "release", TINY))), "dee": '{"cells": ['}
    for student, text in texts.items():
        target = folder / "submitted" / student / TINY / f"{TINY}.ipynb"
        target.parent.mkdir(parents=True)
        target.write_text(text)
    return folder, grade_class(folder, TINY, jobs=2)


def readable_text(page: str) -> str:
    """All a reader of an HTML page can see: its source with entities decoded, and its text without tags
    (code highlighting splits code into many tags, so hidden code would not show up in the source alone)."""
    return html.unescape(page) + "\n" + html.unescape(re.sub(r"<[^>]+>", "", page))
