"""Checks that the notebooks' test cells call.

Each check is silent when it passes and raises ``CheckFailed`` (an AssertionError, so
nbgrader scores the cell 0) with a message in three parts: what was checked, what was
expected and what was got, and a hint. Messages show results, never the inputs a hidden
test used, and long values are shortened.

Comparisons convert the student's value to a plain Python or NumPy value first, so an
object whose ``__eq__`` always answers True does not pass.
"""
from __future__ import annotations

import hashlib
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pandas.errors import PandasChangeWarning

MAX_SHOWN = 160

# Notices that a library will change some day reach stderr, which nbgrader scores as a failed
# test, and they are not the student's mistake: the notebooks' setup cells import this module,
# so they are silenced for the whole notebook.
warnings.filterwarnings("ignore", category=PandasChangeWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
# pandas 3 hands out read-only NumPy views (np.asarray(frame), series.to_numpy()), and
# torch.from_numpy / torch.as_tensor warn that they cannot protect such an array: a correct
# answer that follows the advice "convert with np.asarray, then make a tensor" is no mistake.
warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)


class CheckFailed(AssertionError):
    """A self-check or hidden test found a wrong answer; the message says what to fix."""


def shown(value: Any) -> str:
    """A short, readable rendering of ``value`` for a failure message."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, threshold=8, edgeitems=3, precision=4)
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def fail(what: str, expected: Any = None, got: Any = None, hint: str = "", *, show_values: bool = True) -> None:
    """Raise CheckFailed with the standard message layout."""
    __tracebackhide__ = True
    lines = [f"✗ {what}"]
    if show_values:
        lines += [f"  expected: {shown(expected)}", f"  got:      {shown(got)}"]
    if hint:
        lines.append(f"  hint:     {hint}")
    raise CheckFailed("\n".join(lines))


def check(condition: bool, what: str, hint: str = "") -> None:
    """Fail with ``what`` and ``hint`` unless ``condition`` is exactly True (not merely truthy)."""
    __tracebackhide__ = True
    if condition is not True and not (isinstance(condition, np.bool_) and bool(condition)):
        fail(what, hint=hint, show_values=False)


def check_type(got: Any, expected_type: type | tuple[type, ...], what: str, hint: str = "") -> None:
    """Fail unless ``got`` is an instance of ``expected_type``."""
    __tracebackhide__ = True
    if not isinstance(got, expected_type):
        names = " or ".join(t.__name__ for t in (expected_type if isinstance(expected_type, tuple) else (expected_type,)))
        fail(what, f"a {names}", f"a {type(got).__name__}", hint)


def check_equal(got: Any, expected: Any, what: str, hint: str = "") -> None:
    """Fail unless ``got`` equals ``expected``, compared as the expected value's own type.

    ``expected`` is a bool, int, str, tuple/list of those, or a NumPy array; ``got`` must be
    of a matching kind (a NumPy integer counts as an int).
    """
    __tracebackhide__ = True
    if isinstance(expected, np.ndarray):
        got_array = _as_array(got, what, hint)
        if got_array.shape != expected.shape:
            fail(f"{what}: wrong shape", expected.shape, got_array.shape, hint)
        if not np.array_equal(got_array, expected):
            fail(what, expected, got_array, hint)
        return
    plain = _as_plain(got, expected, what, hint)
    if plain != expected or type(plain) is not type(expected):
        fail(what, expected, got, hint)


def check_close(got: Any, expected: Any, what: str, hint: str = "", *, tol: float = 1e-6) -> None:
    """Fail unless ``got`` is within ``tol`` (absolute or relative) of ``expected``.

    Works on numbers and on array-likes of numbers; NaN only matches NaN.
    """
    __tracebackhide__ = True
    expected_array = np.asarray(expected, dtype=float)
    got_array = _as_array(got, what, hint).astype(float, copy=False) if not _is_number(got) else np.asarray(float(got))
    if got_array.shape != expected_array.shape:
        fail(f"{what}: wrong shape", expected_array.shape, got_array.shape, hint)
    if not np.allclose(got_array, expected_array, rtol=tol, atol=tol, equal_nan=True):
        fail(what, expected, got if _is_number(got) else got_array, hint)


def check_raises(action: Callable[[], Any], error: type[BaseException], what: str, hint: str = "") -> BaseException:
    """Fail unless calling ``action()`` raises ``error``; returns the raised exception."""
    __tracebackhide__ = True
    try:
        action()
    except error as raised:
        return raised
    except Exception as other:  # noqa: BLE001 - any other error is the wrong answer, reported below
        # Only the type: the message of the student's error could quote a hidden test's input.
        fail(what, f"a {error.__name__}", f"a {type(other).__name__}", hint)
    fail(what, f"a {error.__name__}", "no error", hint)


def check_succeeds(action: Callable[[], Any], what: str, hint: str = "") -> Any:
    """Call ``action()`` and return its result; fail with ``what`` and ``hint`` if it raises.

    Only the error's type is shown: its message could quote a hidden test's input.
    """
    __tracebackhide__ = True
    try:
        return action()
    except Exception as error:  # noqa: BLE001 - any error is the wrong answer being reported
        fail(what, hint=f"{hint} (your code raised {type(error).__name__})".strip(), show_values=False)


def check_does_not_call(action: Callable[[], Any], forbidden: dict[str, Callable], what: str, hint: str = "") -> Any:
    """Call ``action()`` and return its result; fail if it called any of ``forbidden`` (name -> function), even indirectly.

    For exercises that ask the student to write something a library already does: the test
    calls the student's function through this check, with the library's functions forbidden.
    """
    __tracebackhide__ = True
    python_functions: dict[Any, list[tuple[str, Callable]]] = {}
    other_functions = {}
    for name, function in forbidden.items():
        # Every function of a decorator chain counts (the wrapper and each __wrapped__): a __wrapped__
        # pointing somewhere else cannot hide the function that is really called.
        chain = [function]
        while hasattr(chain[-1], "__wrapped__") and len(chain) < 100:
            chain.append(chain[-1].__wrapped__)
        with_code = [item for item in chain if getattr(item, "__code__", None) is not None]
        for item in with_code:
            python_functions.setdefault(item.__code__, []).append((name, item))
        if not with_code:
            other_functions[id(function)] = name
    called: set[str] = set()

    def watch(frame, event, arg):
        if event == "call" and frame.f_code in python_functions:
            called.update(name for name, function in python_functions[frame.f_code] if _runs(frame, function))
        elif event == "c_call" and id(arg) in other_functions:
            called.add(other_functions[id(arg)])

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        result = action()
    finally:
        sys.setprofile(previous)
    if called:
        fail(what, hint=f"{hint} (your code called {', '.join(sorted(called))})".strip(), show_values=False)
    return result


def _runs(frame, function: Callable) -> bool:
    """Whether ``frame`` runs ``function`` itself, not another function made from the same code.

    A decorator's wrapper shares its code with every function it decorates (scikit-learn's
    ``validate_params`` wraps hundreds): a frame of that code runs ``function`` only when the
    frame's closure holds what ``function``'s closure holds.
    """
    names = frame.f_code.co_freevars
    if not names:
        return True
    frame_locals = frame.f_locals
    for name, cell in zip(names, function.__closure__ or ()):
        try:
            expected = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if frame_locals.get(name, expected) is not expected:
            return False
    return True


def lines_of_own_code_run(action: Callable[[], Any]) -> tuple[Any, int]:
    """Call ``action()``; return its result and how many lines of the notebook's own Python ran meanwhile.

    For exercises that ask for vectorised code: a loop over every pair of points runs
    thousands of lines of the student's code, NumPy's broadcasting none. Lines in the Python
    installation, the environment and the course package do not count (a library may loop).
    """
    library = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).parent)})
    lines = 0

    def count_line(frame, event, arg):
        nonlocal lines
        if event == "line":
            lines += 1
        return count_line

    def trace_own_code(frame, event, arg):
        file = frame.f_code.co_filename
        if file.startswith(library) or "site-packages" in file or file.startswith("<frozen"):
            return None
        return count_line

    previous = sys.gettrace()
    sys.settrace(trace_own_code)
    try:
        result = action()
    finally:
        sys.settrace(previous)
    return result, lines


def answer_digest(answer: Any) -> str:
    """The digest ``check_answer`` compares with: a short SHA-256 of the answer, trimmed and lower-cased.

    Authors compute it once (``answer_digest("b")``) and write it into the check, so a notebook
    can check a quiz answer without showing it.
    """
    text = " ".join(str(answer).split()).lower()
    return hashlib.sha256(f"ai-engineering-course:{text}".encode()).hexdigest()[:16]


def check_answer(got: Any, digest: str, what: str, hint: str = "") -> None:
    """Fail unless ``got`` is the answer whose ``answer_digest`` is ``digest`` (for "check your understanding" questions)."""
    __tracebackhide__ = True
    if not isinstance(got, (str, int)) or isinstance(got, bool):
        fail(f"{what}: wrong type", "a letter or a number", f"a {type(got).__name__}", hint)
    if answer_digest(got) != digest:
        fail(what, hint=hint, show_values=False)


def check_labelled_axes(ax: Any, what: str) -> None:
    """Fail unless ``ax`` is a matplotlib Axes with a title and both axis labels (a figure a reader can read)."""
    __tracebackhide__ = True
    from matplotlib.axes import Axes

    check_type(ax, Axes, f"{what}: a matplotlib Axes", "fig, ax = plt.subplots(), then draw on ax and return it")
    title = ax.get_title() or (ax.figure.get_suptitle() if ax.figure is not None else "")
    for part, text, hint in [("title", title, "ax.set_title(...)"), ("x-axis label", ax.get_xlabel(), "ax.set_xlabel(...)"),
                             ("y-axis label", ax.get_ylabel(), "ax.set_ylabel(...)")]:
        if not text.strip():
            fail(f"{what}: the {part} is missing", hint=f"a figure needs a {part}: {hint}", show_values=False)


def passed(name: str) -> None:
    """Print the line a student sees when every visible check of ``name`` passed."""
    print(f"✓ {name}: all visible checks passed")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _as_plain(got: Any, expected: Any, what: str, hint: str) -> Any:
    __tracebackhide__ = True
    if isinstance(expected, bool):
        if isinstance(got, (bool, np.bool_)):
            return bool(got)
    elif isinstance(expected, int):
        if isinstance(got, (int, np.integer)) and not isinstance(got, (bool, np.bool_)):
            return int(got)
    elif isinstance(expected, float):
        if _is_number(got):
            value = float(got)
            return expected if math.isclose(value, expected) else value
    elif isinstance(expected, str):
        if type(got) is str:
            return str.__str__(got)
    elif isinstance(expected, (tuple, list)):
        if isinstance(got, (tuple, list)) and len(got) == len(expected):
            return type(expected)(_as_plain(g, e, what, hint) for g, e in zip(got, expected))
        if isinstance(got, (tuple, list)):
            return type(expected)(got)
    else:
        raise TypeError(f"check_equal cannot compare with a {type(expected).__name__}; use check_close or check")
    fail(f"{what}: wrong type", f"a {type(expected).__name__}", f"a {type(got).__name__}", hint)


def _as_array(got: Any, what: str, hint: str) -> np.ndarray:
    __tracebackhide__ = True
    try:
        array = np.array(got, copy=True)
    except Exception as error:  # noqa: BLE001 - any conversion failure is a wrong answer
        fail(f"{what}: not an array of values", "an array-like", f"{type(got).__name__} ({error})", hint)
    if array.dtype == object:
        fail(f"{what}: not an array of plain values", "numbers, booleans or strings", f"{type(got).__name__} of objects", hint)
    return array
