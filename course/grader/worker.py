"""``python -m course.grader.worker ASSIGNMENT [--feedback] [nbgrader options]``: one nbgrader, many students.

``nbgrader autograde`` grades a set of students fixed when it starts, and starting it costs
seconds of imports. ``course.grader.grading`` instead starts one worker per job and hands each
worker the next student the moment it is free, so a slow submission never leaves a core
idle and the start-up is paid once per job. The worker reads one student id per line from
stdin and runs nbgrader's own ``Autograde`` converter for that student (then, with
``--feedback``, ``GenerateFeedback``), configured exactly as ``nbgrader autograde`` is in the
course folder: its ``nbgrader_config.py`` plus the options given. So grading is sandboxed
and hardened the same way.

After each student it prints ``<token> ok|failed|fault <student>``; ``fault`` (grading failed
before the submission's first cell: the sandbox, the kernel or the guard, see
``course.grader.GraderFault``) follows a line ``<token> reason <what failed and how to fix it>``.
The token comes from the environment variable ``COURSE_WORKER_TOKEN``; the grading kernels
share the worker's output stream but start with a clean environment, so a submission cannot
forge those lines.
"""
from __future__ import annotations

import glob
import os
import sys

TOKEN_VARIABLE = "COURSE_WORKER_TOKEN"
FEEDBACK_FLAG = "--feedback"


def main(argv: list[str] | None = None) -> int:
    """Grade the students named on stdin, one per line, until stdin closes."""
    # Start-up and per-notebook costs that buy nothing here: jsonschema builds the 38 grammars
    # of rfc3987_syntax on import (over a second) for IRI formats no notebook schema uses, and
    # nbformat validates each notebook it reads and writes several times faster with fastjsonschema.
    sys.modules.setdefault("rfc3987_syntax", None)
    os.environ.setdefault("NBFORMAT_VALIDATOR", "fastjsonschema")
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.converters import Autograde, GenerateFeedback, NbGraderException

    from course.grader import GraderFault

    class FaultAwareAutograde(Autograde):
        """nbgrader's Autograde, remembering a GraderFault (which nbgrader itself logs and moves past)."""

        fault: GraderFault | None = None

        def convert_single_notebook(self, notebook_filename: str) -> None:
            try:
                super().convert_single_notebook(notebook_filename)
            except GraderFault as fault:
                self.fault = fault
                raise

    argv = sys.argv[1:] if argv is None else argv
    token = os.environ.pop(TOKEN_VARIABLE, "")
    if not token:
        print(f"course.grader.worker is started by course.grader.grading, which sets {TOKEN_VARIABLE}", file=sys.stderr)
        return 2
    feedback = FEEDBACK_FLAG in argv
    app = AutogradeApp.instance()
    app.initialize([arg for arg in argv if arg != FEEDBACK_FLAG])
    if len(app.extra_args) != 1:
        app.fail("course.grader.worker takes exactly one assignment id")
    app.coursedir.assignment_id = app.extra_args[0]
    for line in sys.stdin:
        student = line.strip()
        # nbgrader globs for the student's folder: a name like "a*" must match only itself.
        app.coursedir.student_id = glob.escape(student)
        autograde = FaultAwareAutograde(coursedir=app.coursedir, parent=app)
        try:
            autograde.start()
            if feedback:
                GenerateFeedback(coursedir=app.coursedir, parent=app).start()
            verdict = "ok"
        except NbGraderException:
            verdict = "failed"  # nbgrader has logged why
        if autograde.fault is not None:
            verdict = "fault"
            print(f"{token} reason {' '.join(str(autograde.fault).split())}", flush=True)
        print(f"{token} {verdict} {student}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
