"""Grading on a Dask worker: the course's worker plugin, the preload that installs it, and the grading task.

Grading tasks ask for the ``grading`` resource, and only this plugin offers it: one slot per
worker thread, when the worker can grade exactly as ``course grade`` does on one machine. A
worker whose bubblewrap sandbox cannot start offers no slot, so no task reaches it: it logs
why and how to fix it, and ``course grade --cluster`` asks it (``refusal``) and says so. Start a worker with ``course worker SCHEDULER`` (which
checks the sandbox before it starts one at all), or with Dask's own command::

    dask worker SCHEDULER --nthreads 2 --preload course.grader.cluster_worker

``grade_submission`` is the task. It unpacks the assignment (``course.grader.shipment``) into
a scratch course folder of this worker's own, once per version of the assignment, puts the
submission in its ``submitted/`` and has a ``course.grader.grading.GradingWorker`` grade it:
nbgrader's own Autograde and GenerateFeedback with the course's ``nbgrader_config.py``, so
in the same sandbox, with the same limits and preprocessors, as local grading. It brings
back the autograded notebooks and feedback pages, or the grader fault (``GraderFault``: the
sandbox, the kernel or the guard failed before the submission's first cell) that stopped it;
the scratch copies are deleted.
"""
from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from distributed import WorkerPlugin, get_worker

from course.grader.shipment import AssignmentPackage, Outcome, Submission, code_digest, write_files

RESOURCE = "grading"
PLUGIN_NAME = "course-grading"
LOG_LINES = 200  # of nbgrader's log per submission, brought back to explain a failure
# Dask's defaults suit tasks of milliseconds; a grading task waits 10-60 s for nbgrader in another
# process. Idle, a scheduler, a nanny and a worker with the defaults cost 2-4% of a core each (an
# event-loop tick every 20 ms, a profiler sampling the worker's threads every 10 ms, memory and
# system monitors), taken from the kernels grading on the same cores. These settings cut that to
# under 0.5% each; a blocked event loop is still reported (after 3 s), memory still watched.
GRADING_DASK_SETTINGS = {
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.profile.enabled": "False",
    "distributed.worker.memory.monitor-interval": "1s",
}

logger = logging.getLogger(__name__)


def grading_dask_environment(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with ``GRADING_DASK_SETTINGS`` as the ``DASK_...`` variables Dask reads its settings from; a setting
    the environment makes already is kept."""
    settings = {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): value for key, value in GRADING_DASK_SETTINGS.items()}
    return {**settings, **environ}


class ScratchCourse:
    """A course folder of this worker's own for one assignment package, and its idle nbgrader processes."""

    def __init__(self, folder: Path, package: AssignmentPackage):
        write_files(folder, package.files)
        self.folder = folder
        self.assignment = package.assignment
        self.notebooks = package.notebooks
        self._idle = []
        self._lock = threading.Lock()

    def grade(self, submission: Submission, worker: str) -> Outcome:
        """Autograde ``submission`` and write its feedback here; return the results and remove the scratch copies."""
        student = submission.student
        if student in ("", ".", "..") or Path(student).name != student:
            raise ValueError(f"{student!r} is not a student id")
        folders = [self.folder / area / student for area in ("submitted", "autograded", "feedback")]
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        try:
            write_files(self.folder / "submitted" / student / self.assignment, submission.files)
            grader = self._take()
            started = time.time()
            try:
                verdict, log = grader.grade(student)
            finally:
                finished = time.time()
                self._give_back(grader)
            outcome = Outcome(student, verdict == "ok", "\n".join(log.splitlines()[-LOG_LINES:]), worker,
                              fault="" if verdict in ("ok", "failed") else verdict,
                              grading_started=started, grading_finished=finished)
            if outcome.graded:
                outcome.notebooks = self._read(student, "autograded", ".ipynb")
                outcome.feedback = self._read(student, "feedback", ".html")
            return outcome
        finally:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)

    def _read(self, student: str, area: str, suffix: str) -> dict[str, str]:
        """The assignment's notebooks (or their pages) that nbgrader wrote for ``student`` in ``area``, by notebook name."""
        folder = self.folder / area / student / self.assignment
        return {name: (folder / f"{name}{suffix}").read_text() for name in self.notebooks if (folder / f"{name}{suffix}").is_file()}

    def _take(self):
        from course.grader.grading import GradingWorker

        with self._lock:
            while self._idle:
                grader = self._idle.pop()
                if grader.alive:
                    return grader
                grader.close()
        return GradingWorker(self.folder, self.assignment, feedback=True, nbgrader_args=())

    def _give_back(self, grader) -> None:
        if grader.alive:
            with self._lock:
                self._idle.append(grader)
        else:
            grader.close()

    def close_idle(self) -> None:
        """Stop the nbgrader processes waiting for a submission of this assignment."""
        with self._lock:
            idle, self._idle = self._idle, []
        for grader in idle:
            grader.close()


class GradingPlugin(WorkerPlugin):
    """Offers the worker's grading slots when it can grade, or refuses them and says why; keeps its scratch course folders.

    It must run before the worker registers with the scheduler (as a preload), which reads the
    worker's resources then.
    """

    name = PLUGIN_NAME

    def setup(self, worker) -> None:
        """Offer a grading slot per thread (or as many as ``--resources grading=N`` says) if the sandbox works, else none."""
        # Loaded now rather than by the first task; this module itself stays light, because the
        # scheduler imports it too, to read the tasks that name grade_submission.
        import course.grader.grading  # noqa: F401
        from course.grader.sandbox import sandbox_problem

        slots = worker.state.total_resources.get(RESOURCE, worker.state.nthreads)
        self.refusal = ""
        if problem := sandbox_problem():
            slots = 0
            self.refusal = f"this worker refuses to grade: {problem}"
            logger.error(self.refusal)
        worker.state.total_resources[RESOURCE] = slots
        worker.state.available_resources[RESOURCE] = slots
        self.folder = Path(tempfile.mkdtemp(prefix="course-grading-", dir=worker.local_directory))
        self._courses: dict[str, ScratchCourse] = {}
        self._lock = threading.Lock()

    def teardown(self, worker) -> None:
        """Stop the nbgrader processes and remove the scratch folder."""
        for course in self._courses.values():
            course.close_idle()
        shutil.rmtree(self.folder, ignore_errors=True)

    def course(self, package: AssignmentPackage) -> ScratchCourse:
        """The scratch course for ``package``, made on first use; other assignments' idle nbgrader processes stop."""
        with self._lock:
            if package.digest not in self._courses:
                for other in self._courses.values():
                    other.close_idle()
                self._courses[package.digest] = ScratchCourse(self.folder / package.digest[:16], package)
            return self._courses[package.digest]


async def dask_setup(worker) -> None:
    """The preload hook (``dask worker --preload course.grader.cluster_worker``): install ``GradingPlugin``
    before the worker registers."""
    await worker.plugin_add(GradingPlugin(), catch_errors=False)


def refusal(dask_worker) -> str:
    """Why this worker takes no grading tasks ("" when it takes them); for ``Client.run``."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        return "this worker was started without the course's plugin: start it with `course worker`"
    return plugin.refusal


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    return code_digest()


def grade_submission(package: AssignmentPackage, submission: Submission) -> Outcome:
    """The grading task: autograde ``submission`` of ``package``'s assignment on this worker.

    Problems of this worker (started without the plugin, other course code, a failure of its
    own) are grader faults: they come back as an outcome whose ``fault`` names the worker and
    the cause, never as a grade.
    """
    task_started = time.time()
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None:
        problem = "it was started without the course's plugin: start workers with `course worker`"
    elif package.code_digest != _code_digest():
        problem = ("it runs other course code than the instructor's machine (the `course` package differs): "
                   "install the same version of the course on every worker")
    else:
        problem = None
    if not problem:
        try:
            outcome = plugin.course(package).grade(submission, worker.address)
        except Exception as error:  # noqa: BLE001 - a fault of this worker (a full disk, say), never the student's grade
            problem = f"it failed while grading {submission.student}: {type(error).__name__}: {error}"
    if problem:
        message = f"worker {worker.address} cannot grade {submission.student}: {problem}"
        outcome = Outcome(submission.student, False, message, worker.address, fault=message)
    outcome.task_started, outcome.task_finished = task_started, time.time()
    return outcome
