"""``course bench --grading ASSIGNMENT --cluster``: grading on a Dask cluster against ``course grade --jobs 2``.

The same made-up class as ``course.bench.measure_grading`` is graded both ways, each round
in fresh course folders with fresh gradebooks: locally by ``course grade`` with ``jobs``
nbgrader workers, and on a cluster of this machine (``course.grader.local_cluster``: a
scheduler and ``jobs`` single-threaded ``course worker`` processes, started afresh each round,
untimed, as they would be running already) by ``course grade --cluster``. Both write
autograded notebooks, feedback and grades. Each round runs the two one after the other, in
alternating order, so a slow spell of this shared machine shows in one round, not in one way.

Besides the wall times, every submission's own cost on the cluster (``Job.overhead``): getting
it to a worker, the worker's scratch files, the result's way back, and its gradebook write.
"""
from __future__ import annotations

import os
import secrets
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from course.demo import class_notebooks, write_submissions
from course.grader.grading import grade_class, nbgrader_env

SECTION = "## Grading on a Dask cluster"


@dataclass(frozen=True)
class ClusterRound:
    """One round: both wall times, the load average before it, and each submission's cluster cost (seconds)."""

    local: float
    cluster: float
    load: float
    costs: list[float] = field(default_factory=list)
    dispatch: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    gradings: list[float] = field(default_factory=list)

    def ratio(self) -> float:
        """Cluster wall time over local wall time (goal: at most 1.10)."""
        return self.cluster / self.local


@dataclass(frozen=True)
class ClusterMeasurement:
    """Rounds of grading one class locally and on the cluster, and the medians the course promises."""

    assignment: str
    students: int
    jobs: int
    gradebook: str
    rounds: list[ClusterRound]

    def ratio(self) -> float:
        """Median over the rounds of ``ClusterRound.ratio``."""
        return statistics.median(r.ratio() for r in self.rounds)

    def cost(self) -> float:
        """Median cluster cost of a submission, over every submission of every round."""
        return statistics.median(c for r in self.rounds for c in r.costs)

    def grading(self) -> float:
        """Median time nbgrader took per submission on a worker, over every submission of every round."""
        return statistics.median(g for r in self.rounds for g in r.gradings)

    def report(self) -> str:
        """The measurement as a Markdown section: every round, then the medians against the goals."""
        def median(values: list[float]) -> str:
            return f"{statistics.median(values):.3f}"

        rows = "\n".join(
            f"| {k} | {r.load:.1f} | {r.local:.1f} | {r.cluster:.1f} | {r.ratio():.2f} | {median(r.costs)} | {max(r.costs):.3f} | "
            f"{median(r.dispatch)} | {median(r.returns)} | {median(r.writes)} | {median(r.gradings)} |"
            for k, r in enumerate(self.rounds, 1))
        return (
            f"{SECTION}: {self.students} submissions of {self.assignment}, {self.jobs} jobs against {self.jobs} workers\n\n"
            f"Measured by `course bench --grading {self.assignment} --students {self.students} --jobs {self.jobs} "
            f"--rounds {len(self.rounds)} --cluster` with {self.gradebook} gradebooks, on {os.cpu_count()} cores.\n\n"
            f"Wall times in seconds of grading the same class, with feedback: `course grade --jobs {self.jobs}`, and "
            f"`course grade --cluster` on a `dask scheduler` and {self.jobs} `course worker --nthreads 1` processes on this "
            "machine (loopback). Load is this machine's one-minute load average before the round (it is shared with other "
            "work; 2 would mean both cores busy). A submission's cluster cost: from handing it to Dask to the start of "
            "nbgrader on a worker (dispatch), from the end of nbgrader to the result on the instructor's side (return), "
            "and its gradebook write; each column is the median over the round's submissions. Grading is nbgrader's "
            "own time on a worker per submission (autograde and feedback, kernel included).\n\n"
            "| round | load | local | cluster | cluster / local | cost per submission (median) | cost (max) | dispatch | "
            "return | gradebook write | grading |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
            f"{rows}\n\n"
            f"Medians over {len(self.rounds)} round{'s' if len(self.rounds) > 1 else ''}:\n\n"
            f"- cluster / local wall time: **{self.ratio():.2f}** (goal ≤ 1.10)\n"
            f"- the cluster's own cost per submission: **{self.cost():.3f} s** (goal ≤ 0.3 s)\n"
            f"- nbgrader's time per submission on a worker: **{self.grading():.2f} s**\n"
        )


@contextmanager
def fresh_database(server_url: str | None):
    """A new, empty database on the PostgreSQL server of ``server_url``, dropped afterwards (None: yield None, for SQLite)."""
    if server_url is None:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"course_bench_{secrets.token_hex(4)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def measure_cluster_grading(root: Path, assignment: str, students: int = 30, jobs: int = 2, rounds: int = 1,
                            server_url: str | None = None) -> ClusterMeasurement:
    """Grade a made-up class of ``students`` submissions of ``assignment`` locally and on a local cluster, ``rounds``
    times; gradebooks are SQLite files, or new databases on the PostgreSQL server of ``server_url``."""
    from course.grader.cluster import connect, grade_on_cluster
    from course.grader.local_cluster import LocalGradingCluster

    notebooks = class_notebooks(root, assignment, students)
    # The kernels nbgrader starts use one BLAS thread (course.grader.grading.nbgrader_env); so do the workers.
    os.environ.update({name: nbgrader_env()[name] for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    measured = []
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as scratch:
        def course_folder(name: str) -> Path:
            folder = Path(scratch) / name
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "source").mkdir(parents=True)
            shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
            shutil.copytree(root / "source" / assignment, folder / "source" / assignment)
            write_submissions(folder, assignment, notebooks)
            return folder

        def local() -> float:
            with fresh_database(server_url) as db_url:
                folder = course_folder("local")
                start = time.perf_counter()
                grade_class(folder, assignment, jobs, db_url=db_url)
                return time.perf_counter() - start

        def cluster() -> tuple[float, list]:
            with LocalGradingCluster(Path(scratch) / "cluster", workers=jobs, nthreads=1) as running, \
                    fresh_database(server_url) as db_url:
                client = connect(scheduler_file=str(running.scheduler_file))
                try:
                    folder = course_folder("cluster")
                    start = time.perf_counter()
                    run = grade_on_cluster(folder, assignment, client, db_url=db_url)
                    return time.perf_counter() - start, run.jobs
                finally:
                    client.close()

        for number in range(rounds):
            load = os.getloadavg()[0]
            if number % 2:
                (cluster_seconds, graded), local_seconds = cluster(), local()
            else:
                local_seconds = local()
                cluster_seconds, graded = cluster()
            done = [job for job in graded if job.outcome is not None]
            measured.append(ClusterRound(
                local_seconds, cluster_seconds, load, costs=[job.overhead for job in done],
                dispatch=[job.outcome.grading_started - job.queued for job in done],
                returns=[job.received - job.outcome.grading_finished for job in done],
                writes=[job.recorded - job.recording for job in done],
                gradings=[job.outcome.grading_finished - job.outcome.grading_started for job in done]))
    return ClusterMeasurement(assignment, students, jobs, "PostgreSQL" if server_url else "SQLite", measured)


def with_section(text: str, section: str) -> str:
    """``text`` (docs/benchmarks-grading.md) with its cluster section replaced by ``section`` (or added before the
    next section, or at the end); the rest stays as it is."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith(SECTION)), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "".join(lines[:start]) + section + ("\n" if end < len(lines) else "") + "".join(lines[end:])


def after_local_section(text: str) -> str:
    """What follows the local grading section of docs/benchmarks-grading.md: the cluster section and anything after it."""
    index = text.find("\n" + SECTION)
    return text[index:] if index >= 0 else ""
