"""nbgrader's whole workflow through a local exchange folder, as an instructor on one machine runs it.

Every step is a real ``nbgrader`` process, and the commands are those of docs/instructors.md
("The workflow"):

- the instructor, in a course folder holding the course's ``nbgrader_config.py`` and the tiny
  fixture assignment: ``generate_assignment --force``, ``release_assignment``,
  ``db student import`` (the class list);
- two students, each in their own home folder: ``fetch_assignment``, then they answer and
  ``submit`` (alice the solution, bob a wrong answer); carol, on the class list, never does;
- the instructor: ``collect``, ``autograde`` (sandboxed and hardened by the course's config),
  ``generate_feedback``, ``release_feedback``;
- alice and bob: ``fetch_feedback``;
- the instructor: ``export`` (the CSV for an LMS).

Each person has a home folder of their own (``HOME``), holding their settings in
``~/.jupyter/nbgrader_config.py`` (where nbgrader reads an account's settings) and nbgrader's
submission cache. All of them run under the test's one login, and nbgrader 0.9 names a
submission after the login of the process (it asks the system, not ``$USER``), so each
student's settings name them with ``CourseDirectory.student_id``, which ``nbgrader submit``
uses instead of the login.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat

from conftest import FIXTURES, TINY, readable_text
from course.assignments import nbgrader_meta, notebook_path, read_notebook
from course.grader.grading import nbgrader_env, read_results, run_nbgrader_checked
from course.mutants import load_mutants

COURSE_ID = "ai-engineering-for-developers"  # CourseDirectory.course_id in the course's nbgrader_config.py
EXERCISE = "add-numbers"                      # the tiny assignment's one answer cell
WRONG_ANSWER = "ignores-the-first-argument"   # a mutant that passes the visible test and fails the hidden ones


@dataclass(frozen=True)
class Person:
    """Someone using this machine: their home folder and the folder they run nbgrader in."""

    home: Path
    workdir: Path

    def nbgrader(self, *args: str) -> None:
        """Run ``nbgrader ARGS`` as this person; fail the test with the end of nbgrader's log when it fails."""
        # Jupyter's folders (settings, nbgrader's cache) must follow HOME, as they do for a real account.
        env = {name: value for name, value in nbgrader_env().items() if not name.startswith(("JUPYTER", "XDG_"))}
        env["HOME"] = str(self.home)
        run_nbgrader_checked(list(args), self.workdir, env)


def new_person(home: Path, settings: dict[str, str], workdir: Path | None = None) -> Person:
    """A person whose ``~/.jupyter/nbgrader_config.py`` holds ``settings``; they work in their home unless told otherwise."""
    config = home / ".jupyter" / "nbgrader_config.py"
    config.parent.mkdir(parents=True)
    config.write_text("c = get_config()\n" + "".join(f"c.{name} = {value!r}\n" for name, value in settings.items()))
    return Person(home, workdir or home)


def marked_lines(notebook, begin: str, end: str) -> list[str]:
    """The non-blank lines between nbgrader's ``begin`` and ``end`` markers in ``notebook``'s cells, stripped."""
    lines, inside = [], False
    for cell in notebook.cells:
        for line in cell.source.splitlines():
            if line.strip() in (begin, end):
                inside = line.strip() == begin
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def answer_cell(notebook, grade_id: str):
    """The cell of ``notebook`` in which the answer ``grade_id`` is written."""
    return next(cell for cell in notebook.cells if nbgrader_meta(cell).get("grade_id") == grade_id)


def hand_in_work(fetched: Path, answer: str, own_cells: tuple[str, ...] = ()) -> None:
    """Do what a student does in JupyterLab: write ``answer`` in the exercise's cell, add cells of their own, save."""
    notebook = nbformat.read(fetched, as_version=4)
    answer_cell(notebook, EXERCISE).source = answer
    notebook.cells += [nbformat.v4.new_code_cell(code) for code in own_cells]
    nbformat.write(notebook, fetched)


def test_release_submit_grade_and_feedback_through_the_exchange(tiny_course, tmp_path):
    course = tiny_course
    exchange = tmp_path / "exchange"
    exchange.mkdir()  # created once by an administrator; nbgrader's release makes it writable by all
    instructor = new_person(tmp_path / "instructor", {"Exchange.root": str(exchange)}, workdir=course)
    students = {name: new_person(tmp_path / "homes" / name, {"Exchange.root": str(exchange), "CourseDirectory.course_id": COURSE_ID,
                                                             "CourseDirectory.student_id": name})
                for name in ("alice", "bob")}
    source = read_notebook(notebook_path(course, "source", TINY))
    release = notebook_path(course, "release", TINY)
    hidden_tests = marked_lines(source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
    solution = marked_lines(source, "### BEGIN SOLUTION", "### END SOLUTION")
    assert hidden_tests and solution

    # The instructor records the assignment in the gradebook, releases it and imports the class list.
    instructor.nbgrader("generate_assignment", TINY, "--force")
    instructor.nbgrader("release_assignment", TINY)
    (course / "roster.csv").write_text("id,first_name,last_name\nalice,Alice,Archer\nbob,Bob,Baker\ncarol,Carol,Cook\n")
    instructor.nbgrader("db", "student", "import", "roster.csv")

    # Each student fetches the student notebook: no solution, no hidden test.
    for student in students.values():
        student.nbgrader("fetch_assignment", TINY)
        fetched = student.home / TINY / f"{TINY}.ipynb"
        assert fetched.read_bytes() == release.read_bytes()
        assert not [line for line in solution + hidden_tests if line in fetched.read_text()]

    # alice answers with the solution, bob with a wrong answer (and looks around).
    wrong = next(mutant for mutant in load_mutants(FIXTURES / TINY / "mutants.toml") if mutant.name == WRONG_ANSWER)
    solved = "\n".join(line for line in answer_cell(source, EXERCISE).source.splitlines()
                       if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    hand_in_work(students["alice"].home / TINY / f"{TINY}.ipynb", solved)
    probe = (f"import os\nprint('instructor files visible:', os.path.exists({str(course / 'source')!r}), "
             f"os.path.exists({str(exchange)!r}))")
    hand_in_work(students["bob"].home / TINY / f"{TINY}.ipynb", wrong.code, own_cells=(probe,))
    for student in students.values():
        student.nbgrader("submit", TINY)
    inbound = exchange / COURSE_ID / "inbound"
    assert sorted(path.name.split("+")[:2] for path in inbound.iterdir()) == [["alice", TINY], ["bob", TINY]]

    # The instructor collects the latest submission of each student who submitted.
    instructor.nbgrader("collect", TINY)
    assert sorted(path.name for path in (course / "submitted").iterdir()) == ["alice", "bob"]
    timestamps = {}
    for name in ("alice", "bob"):
        collected = course / "submitted" / name / TINY
        assert (collected / f"{TINY}.ipynb").read_bytes() == (students[name].home / TINY / f"{TINY}.ipynb").read_bytes()
        timestamps[name] = (collected / "timestamp.txt").read_text()
        assert [path.name.split("+")[2] for path in inbound.glob(f"{name}+*")] == [timestamps[name]]

    # Autograding runs every kernel in the sandbox: bob's own cell could see neither the hidden tests nor the exchange.
    instructor.nbgrader("autograde", TINY)
    graded = read_results(course, TINY, ["alice", "bob"], logs={})
    assert (graded["alice"].scores, graded["alice"].attention) == ({"add-numbers-visible": 1.0, "add-numbers-hidden": 2.0}, [])
    assert (graded["bob"].scores, graded["bob"].attention) == ({"add-numbers-visible": 1.0, "add-numbers-hidden": 0.0}, [])
    assert (course / "source").is_dir() and "instructor files visible: False False" in nbformat.writes(graded["bob"].notebook)

    # Feedback goes out through the exchange; each student fetches their own, filed under the time they submitted.
    instructor.nbgrader("generate_feedback", TINY)
    instructor.nbgrader("release_feedback", TINY)
    visible_test = answer_cell(read_notebook(release), "add-numbers-visible").source
    for name, score, message in [("alice", "3.0", "all visible checks passed"), ("bob", "1.0", wrong.message)]:
        students[name].nbgrader("fetch_feedback", TINY)
        feedback = list((students[name].home / TINY / "feedback").glob(f"*/{TINY}.html"))
        assert [path.parent.name for path in feedback] == [timestamps[name]]
        text = readable_text(feedback[0].read_text())
        assert f"{TINY} (Score: {score} / 4.0)" in text and message in text
        assert visible_test in text and not [line for line in hidden_tests if line in text]

    # The export for an LMS: every student on the class list, 0 for who never submitted.
    instructor.nbgrader("export", "--to", "lms-grades.csv")
    rows = {row["student_id"]: row for row in csv.DictReader((course / "lms-grades.csv").open())}
    assert {name: (row["last_name"], row["score"], row["max_score"]) for name, row in rows.items()} == {
        "alice": ("Archer", "3.0", "4.0"), "bob": ("Baker", "1.0", "4.0"), "carol": ("Cook", "0.0", "4.0")}
    assert rows["carol"]["timestamp"] == ""
    for name in ("alice", "bob"):
        assert datetime.fromisoformat(rows[name]["timestamp"]) == datetime.fromisoformat(timestamps[name].removesuffix(" UTC"))
