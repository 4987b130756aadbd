"""The course folder's nbgrader settings, read the way nbgrader reads them.

The course's tools that read or write the gradebook outside an nbgrader run (``course export``,
``course report``, ``course grade --watch``) take its address and the late policy from the
folder's ``nbgrader_config.py``, so a course that keeps its gradebook elsewhere (another
``CourseDirectory.db_url``) or changes the late policy needs no second setting.
"""
from __future__ import annotations

from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from course.assignments import CourseLayoutError

CONFIG_FILE = "nbgrader_config.py"


def course_config(course_dir: Path) -> Config:
    """The configuration ``nbgrader`` builds from ``course_dir/nbgrader_config.py`` when run in that folder."""
    if not (course_dir / CONFIG_FILE).is_file():
        raise CourseLayoutError(f"no {CONFIG_FILE} in {course_dir}: run this in the course folder (or pass --root)")
    return PyFileConfigLoader(CONFIG_FILE, path=str(course_dir)).load_config()


def gradebook_url(course_dir: Path) -> str:
    """The database URL of the course's gradebook (``CourseDirectory.db_url``; by default ``gradebook.db`` in the folder)."""
    from nbgrader.coursedir import CourseDirectory

    config = course_config(course_dir)
    if "root" not in config.CourseDirectory:
        config.CourseDirectory.root = str(course_dir)
    return CourseDirectory(config=config).db_url


def existing_gradebook_url(course_dir: Path) -> str:
    """``gradebook_url``, after checking that a SQLite gradebook exists (opening a missing one would create it empty)."""
    url = gradebook_url(course_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise CourseLayoutError(f"no gradebook at {url.removeprefix('sqlite:///')}: grade first (`course grade ASSIGNMENT`)")
    return url
