"""``course bench``: what notebooks and grading cost.

- ``measure``: each solved notebook's wall time and peak memory in a fresh kernel, once on
  every core of this machine and once pinned to a single CPU (the Binder machine has one).
  Each run is a child process of its own, which starts the kernel through nbclient (the
  kernel inherits the child's CPU affinity), so the kernel's peak resident memory can be
  read from the child's rusage once the kernel has exited. Budgets come from the course
  design: Binder gives 1 CPU and 2 GB.
- ``measure_grading``: a made-up class graded three ways (serial, unhardened nbgrader as
  shipped; the course's parallel, sandboxed grading; the same without the sandbox), against
  the sum of executing each submission alone.
"""
from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from course.assignments import notebook_path, read_notebook
from course.demo import class_notebooks, write_submissions
from course.grader.grading import autograde_class, nbgrader_env, run_nbgrader_checked

VANILLA_CONFIG = """c = get_config()
c.CourseDirectory.course_id = "bench"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.toml"]
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
c.Execute.timeout = 60
"""

BUDGET_SECONDS = 60.0          # on this (2-core) machine
BUDGET_ONE_CPU_SECONDS = 90.0  # pinned to one CPU, as on Binder
BUDGET_MB = 1536.0


class BenchmarkError(RuntimeError):
    """The benchmark would not measure what it reports (for example, its baseline run fails)."""


@dataclass(frozen=True)
class Measurement:
    """Wall time on every core and on one CPU, and peak kernel memory, of executing one solved notebook."""

    assignment: str
    seconds: float
    one_cpu_seconds: float
    peak_mb: float
    errors: int

    @property
    def within_budget(self) -> bool:
        """True when the notebook ran without errors inside every budget."""
        return (self.errors == 0 and self.seconds <= BUDGET_SECONDS and self.one_cpu_seconds <= BUDGET_ONE_CPU_SECONDS
                and self.peak_mb < BUDGET_MB)


def _execute(path: str, cpus: set[int] | None, queue) -> None:
    import tempfile

    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    # In a copy of the assignment's folder: whatever the notebook writes (an MLflow store, a
    # model file) must not land in source/, where `course build` would release it.
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        folder = Path(scratch) / Path(path).parent.name
        shutil.copytree(Path(path).parent, folder)
        seconds, errors = _execute_in(read_notebook(Path(path)), folder)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    queue.put((seconds, peak_kb / 1024, len(errors)))


def _run_once(path: Path, cpus: set[int] | None) -> tuple[float, float, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_execute, args=(str(path), cpus, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def measure(root: Path, assignment: str) -> Measurement:
    """Execute ``assignment``'s solved (source) notebook in a fresh kernel on every core, then pinned to one CPU."""
    path = notebook_path(root, "source", assignment)
    seconds, peak_mb, errors = _run_once(path, None)
    one_cpu_seconds, one_cpu_peak_mb, one_cpu_errors = _run_once(path, {min(os.sched_getaffinity(0))})
    return Measurement(assignment, seconds, one_cpu_seconds, max(peak_mb, one_cpu_peak_mb), max(errors, one_cpu_errors))


def table(measurements: list[Measurement]) -> str:
    """The measurements as a Markdown table."""
    rows = [f"| assignment | wall time, {os.cpu_count()} cores (s) | wall time, 1 CPU (s) | peak memory (MB) | errors | "
            "within budget |", "|---|---:|---:|---:|---:|---|"]
    rows += [f"| {m.assignment} | {m.seconds:.1f} | {m.one_cpu_seconds:.1f} | {m.peak_mb:.0f} | {m.errors} | "
             f"{'yes' if m.within_budget else 'NO'} |" for m in measurements]
    return "\n".join(rows)


def write_report(measurements: list[Measurement], path: Path) -> None:
    """Write the table, the budgets and the machine it was measured on to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Benchmarks\n\n"
        "Each solved notebook (`source/`) executed in a fresh kernel by `course bench`: once on every core of the "
        "machine, once pinned to a single CPU (CPU affinity; the Binder machine has one CPU and 2 GB). "
        f"Budget: at most {BUDGET_SECONDS:.0f} s on every core, at most {BUDGET_ONE_CPU_SECONDS:.0f} s on one CPU, and "
        f"under {BUDGET_MB:.0f} MB peak memory (the larger of the two runs).\n\n"
        f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}; load average {os.getloadavg()[0]:.1f} when the last run ended (other work on the machine "
        "slows every column).\n\n" + table(measurements) + "\n\nRerun: `course bench` (or `make bench`).\n"
    )


@dataclass(frozen=True)
class GradingRound:
    """Wall times of grading one class each way, measured one right after the other."""

    vanilla_serial: float
    hardened: float
    unsandboxed: float
    executions: float

    def speedup(self) -> float:
        """How many times faster than serial, unhardened nbgrader (goal: at least 1.8 with 2 jobs)."""
        return self.vanilla_serial / self.hardened

    def sandbox_overhead(self) -> float:
        """Extra time the sandbox costs, as a fraction (goal: at most 0.10)."""
        return self.hardened / self.unsandboxed - 1

    def efficiency(self, jobs: int) -> float:
        """Grading time over the ideal, the summed single executions spread over the jobs (goal: at most 1.15)."""
        return self.hardened / (self.executions / jobs)


@dataclass(frozen=True)
class GradingMeasurement:
    """Rounds of grading one class each way, and the median of each ratio the course promises."""

    assignment: str
    students: int
    jobs: int
    rounds: list[GradingRound]

    def speedup(self) -> float:
        """Median over the rounds of ``GradingRound.speedup``."""
        return statistics.median(r.speedup() for r in self.rounds)

    def sandbox_overhead(self) -> float:
        """Median over the rounds of ``GradingRound.sandbox_overhead``."""
        return statistics.median(r.sandbox_overhead() for r in self.rounds)

    def efficiency(self) -> float:
        """Median over the rounds of ``GradingRound.efficiency``."""
        return statistics.median(r.efficiency(self.jobs) for r in self.rounds)

    def report(self) -> str:
        """The measurement as a Markdown section: every round, then the medians against the goals."""
        rows = "\n".join(
            f"| {k} | {r.vanilla_serial:.1f} | {r.hardened:.1f} | {r.unsandboxed:.1f} | {r.executions:.1f} | "
            f"{r.speedup():.2f}x | {r.sandbox_overhead():+.1%} | {r.efficiency(self.jobs):.2f} |"
            for k, r in enumerate(self.rounds, 1))
        return (
            f"## Grading a class: {self.students} submissions of {self.assignment}, {self.jobs} jobs\n\n"
            "Wall times in seconds: serial `nbgrader autograde` as shipped (no sandbox, no hardening); "
            f"the course's grading ({self.jobs} nbgrader workers, sandboxed and hardened); the same without "
            "the sandbox; and each submission executed alone in a fresh kernel, summed. Each round measures "
            "all four one after another, so a slow spell of the machine shows in one round, not in one column.\n\n"
            "A lone execution is what `jupyter execute` does: the submission as handed in, in a folder of its "
            "own, then a graceful shutdown of its kernel. Grading also runs the test guard in the kernel and "
            "the hidden tests of every submission (the made-up ones built from the solution hold them already), "
            "and it kills the kernel once the last cell has run.\n\n"
            "| round | serial nbgrader | course grading | unsandboxed | summed executions | speed-up | "
            "sandbox overhead | grading / ideal |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
            f"{rows}\n\n"
            f"Medians over {len(self.rounds)} round{'s' if len(self.rounds) > 1 else ''}:\n\n"
            f"- speed-up over serial nbgrader: **{self.speedup():.2f}x** (goal ≥ 1.8x)\n"
            f"- sandbox overhead: **{self.sandbox_overhead():+.1%}** (goal ≤ +10%)\n"
            f"- grading time / (summed executions / jobs): **{self.efficiency():.2f}** (goal ≤ 1.15)\n"
        )


def measure_grading(root: Path, assignment: str, students: int = 30, jobs: int = 2, rounds: int = 1) -> GradingMeasurement:
    """Grade a made-up class of ``students`` submissions of ``assignment`` each way, ``rounds`` times, and time it."""
    import tempfile

    notebooks = class_notebooks(root, assignment, students)
    # The kernels nbgrader starts use one BLAS thread (course.grader.grading.nbgrader_env); so do these.
    os.environ.update({name: nbgrader_env()[name] for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as scratch:
        def course_folder(name: str, config: str | None = None) -> Path:
            folder = Path(scratch) / name
            shutil.rmtree(folder, ignore_errors=True)
            (folder / "source").mkdir(parents=True)
            shutil.copytree(root / "source" / assignment, folder / "source" / assignment)
            if config is None:
                shutil.copy2(root / "nbgrader_config.py", folder / "nbgrader_config.py")
            else:
                (folder / "nbgrader_config.py").write_text(config)
            run_nbgrader_checked(["generate_assignment", assignment, "--force"], folder)
            write_submissions(folder, assignment, notebooks)
            return folder

        def timed(action, *args, **kwargs) -> float:
            start = time.perf_counter()
            action(*args, **kwargs)
            return time.perf_counter() - start

        def vanilla_serial() -> float:
            return timed(run_nbgrader_checked, ["autograde", assignment, "--force"], course_folder("vanilla", VANILLA_CONFIG))

        def course_grading(extra: tuple[str, ...]) -> float:
            return timed(autograde_class, course_folder("course"), assignment, sorted(notebooks), jobs, feedback=False,
                         nbgrader_args=extra)

        # Each submission runs alone in a folder of its own, as each grading kernel does. Run beside
        # the scratch course folders, it would import their `course/` folder in place of the course
        # package (installed editable, as `make` does) and stop at the first data file, timing a
        # broken run: so first, before any grading is timed, the solution must run clean the same way.
        solution = read_notebook(notebook_path(root, "source", assignment))
        _, errors = _execute_alone(solution, Path(scratch) / "alone" / "solution")
        if errors:
            raise BenchmarkError(f"the solution of {assignment}, executed alone as each submission is for the "
                                 f"baseline, raised {errors[0]}; the summed executions would time a broken run")

        def executions(round_number: int) -> float:
            folder = Path(scratch) / f"alone-{round_number}"
            return sum(_execute_alone(notebook, folder / student)[0] for student, notebook in notebooks.items())

        measured = []
        for round_number in range(rounds):
            measured.append(GradingRound(vanilla_serial=vanilla_serial(), hardened=course_grading(()),
                                         unsandboxed=course_grading(("--SandboxedKernelManager.unsafe_no_sandbox=True",)),
                                         executions=executions(round_number)))
    return GradingMeasurement(assignment, students, jobs, measured)


def _execute_alone(notebook, folder: Path) -> tuple[float, list[str]]:
    """``_execute_in`` a new, empty ``folder``."""
    folder.mkdir(parents=True)
    return _execute_in(notebook, folder)


def _execute_in(notebook, folder: Path) -> tuple[float, list[str]]:
    """Execute a copy of ``notebook`` as ``jupyter execute`` does, in ``folder``; return the wall time and
    each error it raised (``"Name: message"``)."""
    import copy

    from nbclient import NotebookClient

    executed = copy.deepcopy(notebook)
    start = time.perf_counter()
    NotebookClient(executed, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute(stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, [f"{output.ename}: {output.evalue}" for cell in executed.cells if cell.cell_type == "code"
                     for output in cell.outputs if output.output_type == "error"]
