"""Where the grades live: the course folder's SQLite file, or a shared database such as PostgreSQL.

nbgrader keeps every grade, comment and student in one SQL database, ``CourseDirectory.db_url``
(by default ``gradebook.db`` beside ``nbgrader_config.py``). A course that grades on several
machines, or whose university runs a PostgreSQL server, sets ``COURSE_DB_URL`` instead, for
example ``postgresql+psycopg://grader@db.example.org/course``: ``nbgrader_config.py`` reads it,
so plain ``nbgrader`` commands use it, and ``course grade`` and ``course report`` do too.
The course's own scratch folders (``course verify``, ``course demo``, ``course bench``) never
inherit it: they keep a SQLite gradebook of their own, so they cannot touch the real one.

``prepare_gradebook`` creates the schema and the course row once, before any worker opens the
database (nbgrader creates them on first open, and concurrent first opens race).
``migrate_gradebook`` moves an existing gradebook, every row of every table, to another
database and checks that nothing was lost.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DB_URL_VARIABLE = "COURSE_DB_URL"


class GradebookError(RuntimeError):
    """The gradebook cannot be opened or moved; the message says why and what to do."""


def sqlite_url(course_dir: Path) -> str:
    """The URL of the SQLite gradebook nbgrader keeps in ``course_dir`` by default."""
    return f"sqlite:///{Path(course_dir).resolve() / 'gradebook.db'}"


def configured_url(environ: dict[str, str] | None = None) -> str | None:
    """The shared gradebook named by ``COURSE_DB_URL``, or None for the course folder's own SQLite file."""
    return (os.environ if environ is None else environ).get(DB_URL_VARIABLE) or None


def url_for(course_dir: Path, db_url: str | None = None) -> str:
    """``db_url`` when given, else the SQLite gradebook of ``course_dir``."""
    return db_url or sqlite_url(course_dir)


def describe(db_url: str) -> str:
    """``db_url`` with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(db_url).render_as_string(hide_password=True)


def course_id(course_dir: Path) -> str:
    """The ``CourseDirectory.course_id`` that ``course_dir``'s ``nbgrader_config.py`` sets."""
    from course.nbgrader_settings import course_config

    return course_config(course_dir).CourseDirectory.get("course_id", "default_course")


def prepare_gradebook(db_url: str, course_id: str) -> None:
    """Create nbgrader's tables and the course's row in ``db_url`` if they are missing."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SQLAlchemyError

    # A new database gets its schema version from the `alembic` script, which nbgrader runs by name.
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    try:
        with Gradebook(db_url, course_id=course_id):
            pass
    except SQLAlchemyError as error:
        raise GradebookError(f"cannot open the gradebook {describe(db_url)}: {error.__class__.__name__}: "
                             f"{str(error).splitlines()[0]} (check {DB_URL_VARIABLE}, the server and its credentials)") from None


def table_rows(db_url: str) -> dict[str, list[tuple]]:
    """Every row of every nbgrader table (and the schema version) in ``db_url``, sorted, keyed by table."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine, inspect, select

    engine = create_engine(db_url)
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            rows = {table.name: sorted((tuple(row) for row in connection.execute(select(table))), key=repr)
                    for table in Base.metadata.sorted_tables if table.name in present}
            if "alembic_version" in present:
                rows["alembic_version"] = [tuple(row) for row in connection.exec_driver_sql("SELECT version_num FROM alembic_version")]
        return rows
    finally:
        engine.dispose()


def migrate_gradebook(source_url: str, target_url: str) -> dict[str, int]:
    """Copy every row of the gradebook at ``source_url`` into the empty database at ``target_url``.

    Creates nbgrader's schema in the target, copies the tables in dependency order in one
    transaction, then reads both back and compares every row. Returns the number of rows per
    table. Refuses a target that already holds grades; raises GradebookError when anything
    differs (the target is then left as it was, or holding an exact copy).
    """
    from nbgrader.api import Base
    from sqlalchemy import create_engine, insert, inspect, select, text

    source_rows = table_rows(source_url)
    if not source_rows.get("course"):
        raise GradebookError(f"{describe(source_url)} holds no nbgrader gradebook (no course row): nothing to move")
    target = create_engine(target_url)
    try:
        if set(inspect(target).get_table_names()) & {table.name for table in Base.metadata.sorted_tables}:
            if any(table_rows(target_url).get(name) for name in ("course", "student", "assignment")):
                raise GradebookError(f"{describe(target_url)} already holds a gradebook: move into an empty database")
        source = create_engine(source_url)
        try:
            with source.connect() as reading, target.begin() as writing:
                Base.metadata.create_all(writing)
                for table in Base.metadata.sorted_tables:
                    rows = [dict(row._mapping) for row in reading.execute(select(table))]
                    if rows:
                        writing.execute(insert(table), rows)
                writing.execute(text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL)"))
                writing.execute(text("DELETE FROM alembic_version"))
                for (version,) in source_rows.get("alembic_version", []):
                    writing.execute(text("INSERT INTO alembic_version (version_num) VALUES (:version)"), {"version": version})
        finally:
            source.dispose()
    finally:
        target.dispose()
    moved = table_rows(target_url)
    differing = sorted(name for name in source_rows if source_rows[name] != moved.get(name))
    if differing:
        raise GradebookError(f"the copy in {describe(target_url)} differs from {describe(source_url)} in: {', '.join(differing)}")
    return {name: len(rows) for name, rows in source_rows.items()}
