"""A grading cluster on this machine: a ``dask scheduler`` and ``course worker`` processes on loopback.

``course bench --grading ... --cluster`` measures grading on it, and the tests grade through
it. The processes are the real commands an instructor runs on several machines; here they
listen on 127.0.0.1 only, and each worker keeps its files in a folder of its own.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from course.grader.cluster_worker import grading_dask_environment
from course.grader.grading import GradingError

START_SECONDS = 180  # a worker imports nbgrader before it registers; a busy machine takes its time


class LocalGradingCluster:
    """``workers`` grading workers of ``nthreads`` threads each, and their scheduler, started in ``folder``.

    The scheduler runs with the settings ``course worker`` gives its workers (``GRADING_DASK_SETTINGS``);
    ``scheduler_env`` adds to its environment (Dask reads its settings from ``DASK_...``
    variables, e.g. ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES``).
    """

    def __init__(self, folder: Path, workers: int = 2, nthreads: int = 1, scheduler_env: dict[str, str] | None = None):
        self.folder = folder
        self.scheduler_file = folder / "scheduler.json"
        self.nthreads = nthreads
        self.scheduler_env = scheduler_env or {}
        self.worker_names = [f"worker-{number}" for number in range(1, workers + 1)]
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> "LocalGradingCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """The scheduler's address, from its scheduler file."""
        import json

        return json.loads(self.scheduler_file.read_text())["address"]

    def log(self, name: str) -> str:
        """What the process ``name`` (``scheduler`` or a worker's name) has written so far."""
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def start(self) -> "LocalGradingCluster":
        """Start the scheduler, then the workers; return once every worker offers its grading slots."""
        from course.grader.cluster import connect, grading_slots

        self.folder.mkdir(parents=True, exist_ok=True)
        dask = str(Path(sys.executable).parent / "dask")
        self._spawn("scheduler", [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                  "--scheduler-file", str(self.scheduler_file)],
                    grading_dask_environment({**os.environ, **self.scheduler_env}))
        try:
            self._wait(self.scheduler_file.is_file, "the scheduler to write its address")
            for name in self.worker_names:
                self._spawn(name, [sys.executable, "-m", "course.cli", "worker", "--scheduler-file", str(self.scheduler_file),
                                   "--nthreads", str(self.nthreads), "--", "--name", name, "--host", "127.0.0.1",
                                   "--no-dashboard", "--local-directory", str(self.folder / name)])
            client = connect(scheduler_file=str(self.scheduler_file))
            try:
                self._wait(lambda: grading_slots(client) == len(self.worker_names) * self.nthreads, "the workers to register")
            finally:
                client.close()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the workers, then the scheduler (killed when they do not stop within 20 s)."""
        for name in [*self.worker_names, "scheduler"]:
            if (process := self.processes.pop(name, None)) is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with (self.folder / f"{name}.log").open("w") as log:
            self.processes[name] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                    env=env or dict(os.environ), start_new_session=True)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not ready():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise GradingError(f"the local cluster's {name} stopped (exit {process.returncode}) while waiting for {what}:\n"
                                       + "\n".join(self.log(name).splitlines()[-20:]))
            if time.monotonic() > deadline:
                raise GradingError(f"gave up after {START_SECONDS} s waiting for {what} (logs in {self.folder})")
            time.sleep(0.2)
