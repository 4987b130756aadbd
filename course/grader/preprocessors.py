"""nbgrader preprocessors that make grading hold up against broken or hostile submissions.

``nbgrader_config.py`` puts them in nbgrader's pipelines, so plain ``nbgrader autograde`` and
``nbgrader generate_feedback`` use them as well as ``course grade``:

- ``RestoreTestCells`` (before execution): the submission keeps only its answers; every
  test cell, read-only cell and graded cell comes from the gradebook's copy of the source,
  whether the student deleted it, edited it, stripped its metadata or forged a new one.
- ``HardenedExecute`` (execution): the kernel runs in the sandbox; before every test cell
  ``course.grader.guard`` undoes IPython hooks and patched modules (recording what it undid) and
  the read-only setup cells run again, so the names tests use (``check_equal``, ``np``, ...)
  are the real ones whatever the submission rebound; output is capped; a cell that times out and ignores the interrupt, or a kernel
  that dies, ends execution with a readable error in every cell that did not run.
- ``TolerantNotebookExporter`` (reading): a submission that is not a readable notebook is
  graded as an empty one (every test scores 0) with the reason recorded, instead of
  stopping that student's grading.
- ``HideHiddenTests`` (feedback): students see each test's name, points, outcome and
  message, never the hidden tests' code or tracebacks.
"""
from __future__ import annotations

import ast
import asyncio
import json
import re

import nbformat
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.exporters import NotebookExporter
from nbformat.notebooknode import NotebookNode
from traitlets import Integer

from nbgrader.preprocessors import Execute, NbGraderPreprocessor

TAMPERING_KEY = "course_tampering"  # notebook metadata: what the guard had to undo
INCIDENT_KEY = "course_incident"    # notebook metadata: why execution stopped early
HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


class TolerantNotebookExporter(NotebookExporter):
    """Read a submission; one that is not a readable notebook becomes an empty notebook with the reason attached."""

    def from_file(self, file_stream, resources=None, **kw):
        try:
            notebook = nbformat.read(file_stream, as_version=4)
        except Exception as error:  # noqa: BLE001 - nbformat raises many unrelated types for broken files
            notebook = nbformat.v4.new_notebook()
            notebook.metadata[INCIDENT_KEY] = (f"the submitted file is not a readable notebook ({type(error).__name__}), "
                                               "so it was graded as empty: every test scores 0")
        return self.from_notebook_node(notebook, resources=resources, **kw)


def is_test_cell(cell) -> bool:
    """An autograded test cell: graded, not an answer, code."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_setup_cell(cell) -> bool:
    """A read-only code cell that is neither graded nor an answer: it sets up what the tests use."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("locked")) and not meta.get("grade") and not meta.get("solution")


def imported_modules(sources: list[str]) -> list[str]:
    """The modules that ``import`` statements in ``sources`` name (code that does not parse is skipped)."""
    names = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return sorted(names)


class RestoreTestCells(NbGraderPreprocessor):
    """Rebuild the submission around the source: the student's answers and own cells, the source's everything else."""

    def preprocess(self, nb: NotebookNode, resources: dict) -> tuple[NotebookNode, dict]:
        from nbgrader.api import Gradebook

        meta = resources["nbgrader"]
        with Gradebook(meta["db_url"]) as gradebook:
            source = gradebook.find_notebook(meta["notebook"], meta["assignment"])
            answers = {cell.name for cell in source.solution_cells}
            points = {cell.name: cell.max_score for cell in source.grade_cells}
            originals = [(cell.name, cell.cell_type, cell.source, cell.locked, cell.checksum) for cell in source.source_cells]

        # Each source cell goes back where the submission has it (its "place"); one the
        # submission deleted goes right after the source cell before it.
        names = {name for name, *_ in originals} | answers
        cells, places = [], {}
        for cell in nb.cells:
            grader_meta = cell.get("metadata", {}).get("nbgrader")
            grade_id = (grader_meta or {}).get("grade_id")
            if not grader_meta:
                cells.append(cell)  # the student's own cell
            elif grade_id in names and grade_id not in places and \
                    (grade_id not in answers or grader_meta.get("solution")):
                places[grade_id] = cell
                cells.append(cell)
            else:
                if grade_id not in names:
                    self.log.warning("Ignoring cell %r: the assignment has no such graded cell", grade_id)
                cell.metadata.pop("nbgrader")
                if cell.cell_type != "code" or not (grader_meta.get("grade") or grader_meta.get("locked")):
                    cells.append(cell)  # an unlocked, ungraded cell stays as the student's own

        position = -1
        for name, cell_type, text, locked, checksum in originals:
            restored = _source_cell(name, cell_type, text, locked, checksum, points.get(name), name in answers)
            if name in places:
                position = next(i for i, cell in enumerate(cells) if cell is places[name])
                if name not in answers:
                    cells[position] = restored
            else:
                position += 1
                cells.insert(position, restored)
        nb.cells = cells
        return nb, resources


def _source_cell(name, cell_type, text, locked, checksum, points, is_answer) -> NotebookNode:
    metadata = {"nbgrader": {"grade_id": name, "grade": points is not None, "solution": is_answer, "locked": locked,
                             "checksum": checksum, "schema_version": 3, "task": False}}
    if points is not None:
        metadata["nbgrader"]["points"] = points
    maker = nbformat.v4.new_code_cell if cell_type == "code" else nbformat.v4.new_markdown_cell
    return maker(text, metadata=metadata)


class HardenedExecute(Execute):
    """nbgrader's Execute with the guard around test cells, an output cap and clean failure on hung or dead kernels."""

    max_output_bytes = Integer(1_000_000, help="Output kept per cell; the rest is dropped with a note").tag(config=True)
    interrupt_grace_seconds = Integer(10, help="After a timeout, how long the kernel has to obey the interrupt").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict, km=None):
        self._stopped: str | None = None
        self._incidents: list[str] = []
        self._tampering: list[str] = []
        self._output_bytes = 0
        self._setup_code = "\n".join(cell.source for cell in nb.cells if is_setup_cell(cell))
        self._guarded = imported_modules([cell.source for cell in nb.cells if is_test_cell(cell) or is_setup_cell(cell)])
        nb, resources = super().preprocess(nb, resources, km=km)
        nb.metadata[TAMPERING_KEY] = sorted(set(self._tampering))
        incidents = [*filter(None, [nb.metadata.get(INCIDENT_KEY)]), *self._incidents, *filter(None, [self._stopped])]
        if incidents:
            nb.metadata[INCIDENT_KEY] = "; ".join(dict.fromkeys(incidents))
        return nb, resources

    async def async_start_new_kernel_client(self):
        client = await super().async_start_new_kernel_client()
        await self._guard(f"install({self._guarded!r})")
        return client

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code":
            return cell
        if self._stopped:
            cell.outputs = [_error("NotRun", f"this cell did not run: {self._stopped}")]
            return cell
        if is_test_cell(cell):
            self._tampering += await self._guard(f"restore({self._setup_code!r})")
            if self._stopped:
                cell.outputs = [_error("NotRun", f"this cell did not run: {self._stopped}")]
                return cell
        self._output_bytes = 0
        try:
            return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        except DeadKernelError:
            self._stopped = "the kernel died (it ran out of memory or CPU time, or the code ended the process)"
            cell.outputs.append(_error("KernelDied", self._stopped))
            return cell
        except CellTimeoutError:
            # After a kernel was shut down for ignoring an interrupt, its last output never arrives.
            self._stopped = self._stopped or "a cell's output did not arrive in time, so the kernel was given up on"
            cell.outputs.append(_error("Timeout", self._stopped))
            return cell

    # nbclient's blocking wrappers are bound to its own coroutines: bind them to these.
    start_new_kernel_client = run_sync(async_start_new_kernel_client)
    execute_cell = run_sync(async_execute_cell)

    async def _guard(self, call: str) -> list[str]:
        """Call ``course.grader.guard.<call>`` in the kernel, outside IPython's input transformers."""
        reply = await self._run_quietly("", {"guard": f"__import__('course.grader.guard', fromlist=['guard']).{call}"})
        if reply is None:
            return []
        result = reply["content"].get("user_expressions", {}).get("guard", {})
        if result.get("status") != "ok":
            self._stopped = "the submission changed how the kernel runs code, so the tests could not run safely"
            return [f"the test guard could not run ({result.get('ename')}: {result.get('evalue')})"]
        try:
            value = ast.literal_eval(result.get("data", {}).get("text/plain", ""))
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, (list, str)):
            self._stopped = "the submission changed how the kernel runs code, so the tests could not run safely"
            return ["the test guard's answer was unreadable"]
        return value if isinstance(value, list) else []

    async def _run_quietly(self, code: str, expressions: dict | None = None) -> dict | None:
        """Execute ``code`` silently (no outputs recorded) and return the reply; None if the kernel stopped responding."""
        try:
            msg_id = self.kc.execute(code, silent=True, store_history=False, user_expressions=expressions or {})
            return await asyncio.wait_for(self._reply_to(msg_id), timeout=self.timeout or 60)
        except (asyncio.TimeoutError, DeadKernelError):
            self._stopped = "the kernel stopped responding"
            return None

    async def _reply_to(self, msg_id: str) -> dict:
        while True:
            msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    async def _async_handle_timeout(self, timeout, cell=None):
        self._incidents.append(f"a cell ran longer than {timeout} s and was interrupted")
        reply = await super()._async_handle_timeout(timeout, cell)
        try:
            msg_id = self.kc.kernel_info()
            await asyncio.wait_for(self._reply_to(msg_id), timeout=self.interrupt_grace_seconds)
        except asyncio.TimeoutError:
            self._stopped = f"a cell ran longer than {timeout} s and did not stop when interrupted, so the kernel was shut down"
            self.log.error("Kernel ignored the interrupt; shutting it down")
            await ensure_async(self.km.shutdown_kernel(now=True))
        return reply

    def output(self, outs, msg, display_id, cell_index):
        size = len(json.dumps(msg.get("content", {}), default=str))
        if self._output_bytes > self.max_output_bytes:
            return None
        self._output_bytes += size
        if self._output_bytes > self.max_output_bytes:
            note = nbformat.v4.new_output("stream", name="stdout",
                                          text=f"\n[output cut by the grader after {self.max_output_bytes:,} bytes]\n")
            outs.append(note)
            return note
        return super().output(outs, msg, display_id, cell_index)


def _error(name: str, message: str) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=name, evalue=message, traceback=[f"{name}: {message}"])


class HideHiddenTests(NbGraderPreprocessor):
    """For feedback: show each test's outcome and message, never hidden test code or tracebacks."""

    def preprocess_cell(self, cell: NotebookNode, resources: dict, cell_index: int):
        if not is_test_cell(cell):
            return cell, resources
        had_hidden = bool(HIDDEN_BLOCK.search(cell.source))
        cell.source = HIDDEN_BLOCK.sub("# (hidden tests ran here)\n", cell.source)
        for output in cell.get("outputs", []):
            if output.output_type != "error":
                continue
            if output.ename == "CheckFailed" or not had_hidden:
                message = f"{output.ename}: {output.evalue}"
            else:
                message = (f"{output.ename} raised while the tests ran (details hidden: they could show a hidden test). "
                           "Run the visible self-check and your own examples to find it.")
            output.traceback = [message]
        return cell, resources
