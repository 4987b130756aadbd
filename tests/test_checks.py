import sys

import numpy as np
import pytest

from course.checks import (CheckFailed, answer_digest, check, check_answer, check_close, check_does_not_call, check_equal,
                           check_labelled_axes, check_raises, check_succeeds, check_type, lines_of_own_code_run, shown)


class AlwaysEqual:
    """What a student might return to game ``==``-based tests."""

    def __eq__(self, other):
        return True

    def __float__(self):
        return 5.0


def test_failure_message_has_what_expected_got_and_hint():
    with pytest.raises(CheckFailed) as failure:
        check_equal(4, 5, "add(2, 3)", "return the sum")
    assert str(failure.value).splitlines() == ["✗ add(2, 3)", "  expected: 5", "  got:      4", "  hint:     return the sum"]


@pytest.mark.parametrize("cheat", [AlwaysEqual(), np.float64(5.0), "5", True])
def test_equal_compares_as_the_expected_type(cheat):
    with pytest.raises(CheckFailed, match="wrong type"):
        check_equal(cheat, 5, "a count")


def test_equal_accepts_numpy_integers_and_arrays_of_any_int_width():
    check_equal(np.int32(5), 5, "a count")
    check_equal(np.array([1, 0], dtype=np.int8), np.array([1, 0]), "labels")
    check_equal((2, 3), (2, 3), "a shape")
    with pytest.raises(CheckFailed, match="wrong shape"):
        check_equal(np.array([1, 0, 1]), np.array([1, 0]), "labels")


def test_arrays_of_objects_are_refused():
    with pytest.raises(CheckFailed, match="not an array of plain values"):
        check_equal([AlwaysEqual(), AlwaysEqual()], np.array([1, 0]), "labels")


def test_check_needs_a_real_true():
    check(True, "fine")
    check(np.bool_(True), "fine")
    for truthy in (1, "yes", [0], AlwaysEqual()):
        with pytest.raises(CheckFailed):
            check(truthy, "must be True")


def test_close_uses_tolerance_and_shape():
    check_close(0.1 + 0.2, 0.3, "sum")
    check_close([1.0, 2.0], np.array([1.0, 2.0 + 1e-9]), "vector")
    with pytest.raises(CheckFailed, match="expected: 0.3"):
        check_close(0.31, 0.3, "sum")
    with pytest.raises(CheckFailed, match="wrong shape"):
        check_close([1.0], [1.0, 2.0], "vector")


def test_raises_and_succeeds():
    error = check_raises(lambda: int("x"), ValueError, "parsing fails")
    assert isinstance(error, ValueError)
    with pytest.raises(CheckFailed, match="expected: 'a ValueError'"):
        check_raises(lambda: 1, ValueError, "parsing fails")
    assert check_succeeds(lambda: 7, "runs") == 7


def test_succeeds_hides_the_error_message_which_may_quote_hidden_inputs():
    def leaky():
        raise KeyError("secret-hidden-input")

    with pytest.raises(CheckFailed) as failure:
        check_succeeds(leaky, "predicts new rows", "use handle_unknown='ignore'")
    assert "KeyError" in str(failure.value)
    assert "secret-hidden-input" not in str(failure.value)


def test_type_failure_names_the_expected_types():
    with pytest.raises(CheckFailed, match="expected: 'a ndarray or dict'"):
        check_type([], (np.ndarray, dict), "result")


def test_long_values_are_shortened():
    assert len(shown(list(range(1000)))) <= 160


def test_does_not_call_catches_direct_and_indirect_library_use():
    from sklearn.metrics import precision_score

    def by_hand(truth, predicted):
        tp = sum(t == p == 1 for t, p in zip(truth, predicted))
        return tp / max(1, sum(predicted))

    def borrowed(truth, predicted):
        return (lambda: precision_score(truth, predicted))()

    forbidden = {"sklearn.metrics.precision_score": precision_score}
    assert check_does_not_call(lambda: by_hand([1, 0, 1], [1, 1, 1]), forbidden, "precision by hand") == 2 / 3
    with pytest.raises(CheckFailed, match=r"count TP and FP \(your code called sklearn\.metrics\.precision_score\)"):
        check_does_not_call(lambda: borrowed([1, 0, 1], [1, 1, 1]), forbidden, "precision by hand", "count TP and FP")
    with pytest.raises(CheckFailed, match="called builtin sorted"):
        check_does_not_call(lambda: sorted([3, 1]), {"builtin sorted": sorted}, "no sorting")


def test_does_not_call_sees_a_decorated_function_whose_wrapped_was_pointed_elsewhere():
    import functools

    def implementation(values):
        return sorted(values)

    @functools.wraps(implementation)
    def library_function(values):
        return implementation(values)

    library_function.__wrapped__ = lambda values: values  # what a submission could do to hide its call
    with pytest.raises(CheckFailed, match="your code called library_function"):
        check_does_not_call(lambda: library_function([2, 1]), {"library_function": library_function}, "by hand")


def test_check_answer_accepts_the_answer_in_any_case_and_spacing_and_hides_it():
    digest = answer_digest("b")
    check_answer(" B ", digest, "question 1")
    check_answer(42, answer_digest(42), "question 2")
    with pytest.raises(CheckFailed) as failure:
        check_answer("c", digest, "question 1", "reread the section on drift")
    assert "expected" not in str(failure.value) and "reread the section on drift" in str(failure.value)
    with pytest.raises(CheckFailed, match="wrong type"):
        check_answer(["b"], digest, "question 1")


def test_check_labelled_axes_names_the_missing_part():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_title("Loss per epoch")
    ax.set_xlabel("epoch")
    with pytest.raises(CheckFailed, match="y-axis label is missing"):
        check_labelled_axes(ax, "the loss curve")
    ax.set_ylabel("loss")
    check_labelled_axes(ax, "the loss curve")
    with pytest.raises(CheckFailed, match="a matplotlib Axes"):
        check_labelled_axes(fig, "the loss curve")
    plt.close(fig)


def test_read_only_arrays_from_pandas_into_torch_are_silent():
    import subprocess
    import sys

    script = ("import course.checks, numpy as np, pandas as pd, torch\n"
              "frame = pd.DataFrame({'a': [1.0, 2.0], 'b': [3.0, 4.0]})\n"
              "assert not np.asarray(frame).flags.writeable\n"
              "torch.from_numpy(np.asarray(frame)); torch.as_tensor(np.asarray(frame['a']))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_lines_of_own_code_run_counts_a_loop_not_numpy():
    points = np.arange(40.0).reshape(20, 2)

    def by_loops():
        return [[float(np.hypot(*(a - b))) for b in points] for a in points]

    looped, looped_lines = lines_of_own_code_run(by_loops)
    broadcast, broadcast_lines = lines_of_own_code_run(lambda: np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)))
    assert looped_lines >= 20 * 20 and broadcast_lines <= 2
    assert np.allclose(looped, broadcast) and sys.gettrace() is None


def test_does_not_call_tells_apart_functions_that_share_a_decorators_code():
    from sklearn.dummy import DummyClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import accuracy_score

    assert accuracy_score.__code__ is permutation_importance.__code__  # both are validate_params' wrapper
    forbidden = {"sklearn.inspection.permutation_importance": permutation_importance}
    assert check_does_not_call(lambda: accuracy_score([1, 0], [1, 1]), forbidden, "importance by hand") == 0.5
    with pytest.raises(CheckFailed, match="your code called sklearn.inspection.permutation_importance"):
        model = DummyClassifier().fit([[0], [1]], [0, 1])
        check_does_not_call(lambda: permutation_importance(model, [[0], [1]], [0, 1], n_repeats=1), forbidden, "importance by hand")
