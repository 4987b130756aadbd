"""``course bench --grading ASSIGNMENT --cluster``: its report, and where it goes in docs/benchmarks-grading.md."""
from __future__ import annotations

import subprocess
import sys

import pytest

from course.cluster_bench import SECTION, ClusterMeasurement, ClusterRound, after_local_section, with_section

TINY = "99-tiny"
LOCAL = "# Benchmark: grading a class\n\n## Grading a class: 30 submissions\n\n| local rows |\n"
ESTIMATE = "## Workers for a large class\n\nOn paper.\n"


def test_the_cluster_section_replaces_only_itself():
    first = with_section(LOCAL + "\n" + ESTIMATE, f"{SECTION}: first\n")
    assert first == LOCAL + "\n" + ESTIMATE + "\n" + f"{SECTION}: first\n"
    middle = LOCAL + "\n" + f"{SECTION}: old\n\nold rows\n\n" + ESTIMATE
    assert with_section(middle, f"{SECTION}: new\n") == LOCAL + "\n" + f"{SECTION}: new\n\n" + ESTIMATE
    # The local benchmark rewrites the part before the cluster section and keeps the rest.
    assert after_local_section(middle) == "\n" + f"{SECTION}: old\n\nold rows\n\n" + ESTIMATE
    assert after_local_section(LOCAL) == ""


def test_the_report_gives_every_round_and_the_medians_against_the_goals():
    rounds = [ClusterRound(60.0, 63.0, 1.2, costs=[0.1, 0.2, 0.3], dispatch=[0.05] * 3, returns=[0.01] * 3,
                           writes=[0.04] * 3, gradings=[3.0, 4.0, 5.0]),
              ClusterRound(50.0, 60.0, 0.4, costs=[0.2], dispatch=[0.1], returns=[0.02], writes=[0.08], gradings=[4.5])]
    report = ClusterMeasurement("01-what-is-ai-engineering", 30, 2, "SQLite", rounds).report()
    assert report.startswith(f"{SECTION}: 30 submissions of 01-what-is-ai-engineering, 2 jobs against 2 workers")
    assert "| 1 | 1.2 | 60.0 | 63.0 | 1.05 | 0.200 | 0.300 | 0.050 | 0.010 | 0.040 | 4.000 |" in report
    assert "| 2 | 0.4 | 50.0 | 60.0 | 1.20 | 0.200 | 0.200 | 0.100 | 0.020 | 0.080 | 4.500 |" in report
    assert "cluster / local wall time: **1.12** (goal ≤ 1.10)" in report
    assert "cost per submission: **0.200 s** (goal ≤ 0.3 s)" in report and "on a worker: **4.25 s**" in report


@pytest.mark.slow
def test_course_bench_grades_a_class_locally_and_on_a_cluster_it_starts(tiny_course):
    done = subprocess.run([sys.executable, "-m", "course.cli", "--root", str(tiny_course), "bench", "--grading", TINY,
                           "--students", "2", "--jobs", "1", "--cluster", "--no-write"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{SECTION}: 2 submissions of {TINY}, 1 jobs against 1 workers" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("| 1 |"))
    local, cluster = (float(cell) for cell in row.split("|")[3:5])
    assert local > 0 and cluster > 0
    assert not (tiny_course / "docs").exists()
