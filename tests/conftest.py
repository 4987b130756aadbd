"""Shared fixtures: the repository itself, and a tiny course folder for fast nbgrader runs."""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

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


def readable_text(page: str) -> str:
    """All a reader of an HTML page can see: its source with entities decoded, and its text without tags
    (code highlighting splits code into many tags, so hidden code would not show up in the source alone)."""
    return html.unescape(page) + "\n" + html.unescape(re.sub(r"<[^>]+>", "", page))


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (tests/postgres.py); each test makes its own database."""
    from postgres import ThrowawayPostgres

    server = ThrowawayPostgres().start()
    yield server
    server.stop()
