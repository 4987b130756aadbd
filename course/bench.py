"""``course bench``: how long each solved notebook takes, and how much memory, in a fresh kernel.

Each notebook runs in its own child process, which starts a fresh kernel through nbclient,
so the peak resident memory of the kernel can be read from the child's rusage once the
kernel has exited. Budgets come from the course design: Binder gives 1 CPU and 2 GB.
"""
from __future__ import annotations

import datetime
import multiprocessing
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path

from course.assignments import notebook_path

BUDGET_SECONDS = 60.0
BUDGET_MB = 1536.0


@dataclass(frozen=True)
class Measurement:
    """Wall time and peak kernel memory of executing one solved notebook."""

    assignment: str
    seconds: float
    peak_mb: float
    errors: int

    @property
    def within_budget(self) -> bool:
        """True when the notebook ran without errors inside both budgets."""
        return self.errors == 0 and self.seconds <= BUDGET_SECONDS and self.peak_mb < BUDGET_MB


def _execute(path: str, queue) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": os.path.dirname(path)}}).execute()
    seconds = time.perf_counter() - start
    errors = sum(1 for cell in notebook.cells if cell.cell_type == "code"
                 for output in cell.outputs if output.output_type == "error")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    queue.put((seconds, peak_kb / 1024, errors))


def measure(root: Path, assignment: str) -> Measurement:
    """Execute ``assignment``'s solved (source) notebook in a fresh kernel and measure it."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_execute, args=(str(notebook_path(root, "source", assignment)), queue))
    child.start()
    seconds, peak_mb, errors = queue.get()
    child.join()
    return Measurement(assignment, seconds, peak_mb, errors)


def table(measurements: list[Measurement]) -> str:
    """The measurements as a Markdown table."""
    rows = ["| assignment | wall time (s) | peak memory (MB) | errors | within budget |", "|---|---:|---:|---:|---|"]
    rows += [f"| {m.assignment} | {m.seconds:.1f} | {m.peak_mb:.0f} | {m.errors} | {'yes' if m.within_budget else 'NO'} |"
             for m in measurements]
    return "\n".join(rows)


def write_report(measurements: list[Measurement], path: Path) -> None:
    """Write the table, the budgets and the machine it was measured on to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Benchmarks\n\n"
        "Each solved notebook (`source/`) executed once in a fresh kernel by `course bench`. "
        f"Budget: at most {BUDGET_SECONDS:.0f} s and under {BUDGET_MB:.0f} MB peak memory each.\n\n"
        f"Measured {datetime.date.today().isoformat()} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}.\n\n" + table(measurements) + "\n\nRerun: `course bench` (or `make bench`).\n"
    )
