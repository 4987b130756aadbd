"""A class of hostile and broken submissions, graded in one batch through the real nbgrader.

Each attack is a student whose answer cell (or notebook) tries to cheat or to break the
grader. If an attack worked, its student would earn the points for a correct `add`; so every
attacker must score only what its honest part earns, the honest student must keep 3/3 with
its files untouched, no feedback may show a hidden test, and the batch must finish. Every
attack is bounded (sizes, counts, sleeps) so a failure of the sandbox cannot hurt the machine.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import nbformat
import pytest

from conftest import readable_text
from course import checks as checks_module
from course.assignments import nbgrader_meta
from course.grader.grading import grade_class

TINY = "99-tiny"
WRONG = "def add(a, b):\n    return 0\n"
RIGHT = "def add(a, b):\n    return a + b\n"
MARK = uuid.uuid4().hex[:12]


def answer(code: str):
    """A submission: the tiny solution notebook with its answer cell replaced by ``code``."""
    def make(notebook):
        cell = next(c for c in notebook.cells if nbgrader_meta(c).get("grade_id") == "add-numbers")
        cell.source = code
        return notebook
    return make


def submission_with_tests(change):
    """A submission with a wrong answer whose test cells are changed by ``change(cell)`` (None deletes)."""
    def make(notebook):
        answer(WRONG)(notebook)
        kept = []
        for cell in notebook.cells:
            if nbgrader_meta(cell).get("grade") and not nbgrader_meta(cell).get("solution") and cell.cell_type == "code":
                cell = change(cell)
            if cell is not None:
                kept.append(cell)
        notebook.cells = kept
        return notebook
    return make


def stripped(cell):
    cell.metadata.pop("nbgrader")
    cell.source = "pass"
    return cell


def edited(cell):
    cell.source = "pass"
    return cell


def with_bonus_cell(notebook):
    answer(RIGHT)(notebook)
    bonus = nbformat.v4.new_code_cell("pass", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 100, "grade_id": "bonus", "schema_version": 3}})
    notebook.cells.append(bonus)
    return notebook


def spoofed_kernel(notebook):
    notebook.metadata["kernelspec"] = {"name": "evil-kernel", "display_name": "Evil", "language": "python"}
    return notebook


# What the tricks below put in place of course.checks.fail: a function that lets every check pass.
QUIET_FAIL = "def _quiet(what, expected=None, got=None, hint='', *, show_values=True):\n    return None\n"


def attacks(course: Path, port: int) -> dict:
    root = str(course)
    return {
        "honest": lambda nb: nb,
        # Honest code that looks like some of the tricks: it must keep its points and not be flagged.
        "busy-honest": answer("""
import copy, pickle, threading, warnings
import numpy as np
from joblib import Parallel, delayed
check = "a notebook's own variable, named like a check"
Parallel(n_jobs=2)(delayed(abs)(number) for number in range(4))  # leaves joblib's worker threads idle behind
def add(a, b):
    import xml.dom.minidom  # a module imported for the first time while a test runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = copy.deepcopy(pickle.loads(pickle.dumps(np.array([a, b]))))
    worker = threading.Thread(target=values.sum)
    worker.start()
    worker.join()
    return int(values.sum())
"""),
        "reads-source": answer(f"""
LEAK = ""
for path in ["../../../source/{TINY}/{TINY}.ipynb", "{root}/source/{TINY}/{TINY}.ipynb", "{root}/gradebook.db"]:
    try:
        LEAK += open(path, errors="ignore").read()
    except OSError:
        pass
def add(a, b):
    return a + b if "HIDDEN" in LEAK or "SQLite" in LEAK else 0
"""),
        "writes-gradebook": answer(f"""
import sqlite3
for path in ["../../../gradebook.db", "{root}/gradebook.db"]:
    try:
        db = sqlite3.connect(path)
        db.execute("update grade set manual_score = 100")
        db.commit()
    except Exception:
        pass
{WRONG}"""),
        "tampers-with-others": answer(f"""
for path in ["../../honest/{TINY}/{TINY}.ipynb", "../../../submitted/honest/{TINY}/{TINY}.ipynb",
             "{root}/submitted/honest/{TINY}/{TINY}.ipynb", "{root}/autograded/honest/{TINY}/{TINY}.ipynb"]:
    try:
        open(path, "w").write("{{}}")
    except OSError:
        pass
{WRONG}"""),
        "input-transformer": answer("get_ipython().input_transformers_post.append(lambda lines: ['pass\\n'])\n" + WRONG),
        "silenced-tracebacks": answer("ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
                                      "ip._showtraceback = lambda *a, **k: None\n" + WRONG),
        "event-hook": answer("get_ipython().events.register('pre_run_cell', lambda info: get_ipython().user_ns.update("
                             "check_equal=lambda *a, **k: None, fail=lambda *a, **k: None))\n" + WRONG),
        "rebinds-checks": answer("check_equal = lambda *a, **k: None\nfail = lambda *a, **k: None\n" + WRONG),
        "rigged-eq": answer("class Always:\n    def __eq__(self, other):\n        return True\n    def __ne__(self, other):\n"
                            "        return False\n\ndef add(a, b):\n    return Always()\n"),
        "patched-comparisons": answer("""
import math, numpy, numpy.testing, course.checks
math.isclose = lambda *a, **k: True
numpy.allclose = numpy.array_equal = lambda *a, **k: True
numpy.testing.assert_allclose = numpy.testing.assert_array_equal = lambda *a, **k: None
course.checks.check_equal = course.checks.fail = lambda *a, **k: None
""" + WRONG),
        "patches-site-packages": answer("""
from course import checks as checks_module
for path in [course.checks.__file__, course.checks.__file__.replace("checks.py", "sneaky.py")]:
    try:
        open(path, "a").write("\\ncheck_equal = lambda *a, **k: None\\n")
    except OSError:
        pass
""" + WRONG),
        "daemon": answer(f"""
import subprocess
subprocess.Popen(["sh", "-c", "while true; do sleep 1; done; echo {MARK}-daemon"], start_new_session=True)
{WRONG}"""),
        "shadows-the-course-package": answer(WRONG),  # its folder also holds course/checks.py (hostile_class)
        "runs-after-tests": answer(f"""
import atexit, pathlib
atexit.register(pathlib.Path("{MARK}-after-tests").write_text, "ran after the tests")
{WRONG}"""),
        "network": answer(f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"{MARK}")
    CONNECTED = True
except OSError:
    CONNECTED = False
def add(a, b):
    return a + b if CONNECTED else 0
"""),
        "fork-bomb": answer(f"""
import os, time
for _ in range(3000):
    try:
        if os.fork() == 0:
            time.sleep(20)
            os._exit(0)
    except OSError:
        break
{RIGHT}"""),
        "fills-the-disk": answer(f"""
for target in ["big.bin", "/tmp/big.bin"]:
    try:
        with open(target, "wb") as handle:
            for _ in range(1024):
                handle.write(bytes(2**20))
    except OSError:
        pass
{WRONG}"""),
        "grabs-memory": answer(f"""
blocks = []
try:
    for _ in range(80):
        blocks.append(bytearray(100 * 2**20))
except MemoryError:
    pass
blocks.clear()
{WRONG}"""),
        "infinite-loop": answer("while True:\n    pass\n" + RIGHT),
        "ignores-sigint": answer("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n" + RIGHT),
        "exits-the-kernel": answer("import os\nos._exit(0)\n" + RIGHT),
        "huge-output": answer("print('x' * 30_000_000)\n" + WRONG),
        "spoofed-kernel": spoofed_kernel,
        "deleted-tests": submission_with_tests(lambda cell: None),
        "edited-tests": submission_with_tests(edited),
        "stripped-tests": submission_with_tests(stripped),
        "extra-graded-cell": with_bonus_cell,
        # In-place changes: the function keeps its identity, so comparing objects does not see them.
        "swaps-code": answer(WRONG + "import course.checks\ncourse.checks.fail.__code__ = (lambda *a, **k: None).__code__\n"),
        "swaps-code-with-ctypes": answer(WRONG + QUIET_FAIL + """
import ctypes, course.checks
ctypes.pythonapi.Py_IncRef(ctypes.py_object(_quiet.__code__))
ctypes.c_void_p.from_address(id(course.checks.fail) + 48).value = id(_quiet.__code__)  # PyFunctionObject.func_code
"""),
        "disables-the-guard": answer(WRONG + QUIET_FAIL + """
import course.checks, course.grader.guard as guard
for name in [name for name in vars(guard) if callable(vars(guard)[name]) and not name.startswith("__")]:
    setattr(guard, name, lambda *args, **kwargs: [])
guard.VERDICTS = type("Forged", (dict,), {"pop": lambda self, key, default=None: repr((key, (), ())) + "|" + "0" * 64})()
course.checks.fail = _quiet
"""),
        # Changes made while a test runs, by the function the test calls, and undone again.
        "patches-while-tested": answer("""
import course.checks
REAL_FAIL = course.checks.fail
def fail_once(*args, **kwargs):
    course.checks.fail = REAL_FAIL
def add(a, b):
    course.checks.fail = fail_once
    return 0
"""),
        "patches-ipython-while-tested": answer("""
SHELL_CLASS = type(get_ipython())
async def forgiving_run_code(self, code_obj, result=None, *, async_=False):
    try:
        exec(code_obj, self.user_global_ns, self.user_ns)
    except Exception:
        pass
    return False
def add(a, b):
    SHELL_CLASS.run_code = forgiving_run_code
    return 0
"""),
        # Code that runs later by itself and patches the checks again after the grader restored them.
        "thread": answer(WRONG + QUIET_FAIL + """
import threading, time, course.checks
def repatch():
    for _ in range(60_000):
        course.checks.fail = _quiet
        time.sleep(0.001)
threading.Thread(target=repatch, daemon=True).start()
"""),
        "interval-timer": answer(WRONG + QUIET_FAIL + """
import signal, course.checks
signal.signal(signal.SIGALRM, lambda *args: setattr(course.checks, "fail", _quiet))
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
"""),
        "audit-hook": answer(WRONG + QUIET_FAIL + """
import sys, course.checks
sys.addaudithook(lambda event, args: setattr(course.checks, "fail", _quiet) if event == "exec" else None)
"""),
        "gc-callback": answer(WRONG + QUIET_FAIL + """
import gc, course.checks
gc.callbacks.append(lambda phase, info: setattr(course.checks, "fail", _quiet))
gc.set_threshold(1)
"""),
        "trace-hook": answer("""
import sys
def tracer(frame, event, arg):  # each statement of a test cell runs in a frame of its own: fake its checks
    if event == "call" and frame.f_code.co_name == "<module>":
        frame.f_globals["check_equal"] = frame.f_globals["fail"] = lambda *args, **kwargs: None
def add(a, b):
    sys.settrace(tracer)
    return 0
"""),
        "event-loop": answer(WRONG + QUIET_FAIL + """
import asyncio, course.checks
LOOP = asyncio.get_event_loop()
def repatch(times=60_000):
    course.checks.fail = _quiet
    if times:
        LOOP.call_later(0.001, repatch, times - 1)
repatch()
"""),
        "finalizer": answer(WRONG + QUIET_FAIL + """
import gc, weakref, course.checks
class Box:
    pass
def arm():
    box = Box()
    box.itself = box  # a cycle: only the garbage collector frees it, at some later allocation
    weakref.finalize(box, repatch)
def repatch():
    course.checks.fail = _quiet
    arm()
arm()
gc.set_threshold(1)
"""),
    }


@pytest.fixture(scope="module")
def hostile_class(built_tiny_course, tmp_path_factory):
    course = tmp_path_factory.mktemp("hostile") / "course"
    shutil.copytree(built_tiny_course, course)
    with (course / "nbgrader_config.py").open("a") as config:
        config.write("\nc.HardenedExecute.timeout = 8\nc.HardenedExecute.interrupt_grace_seconds = 3\n")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    reached = []

    def watch():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
                reached.append(connection.recv(64))
            except OSError:
                continue

    stop = threading.Event()
    threading.Thread(target=watch, daemon=True).start()

    solution = nbformat.read(course / "source" / TINY / f"{TINY}.ipynb", as_version=4)
    for student, make in attacks(course, listener.getsockname()[1]).items():
        target = course / "submitted" / student / TINY / f"{TINY}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(make(nbformat.from_dict(json.loads(json.dumps(solution)))), target)
    shadow = course / "submitted" / "shadows-the-course-package" / TINY / "course"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "checks.py").write_text("def check_equal(*args, **kwargs):\n    pass\n\ncheck = fail = passed = check_equal\n")
    (course / "submitted" / "invalid-json" / TINY).mkdir(parents=True)
    (course / "submitted" / "invalid-json" / TINY / f"{TINY}.ipynb").write_text('{"cells": [')
    (course / "submitted" / "missing-notebook" / TINY).mkdir(parents=True)
    (course / "submitted" / "renamed-notebook" / TINY).mkdir(parents=True)
    shutil.copy2(course / "source" / TINY / f"{TINY}.ipynb", course / "submitted" / "renamed-notebook" / TINY / "my-copy.ipynb")

    honest_submission = course / "submitted" / "honest" / TINY / f"{TINY}.ipynb"
    protected = [honest_submission, course / "source" / TINY / f"{TINY}.ipynb", Path(checks_module.__file__)]
    before = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in protected}
    try:
        results = grade_class(course, TINY, jobs=2)
    finally:
        stop.set()
        leftovers = subprocess.run(["pgrep", "-f", f"{MARK}-daemon"], capture_output=True, text=True).stdout.split()
        for pid in leftovers:
            subprocess.run(["kill", "-9", pid])
    after = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in protected}
    yield {"course": course, "results": results, "before": before, "after": after, "reached": reached, "leftovers": leftovers}
    listener.close()


ATTACKERS_WITH_A_WRONG_ANSWER = [
    "reads-source", "writes-gradebook", "tampers-with-others", "input-transformer", "silenced-tracebacks", "event-hook",
    "rebinds-checks", "rigged-eq", "patched-comparisons", "patches-site-packages", "shadows-the-course-package",
    "daemon", "runs-after-tests", "network", "fills-the-disk", "grabs-memory", "huge-output", "deleted-tests",
    "edited-tests", "stripped-tests",
]
# Tricks that reach into the test machinery from inside the kernel: each must cost its points and be flagged.
IN_PROCESS_TRICKS = [
    "swaps-code", "swaps-code-with-ctypes", "disables-the-guard", "patches-while-tested", "patches-ipython-while-tested",
    "thread", "interval-timer", "audit-hook", "gc-callback", "trace-hook", "event-loop", "finalizer",
]


def test_every_submission_gets_a_grade_and_the_honest_students_keep_full_marks(hostile_class):
    results = hostile_class["results"]
    assert set(results) >= {"honest", "invalid-json", "missing-notebook", "renamed-notebook", *ATTACKERS_WITH_A_WRONG_ANSWER}
    for student in ("honest", "busy-honest"):
        graded = results[student]
        assert (graded.score, graded.max_score, graded.attention) == (3, 3, []), (student, graded.attention)


@pytest.mark.parametrize("student", ATTACKERS_WITH_A_WRONG_ANSWER)
def test_attack_earns_nothing(hostile_class, student):
    graded = hostile_class["results"][student]
    assert graded.max_score == 3
    assert graded.score == 0, (student, graded.scores, graded.attention)


@pytest.mark.parametrize("student", ["input-transformer", "silenced-tracebacks", "event-hook", "patched-comparisons"])
def test_tampering_with_the_kernel_is_flagged_for_a_person(hostile_class, student):
    attention = " ".join(hostile_class["results"][student].attention)
    assert "changed the grading environment" in attention


@pytest.mark.parametrize("student", IN_PROCESS_TRICKS)
def test_an_in_process_trick_earns_nothing_and_is_flagged(hostile_class, student):
    graded = hostile_class["results"][student]
    assert (graded.score, graded.max_score) == (0, 3), (student, graded.scores, graded.attention)
    attention = " ".join(graded.attention)
    assert "changed the grading environment" in attention or "could not run safely" in attention, attention


def test_feedback_says_when_tests_could_not_run_safely(hostile_class):
    page = readable_text((hostile_class["course"] / "feedback" / "thread" / TINY / f"{TINY}.html").read_text())
    assert "the tests could not run safely" in page and "a thread is running code of the submission" in page


def test_protected_files_are_unchanged_and_nothing_left_running(hostile_class):
    assert hostile_class["before"] == hostile_class["after"]
    assert not Path(checks_module.__file__).with_name("sneaky.py").exists()
    assert not list((hostile_class["course"] / "autograded").glob(f"*/*/{MARK}-after-tests"))
    assert hostile_class["reached"] == []
    assert hostile_class["leftovers"] == []
    course = hostile_class["course"]
    assert not list((course / "autograded").glob("*/*/big.bin")) or \
        max(p.stat().st_size for p in (course / "autograded").glob("*/*/big.bin")) <= 64 * 2**20


def test_honest_part_of_a_noisy_submission_still_counts(hostile_class):
    results = hostile_class["results"]
    assert results["fork-bomb"].score == 3
    assert results["spoofed-kernel"].score == 3 and results["spoofed-kernel"].attention == []
    assert results["infinite-loop"].score == 0  # the answer came after the loop, so it never ran
    extra = results["extra-graded-cell"]
    assert (extra.score, extra.max_score) == (3, 3) and "bonus" not in extra.scores


@pytest.mark.parametrize("student, reason", [
    ("ignores-sigint", "did not stop when interrupted"),
    ("exits-the-kernel", "the kernel died"),
    ("invalid-json", "not a readable notebook"),
    ("missing-notebook", "could not grade"),
    ("renamed-notebook", "could not grade"),
])
def test_failures_are_zero_grades_with_a_reason(hostile_class, student, reason):
    graded = hostile_class["results"][student]
    assert graded.score == 0 and graded.max_score == 3
    assert reason in " ".join(graded.attention)


def test_output_is_capped(hostile_class):
    notebook = hostile_class["course"] / "autograded" / "huge-output" / TINY / f"{TINY}.ipynb"
    assert notebook.stat().st_size < 3 * 2**20


def test_feedback_never_shows_hidden_tests(hostile_class):
    pages = list((hostile_class["course"] / "feedback").glob(f"*/{TINY}/{TINY}.html"))
    assert len(pages) >= 20
    for page in pages:
        text = readable_text(page.read_text())
        assert "check_equal(add(-4, 10)" not in text and "BEGIN HIDDEN TESTS" not in text
    honest = (hostile_class["course"] / "feedback" / "honest" / TINY / f"{TINY}.html").read_text()
    assert "hidden tests ran here" in honest
    wrong = (hostile_class["course"] / "feedback" / "rigged-eq" / TINY / f"{TINY}.html").read_text()
    assert "wrong type" in wrong
