"""nbgrader preprocessors that make grading hold up against broken or hostile submissions.

``nbgrader_config.py`` puts them in nbgrader's pipelines, so plain ``nbgrader autograde`` and
``nbgrader generate_feedback`` use them as well as ``course grade``:

- ``TolerantNotebookExporter`` (reading): a submission that is not a readable notebook is
  graded as an empty one (every test scores 0) with the reason recorded; cell ids that are
  missing, repeated or malformed are replaced, so nbformat never refuses the notebook.
- ``RestoreTestCells`` (before execution): the submission keeps only its answers' text and
  its own cells; every test cell, read-only cell and graded cell, and the nbgrader metadata
  of every cell, comes from the gradebook's copy of the source, whether the student deleted,
  edited, duplicated, stripped or forged it. So no submission can make nbgrader stop the run
  (an unknown metadata version, a repeated grade id) for the students after it.
- ``HardenedExecute`` (execution): the kernel runs in the sandbox with ``course.grader.guard``
  installed before the submission's first cell; before every test cell the guard puts the
  test machinery back and the read-only setup cells run again, so the names tests use
  (``check_equal``, ``np``, ...) are the real ones; a test cell that could not run safely
  (code of the submission still running, the machinery changed while it ran, a statement
  that did not run, no signed answer from the guard) scores 0 and says why. Output is
  capped; a cell that times out and ignores the interrupt, or a kernel that dies, ends
  execution with a readable error in every cell that did not run. A failure before the
  submission's first cell (the kernel or the guard cannot start) raises ``GraderFault``:
  that submission gets no grade, never a zero.
- ``HideHiddenTests`` (feedback): students see each test's name, points, outcome and
  message, never the hidden tests' code or tracebacks.
"""
from __future__ import annotations

import ast
import asyncio
import hmac
import json
import re
import secrets
import sys

import nbformat
from jupyter_core.utils import ensure_async, run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbconvert.exporters import NotebookExporter
from nbformat.corpus.words import generate_corpus_id
from nbformat.notebooknode import NotebookNode
from traitlets import Integer

from course.grader import GraderFault, guard
from nbgrader.preprocessors import Execute, NbGraderPreprocessor

TAMPERING_KEY = "course_tampering"  # notebook metadata: what the guard found the submission had changed
INCIDENT_KEY = "course_incident"    # notebook metadata: why execution stopped early, or which tests could not run safely
NOT_SAFE = "TestsNotSafe"           # the error a test cell gets when it could not run safely
GRADER_ERRORS = frozenset({NOT_SAFE, "NotRun", "KernelDied", "Timeout"})  # errors the grader writes: shown as they are
CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat 4.5's rule for cell ids
HIDDEN_BLOCK = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


class TolerantNotebookExporter(NotebookExporter):
    """Read a submission; one that is not a readable notebook becomes an empty notebook with the reason attached."""

    def from_file(self, file_stream, resources=None, **kw):
        try:
            notebook = nbformat.read(file_stream, as_version=4)
            repair_cells(notebook)
        except Exception as error:  # noqa: BLE001 - nbformat raises many unrelated types for broken files
            notebook = nbformat.v4.new_notebook()
            notebook.metadata[INCIDENT_KEY] = (f"the submitted file is not a readable notebook ({type(error).__name__}), "
                                               "so it was graded as empty: every test scores 0")
        return self.from_notebook_node(notebook, resources=resources, **kw)


def repair_cells(notebook: NotebookNode) -> None:
    """Give every cell the parts nbformat requires: a dict of metadata and an id that is well formed and its own."""
    if notebook.nbformat_minor < 5:
        notebook.nbformat_minor = 5
    seen = set()
    for cell in notebook.cells:
        if not isinstance(cell.get("metadata"), dict):
            cell["metadata"] = NotebookNode()
        cell_id = cell.get("id")
        if not isinstance(cell_id, str) or not CELL_ID.match(cell_id) or cell_id in seen:
            cell_id = cell["id"] = generate_corpus_id()
        seen.add(cell_id)


def is_test_cell(cell) -> bool:
    """An autograded test cell: graded, not an answer, code."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def is_setup_cell(cell) -> bool:
    """A read-only code cell that is neither graded nor an answer: it sets up what the tests use."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("locked")) and not meta.get("grade") and not meta.get("solution")


def _absolute_imports(sources: list[str]):
    """Every ``import`` and absolute ``from ... import`` statement in ``sources`` (code that does not parse is skipped)."""
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.module and not node.level):
                yield node


def imported_modules(sources: list[str]) -> list[str]:
    """The modules that ``import`` statements in ``sources`` name (code that does not parse is skipped)."""
    names = set()
    for node in _absolute_imports(sources):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            names.add(node.module)
    return sorted(names)


def imported_names(sources: list[str]) -> list[list]:
    """What the ``import`` statements in ``sources`` bind: ``[name, module, attribute or None]`` for each name."""
    names = []
    for node in _absolute_imports(sources):
        if isinstance(node, ast.Import):
            names += [[alias.asname, alias.name, None] if alias.asname else [alias.name.split(".")[0]] * 2 + [None]
                      for alias in node.names]
        else:
            names += [[alias.asname or alias.name, node.module, alias.name] for alias in node.names if alias.name != "*"]
    return names


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
        types = {name: cell_type for name, cell_type, *_ in originals}
        cells, places = [], {}
        for cell in nb.cells:
            if "nbgrader" not in cell.metadata:
                cells.append(cell)  # the student's own cell
                continue
            grader_meta = cell.metadata.pop("nbgrader")
            grader_meta = grader_meta if isinstance(grader_meta, dict) else {}
            grade_id = grader_meta.get("grade_id")
            grade_id = grade_id if isinstance(grade_id, str) else None
            if grade_id in types and grade_id not in places and cell.cell_type == types[grade_id] and \
                    (grade_id not in answers or grader_meta.get("solution")):
                places[grade_id] = cell
                cells.append(cell)
                continue
            if grade_id not in types:
                self.log.warning("Ignoring cell %r: the assignment has no such graded cell", grade_id)
            if cell.cell_type != "code" or not (grader_meta.get("grade") or grader_meta.get("locked")):
                cells.append(cell)  # an unlocked, ungraded cell (a copy, say) stays as the student's own

        position = -1
        for name, cell_type, text, locked, checksum in originals:
            restored = _source_cell(name, cell_type, text, locked, checksum, points.get(name), name in answers)
            if name in places:
                position = next(i for i, cell in enumerate(cells) if cell is places[name])
                if name in answers:
                    places[name].metadata["nbgrader"] = restored.metadata["nbgrader"]  # the answer's text, the source's metadata
                else:
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
        self._not_safe: list[str] = []
        self._output_bytes = 0
        self._after: tuple[int, str] | None = None
        setup = [cell.source for cell in nb.cells if is_setup_cell(cell)]
        tests = [(index, cell.source) for index, cell in enumerate(nb.cells) if is_test_cell(cell)]
        self._setup_code = "\n".join(setup)
        self._test_numbers = {index: number for number, (index, _) in enumerate(tests)}
        self._guard_config = {"modules": imported_modules(setup + [source for _, source in tests]),
                              "names": imported_names(setup), "tests": [source for _, source in tests]}
        nb, resources = super().preprocess(nb, resources, km=km)
        nb.metadata[TAMPERING_KEY] = sorted(set(self._tampering))
        incidents = [*filter(None, [nb.metadata.get(INCIDENT_KEY)]), *self._incidents, *filter(None, [self._stopped])]
        if self._not_safe:
            incidents.append(f"{len(self._not_safe)} test cell{'s' if len(self._not_safe) > 1 else ''} could not run "
                             f"safely and scored 0 ({'; '.join(dict.fromkeys(self._not_safe))})")
        if incidents:
            nb.metadata[INCIDENT_KEY] = "; ".join(dict.fromkeys(incidents))
        return nb, resources

    async def async_start_new_kernel(self, **kwargs):
        try:
            await super().async_start_new_kernel(**kwargs)
        except GraderFault:
            raise
        except Exception as error:  # noqa: BLE001 - whatever stops a kernel from starting, no submission code has run
            raise _kernel_fault(error) from error

    async def async_start_new_kernel_client(self):
        try:
            client = await super().async_start_new_kernel_client()
        except GraderFault:
            raise
        except Exception as error:  # noqa: BLE001 - as above: the kernel never answered, no submission code has run
            raise _kernel_fault(error) from error
        await self._install_guard()
        return client

    async def _install_guard(self) -> None:
        """Load the guard into the fresh kernel, before any cell of the submission; a failure is the grader's."""
        self._key = secrets.token_bytes(32)
        config = {**self._guard_config, "key": self._key.hex()}
        reply = await self._run_quietly("", {"guard": f"__import__('course.grader.guard', fromlist=['install']).install({config!r})"})
        result = (reply or {}).get("content", {}).get("user_expressions", {}).get("guard", {})
        if result.get("status") == "ok" and result.get("data", {}).get("text/plain") == "'installed'":
            return
        cause = f"{result.get('ename')}: {result.get('evalue')}" if result.get("status") == "error" else \
            (self._stopped or "the kernel's answer was empty")
        raise GraderFault(f"the test guard could not start in the grading kernel ({cause}); no code of the submission "
                          f"had run. The kernel imports the course package the grader runs ({guard.__file__}): check "
                          "that it imports in this environment (`python -c 'import course.grader.guard'`) and that "
                          "`course verify` passes on one notebook")

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        if cell.cell_type != "code":
            return cell
        if self._stopped:
            cell.outputs = [_error("NotRun", f"this cell did not run: {self._stopped}")]
            return cell
        number = self._test_numbers.get(cell_index)
        if number is None:
            return await self._execute(cell, cell_index, execution_count, store_history)
        nonce = secrets.token_hex(16)
        verdict = await self._ask_guard(self._setup_code, self._trigger("before", number, nonce))
        if self._stopped:
            cell.outputs = [_error("NotRun", f"this cell did not run: {self._stopped}")]
            return cell
        if verdict is None:
            return self._not_run_safely(cell, ["the test guard did not answer (the submission changed how the kernel runs code)"])
        _, changed, running = verdict
        self._tampering += changed
        if running:
            return self._not_run_safely(cell, running)
        source, execute = cell.source, self.kc.execute
        self._after = (cell_index, self._trigger("after", number, nonce))
        cell.source = source + guard.marker(nonce)
        self.kc.execute = lambda code, **kwargs: execute(
            code, user_expressions={"guard": guard.trigger_expression(self._after[1])}, **kwargs)
        try:
            return await self._execute(cell, cell_index, execution_count, store_history)
        finally:
            cell.source = source
            del self.kc.execute
            self._after = None

    async def _execute(self, cell, cell_index, execution_count, store_history):
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
    start_new_kernel = run_sync(async_start_new_kernel)
    start_new_kernel_client = run_sync(async_start_new_kernel_client)
    execute_cell = run_sync(async_execute_cell)

    def on_cell_executed(self, **kwargs):
        """After a test cell ran without an error: it counts only if the guard confirms it ran safely, as written."""
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        if self._after is None or self._after[0] != kwargs["cell_index"] or content.get("status") != "ok":
            return
        verdict = self._verified(content.get("user_expressions", {}).get("guard", {}), self._after[1])
        if verdict is None:
            self._not_run_safely(kwargs["cell"], ["the test guard did not confirm that the test ran as written"])
            return
        _, changed, ran = verdict
        problems = [*changed, *([] if ran else ["not every statement of the test ran as written"])]
        if problems:
            self._tampering += problems
            self._not_run_safely(kwargs["cell"], problems)

    def _not_run_safely(self, cell, problems: list[str]):
        """Score a test cell 0: replace its outputs with the reason."""
        self._not_safe += problems
        cell.outputs = [_error(NOT_SAFE, "the tests could not run safely, so this cell scores 0: " + "; ".join(problems))]
        return cell

    def _trigger(self, phase: str, number: int, nonce: str) -> str:
        body = f"{phase}-{number}-{nonce}"
        return f"{body}-{guard.sign(self._key, body)}"

    async def _ask_guard(self, code: str, trigger: str) -> tuple | None:
        """Run ``code`` quietly, then the guard's check ``trigger``; its verified answer, or None."""
        reply = await self._run_quietly(code, {"guard": guard.trigger_expression(trigger)})
        if reply is None:
            return None
        return self._verified(reply["content"].get("user_expressions", {}).get("guard", {}), trigger)

    def _verified(self, result: dict, trigger: str) -> tuple | None:
        """The guard's answer in a user-expression ``result``, if it is the answer to ``trigger`` and its signature holds."""
        if result.get("status") != "ok":
            return None
        try:
            text = ast.literal_eval(result.get("data", {}).get("text/plain", ""))
            answer, _, signature = text.rpartition("|")
            if not hmac.compare_digest(guard.sign(self._key, answer), signature):
                return None
            verdict = ast.literal_eval(answer)
        except (ValueError, SyntaxError, TypeError, AttributeError):
            return None
        return verdict if isinstance(verdict, tuple) and len(verdict) == 3 and verdict[0] == trigger else None

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


def _kernel_fault(error: Exception) -> GraderFault:
    return GraderFault(f"the grading kernel did not start ({type(error).__name__}: {error}); no code of the submission "
                       f"had run. Check that `{sys.executable} -m ipykernel_launcher --version` works and that the "
                       "sandbox's limits (SandboxedKernelManager.* in nbgrader_config.py) leave Python room to start")


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
            if output.ename == "CheckFailed" or output.ename in GRADER_ERRORS or not had_hidden:
                message = f"{output.ename}: {output.evalue}"
            else:
                message = (f"{output.ename} raised while the tests ran (details hidden: they could show a hidden test). "
                           "Run the visible self-check and your own examples to find it.")
            output.traceback = [message]
        return cell, resources
