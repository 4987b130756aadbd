"""Item analysis: difficulty and corrected item-total correlation, checked against numbers worked out by hand."""
from __future__ import annotations

import math

import pytest

from course.grader.grading import GradedSubmission
from course.itemanalysis import FLAG_SENTENCES, ItemStatistics, flagged, flagged_by_exercise, item_analysis, item_statistics

TINY = "99-tiny"
POINTS = {"t1": 1.0, "t2": 2.0, "t3": 1.0}
GROUPS = [("e1", ["t1", "t2"]), ("e2", ["t3"])]


def student(name: str, t1: float, t2: float, t3: float, attention: list[str] | None = None) -> GradedSubmission:
    return GradedSubmission(name, {"t1": t1, "t2": t2, "t3": t3}, dict(POINTS), attention=attention or [])


def test_difficulty_and_discrimination_are_the_numbers_worked_out_by_hand():
    # Five students; exercise e1 has tests t1 (1 point) and t2 (2 points), exercise e2 the one test t3 (1 point).
    #        t1 t2 t3  total
    #   A     1  2  1   4
    #   B     1  2  0   3
    #   C     1  0  1   2
    #   D     0  0  1   1
    #   E     1  0  0   1
    # Difficulty: t1 4/5; t2 4/10; t3 3/5; e1 8/15; e2 = t3.
    # t2 against the rest (t1 + t3 = 2,1,2,1,1): deviations 1.2,1.2,-.8,-.8,-.8 and .6,-.4,.6,-.4,-.4;
    #   covariance sum .4, squares 4.8 and 1.2: r = .4 / sqrt(5.76) = 1/6.
    # t1 against the rest (t2 + t3 = 3,2,1,1,0): sums .4, .8 and 5.2: r = .4 / sqrt(4.16).
    # t3 against the rest (t1 + t2 = 3,3,1,0,1): sums -.8, 1.2 and 7.2: r = -.8 / sqrt(8.64) (negative: it flags itself).
    # e1 against the rest (t3) is the same pair of columns as t3 against its rest.
    # F's file was unreadable (needs a person): left out, or every number above would change.
    results = {name: student(name, *scores) for name, scores in
               {"A": (1, 2, 1), "B": (1, 2, 0), "C": (1, 0, 1), "D": (0, 0, 1), "E": (1, 0, 0)}.items()}
    results["F"] = student("F", 0, 0, 0, attention=["the submitted file is not a readable notebook"])
    items = {item.name: item for item in item_statistics(results, GROUPS)}

    assert list(items) == ["e1", "t1", "t2", "e2", "t3"]
    assert [items[n].kind for n in items] == ["exercise", "test", "test", "exercise", "test"]
    assert {n: item.points for n, item in items.items()} == {"e1": 3, "t1": 1, "t2": 2, "e2": 1, "t3": 1}
    assert all(item.students == 5 for item in items.values())
    assert {n: item.difficulty for n, item in items.items()} == pytest.approx(
        {"e1": 8 / 15, "t1": 0.8, "t2": 0.4, "e2": 0.6, "t3": 0.6})
    assert items["t2"].discrimination == pytest.approx(1 / 6)
    assert items["t1"].discrimination == pytest.approx(0.4 / math.sqrt(4.16))
    assert items["t3"].discrimination == items["e2"].discrimination == pytest.approx(-0.8 / math.sqrt(8.64))
    assert items["e1"].discrimination == pytest.approx(-0.8 / math.sqrt(8.64))
    # t3 flags itself too, but it is all of e2: said once.
    assert items["t3"].flags == ["negative"]
    assert [(item.name, item.flags) for item in flagged(list(items.values()))] == [("e1", ["negative"]), ("e2", ["negative"])]
    assert {e: [i.name for i in group] for e, group in flagged_by_exercise(list(items.values())).items()} == {"e1": ["e1"], "e2": ["e2"]}


def test_items_everyone_or_nobody_earns_flag_themselves_and_say_why():
    def item(difficulty, discrimination):
        return ItemStatistics("x", "test", "x", 1.0, 10, difficulty, discrimination)

    assert item(0.95, 0.3).flags == ["easy"] and item(0.9, None).flags == ["easy"]
    assert item(0.1, 0.3).flags == ["hard"] and item(0.2, -0.1).flags == ["hard", "negative"]
    assert item(0.5, 0.0).flags == [] and item(0.89, 0.01).flags == []
    assert all(sentence.endswith(".") and len(sentence) > 80 for sentence in FLAG_SENTENCES.values())


def test_discrimination_is_undefined_without_spread_or_students():
    same_rest = {name: student(name, t1, 0, 0) for name, t1 in (("A", 1), ("B", 0), ("C", 1))}
    items = {item.name: item for item in item_statistics(same_rest, GROUPS)}
    assert items["t1"].discrimination is None  # the rest (t2 + t3) is 0 for everyone
    assert items["e2"].discrimination is None and items["e2"].flags == ["hard"]  # nobody earned t3
    two = {name: student(name, *scores) for name, scores in (("A", (1, 2, 1)), ("B", (0, 0, 0)))}
    assert all(item.discrimination is None for item in item_statistics(two, GROUPS))


def test_item_analysis_of_a_class_graded_by_nbgrader(graded_tiny_class):
    # ada earned both tests (1 + 2), bob only the visible one (1 + 0), cy none; dee's file was unreadable (left out).
    # visible: 2 of 3 points, hidden: 2 of 6; each against the other: (1,1,0) with (2,0,0), r = (6/9) / sqrt(6/9 * 24/9) = 1/2.
    # The exercise is the whole assignment, so its rest is 0 for everyone: no discrimination.
    folder, results = graded_tiny_class
    items = {item.name: item for item in item_analysis(folder, TINY, results)}
    assert list(items) == ["add-numbers", "add-numbers-visible", "add-numbers-hidden"]
    assert items["add-numbers"].difficulty == pytest.approx(4 / 9) and items["add-numbers"].discrimination is None
    assert items["add-numbers-visible"].difficulty == pytest.approx(2 / 3)
    assert items["add-numbers-hidden"].difficulty == pytest.approx(1 / 3)
    assert items["add-numbers-visible"].discrimination == pytest.approx(0.5)
    assert items["add-numbers-hidden"].discrimination == pytest.approx(0.5)
    assert all(item.students == 3 for item in items.values()) and not flagged(list(items.values()))
