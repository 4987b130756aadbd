"""The worker side of cluster grading on in-process Dask clusters: grading slots, and tasks a worker must not grade.

Real grading on real worker processes, and a worker without a sandbox, are in tests/test_cluster.py.
"""
from __future__ import annotations

from distributed import Client, LocalCluster

from course.grader.cluster import grading_slots, refusals
from course.grader.cluster_worker import RESOURCE, grade_submission
from course.grader.shipment import AssignmentPackage, Submission, code_digest

TINY = "99-tiny"
PRELOAD = ["course.grader.cluster_worker"]


def in_process_cluster(**worker_options) -> LocalCluster:
    return LocalCluster(n_workers=1, processes=False, dashboard_address=None, **worker_options)


def test_a_worker_with_the_plugin_offers_one_grading_slot_per_thread():
    with in_process_cluster(threads_per_worker=2, preload=PRELOAD) as cluster, Client(cluster) as client:
        assert grading_slots(client) == 2
        assert refusals(client) == []


def test_a_worker_started_without_the_plugin_says_so_and_grades_nothing():
    with in_process_cluster() as cluster, Client(cluster) as client:
        assert grading_slots(client) == 0
        (refused,) = refusals(client)
        assert "started without the course's plugin: start it with `course worker`" in refused

    package = AssignmentPackage(TINY, {}, "0" * 64, code_digest())
    with in_process_cluster(resources={RESOURCE: 1}) as cluster, Client(cluster) as client:
        outcome = client.submit(grade_submission, package, Submission("ada", {}), resources={RESOURCE: 1}).result()
    assert not outcome.graded and not outcome.notebooks and outcome.fault == outcome.log
    assert f"worker {outcome.worker} cannot grade ada: it was started without the course's plugin" in outcome.fault


def test_a_worker_grades_nothing_for_other_course_code_or_a_student_id_that_is_a_path():
    with in_process_cluster(preload=PRELOAD) as cluster, Client(cluster) as client:
        other_code = AssignmentPackage(TINY, {}, "0" * 64, "the digest of some other version of the course")
        outcome = client.submit(grade_submission, other_code, Submission("ada", {}), resources={RESOURCE: 1}).result()
        assert not outcome.graded and "it runs other course code than the instructor's machine" in outcome.fault

        this_code = AssignmentPackage(TINY, {}, "1" * 64, code_digest())
        outcome = client.submit(grade_submission, this_code, Submission("..", {}), resources={RESOURCE: 1}).result()
        assert not outcome.graded and "failed while grading ..: ValueError: '..' is not a student id" in outcome.fault
