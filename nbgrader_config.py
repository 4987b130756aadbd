"""nbgrader configuration for the course; nbgrader reads it from the folder it runs in.

Run nbgrader from the repository root (`nbgrader generate_assignment 01-...`,
`nbgrader autograde 01-...`, `nbgrader generate_feedback 01-...`). The course's own tools
copy this file into scratch folders, so every path here is relative to this file.

Grading is hardened (see docs/instructors.md): each submission's kernel runs in a
bubblewrap sandbox with resource limits, test cells always come from the source, a guard
loaded before the submission's first cell puts the test machinery back before every test
and scores 0 a test that could not run safely, a hung or dead kernel costs only the cells
that did not run, no submission stops the run for the others, and feedback never shows
hidden tests.
"""
import os

from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (CheckCellMetadata, ClearOutput, GetGrades, IgnorePattern, LimitOutput, OverwriteCells,
                                    OverwriteKernelspec, SaveAutoGrades)

from course.grader.late import ExplainLatePenalty, LatePenalties
from course.grader.preprocessors import HardenedExecute, HideHiddenTests, RestoreTestCells

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "ai-engineering-for-developers"
# The gradebook: gradebook.db beside this file, unless COURSE_DB_URL names a shared database
# (e.g. postgresql+psycopg://grader@db.example.org/course; see course/grader/gradebook.py).
if os.environ.get("COURSE_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSE_DB_URL"]
# mutants.toml holds wrong and alternative answers for `course verify`: never release it; nor
# what running a notebook leaves beside it (05's MLflow store).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "mutants.toml", "mlflow.db", "mlruns"]

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# ---- autograding ------------------------------------------------------------------------
c.Autograde.exporter_class = "course.grader.preprocessors.TolerantNotebookExporter"
# RestoreTestCells rebuilds every graded, read-only and answer cell (metadata included) from the
# gradebook, repeated grade ids too: nbgrader's DeduplicateIds would only blank the repeats' metadata,
# which then stops the whole run ("an old version of the nbgrader metadata format").
c.Autograde.sanitize_preprocessors = [ClearOutput, OverwriteKernelspec, RestoreTestCells, OverwriteCells, CheckCellMetadata]
c.Autograde.autograde_preprocessors = [
    HardenedExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, LatePenalties,
    CheckCellMetadata,
]
# Every test cell finishes in seconds on a 2-core machine; 60 s leaves room for a slow laptop.
c.HardenedExecute.timeout = 60
c.HardenedExecute.interrupt_on_timeout = True
c.HardenedExecute.interrupt_grace_seconds = 10
# Once the last cell has run, the kernel is killed rather than asked to exit: nothing of the
# submission runs after the tests (no atexit hooks), and no time goes to its shutdown.
c.HardenedExecute.shutdown_kernel = "immediate"
c.HardenedExecute.max_output_bytes = 1_000_000
c.HardenedExecute.kernel_manager_class = "course.grader.sandbox.SandboxedKernelManager"

# The sandbox of each kernel (course/grader/sandbox.py). Pass
# --SandboxedKernelManager.unsafe_no_sandbox=True only to grade notebooks you trust.
c.SandboxedKernelManager.memory_mb = 3072     # address space; MiniLM notebooks peak near 1 GB resident
c.SandboxedKernelManager.cpu_seconds = 600
c.SandboxedKernelManager.processes = 256      # processes and threads of the sandbox's uid
c.SandboxedKernelManager.file_mb = 64
c.SandboxedKernelManager.tmp_mb = 256

# ---- feedback: outcomes and messages, never hidden tests -------------------------------
c.GenerateFeedback.preprocessors = [ExplainLatePenalty, GetGrades, HideHiddenTests, CSSHTMLHeaderPreprocessor]
# Feedback is always rebuilt from the gradebook: nbgrader otherwise skips a student whose submission time did not
# change, and the page would keep a late penalty an extension removed, or miss written answers graded since.
c.GenerateFeedback.force = True

# ---- late submissions (course/grader/late.py) ---------------------------------------------
# Due dates: `nbgrader db assignment add NN-slug --duedate="2025-03-14 17:00:00 UTC"`. Extensions: extensions.csv
# in this folder (student_id,assignment,days). Each day or part of a day late costs 10% of the points earned, at most
# 50%; 15 minutes' grace covers slow uploads and clocks. A resubmission is judged by its own timestamp.txt.
c.PercentPerDayLate.percent_per_day = 10
c.PercentPerDayLate.maximum_percent = 50
c.PercentPerDayLate.grace_minutes = 15
c.LatePenalties.extensions_file = "extensions.csv"
