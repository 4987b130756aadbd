import re
from pathlib import Path

import nbformat
import pytest

from course.bench import BUDGET_MB, Measurement, measure, table, write_report

TINY = "99-tiny"


def test_measure_runs_the_solved_notebook_in_a_fresh_kernel_on_all_cores_and_on_one(tiny_course):
    with_code_cell(tiny_course, "with open('written.txt', 'w') as f:\n    f.write('ran')")
    measurement = measure(tiny_course, TINY)
    assert measurement.errors == 0
    assert 0 < measurement.seconds < 60 and 0 < measurement.one_cpu_seconds < 90
    assert 30 < measurement.peak_mb < BUDGET_MB  # a kernel that imported numpy
    assert measurement.within_budget
    assert not (tiny_course / "source" / TINY / "written.txt").exists()  # it ran in a copy of the folder


def test_the_one_cpu_run_is_pinned_to_one_cpu(tiny_course, tmp_path):
    import os

    record = tmp_path / "cpus.txt"
    with_code_cell(tiny_course, f"import os\nwith open({str(record)!r}, 'a') as f:\n    print(len(os.sched_getaffinity(0)), file=f)")
    assert measure(tiny_course, TINY).errors == 0
    assert record.read_text().split() == [str(len(os.sched_getaffinity(0))), "1"]


def test_budget_and_report(tmp_path):
    fine = Measurement("01-a", 12.3, 20.5, 400.0, 0)
    slow = Measurement("02-b", 75.0, 80.0, 400.0, 0)
    slow_on_one_cpu = Measurement("03-c", 50.0, 95.0, 400.0, 0)
    heavy = Measurement("04-d", 10.0, 15.0, 1600.0, 0)
    broken = Measurement("05-e", 5.0, 6.0, 100.0, 2)
    assert fine.within_budget
    assert not any(m.within_budget for m in (slow, slow_on_one_cpu, heavy, broken))
    assert "| 01-a | 12.3 | 20.5 | 400 | 0 | yes |" in table([fine])
    write_report([fine, slow], tmp_path / "docs" / "benchmarks.md")
    text = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "| 02-b | 75.0 | 80.0 | 400 | 0 | NO |" in text and "course bench" in text and "1 CPU" in text
    assert re.search(r"load average \d+\.\d when the last run ended", text)


def with_code_cell(course: Path, source: str) -> Path:
    """``course`` with a code cell running ``source`` appended to the tiny solution."""
    path = course / "source" / TINY / f"{TINY}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(notebook, path)
    return course


def test_grading_benchmark_times_each_way_on_a_small_class(tiny_course):
    from course.bench import measure_grading

    # The course's data files must load in every way the class is run, the lone executions included.
    course = with_code_cell(tiny_course, "from course.data import load_adult\nassert len(load_adult('test')) > 10_000")
    result = measure_grading(course, TINY, students=2, jobs=2, rounds=1)
    assert result.students == 2 and len(result.rounds) == 1
    (measured,) = result.rounds
    assert min(measured.vanilla_serial, measured.hardened, measured.unsandboxed, measured.executions) > 0
    report = result.report()
    assert "speed-up over serial nbgrader" in report and "sandbox overhead" in report and "(goal ≤ 1.15)" in report
    assert "Medians over 1 round:" in report and report.count("\n| 1 |") == 1


def test_grading_benchmark_refuses_to_time_a_solution_that_fails_alone(tiny_course):
    from course.bench import BenchmarkError, measure_grading

    with pytest.raises(BenchmarkError, match="raised ZeroDivisionError"):
        measure_grading(with_code_cell(tiny_course, "1 / 0"), TINY, students=2, jobs=1)


def test_grading_ratios_are_medians_of_the_rounds():
    from course.bench import GradingMeasurement, GradingRound

    rounds = [GradingRound(100, 50, 48, 90), GradingRound(120, 70, 60, 100), GradingRound(110, 55, 50, 98)]
    measured = GradingMeasurement("01-a", 30, 2, rounds)
    assert measured.speedup() == 2.0 and round(measured.sandbox_overhead(), 3) == 0.1
    assert round(measured.efficiency(), 3) == round(55 / 49, 3)
    report = measured.report()
    assert "Medians over 3 rounds:" in report and all(report.count(f"\n| {k} |") == 1 for k in (1, 2, 3))
