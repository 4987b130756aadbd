"""The notebooks in a real browser: Debian's chromium, driven by playwright, in JupyterLab.

Each xdist worker starts one JupyterLab on loopback, in student mode exactly as Binder sets
it up (the repository's ``postBuild`` run against a fresh Jupyter config folder), serving a
copy of ``release/`` and every notebook solved. For every release notebook the test clicks
**Run -> Run All Cells** and checks that the first error is an exercise's
``NotImplementedError``, never an import, data or model-loading error. Every solved notebook
must run with no error and show its figures (at least two, each drawn as an image in the
page), and nbgrader's **Validate** button must report success on one. Screenshots go to
``test-artifacts/browser/`` (kept by CI), one per notebook, one per figure as JupyterLab shows
it, and one of the Validate verdict, taken whether the test passes or not.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import nbgrader
import psutil
import pytest

from conftest import REPO
from course.assignments import is_exercise_solution, notebook_path, solved_release

try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
    PLAYWRIGHT_MISSING = None
except ImportError as missing:  # the browser fixture fails with the fix
    PLAYWRIGHT_MISSING = missing

ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
# Validate runs a solved notebook once more: one that runs in seconds (docs/benchmarks.md).
VALIDATED_ASSIGNMENT = "01-what-is-ai-engineering"
# Issue #14: every notebook shows at least two figures where a learner would rather look than read.
FIGURES_PER_NOTEBOOK = 2
# Generous: the machine may be grading notebooks in other workers at the same time.
SERVER_START_SECONDS = 120
KERNEL_READY_MS = 120_000
RUN_ALL_MS = 300_000
VALIDATE_MS = 300_000
# Test-only JupyterLab settings, on top of student mode: no news prompt over the notebook,
# and every cell kept in the page (no virtual scrolling) so the page shows all prompts.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
# True once every cell that Run All queued has finished or been skipped after an error.
RUN_ALL_FINISHED = """() => {
    const prompts = Array.from(document.querySelectorAll('.jp-NotebookPanel .jp-InputPrompt'), p => p.innerText);
    return prompts.some(p => /\\d/.test(p)) && !prompts.some(p => p.includes('*'));
}"""


def release_assignments() -> list[str]:
    """Every assignment with a student notebook ``release/NN-slug/NN-slug.ipynb``."""
    return sorted(folder.name for folder in (REPO / "release").iterdir()
                  if notebook_path(REPO, "release", folder.name).is_file())


@dataclass
class JupyterLab:
    """A running JupyterLab server: where it listens, its token and the folder it serves."""

    url: str
    token: str
    root: Path
    process: subprocess.Popen
    log: Path

    def request(self, method: str, path: str) -> tuple[int, str]:
        """Call the server with the token; returns the HTTP status and the body."""
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def page_url(self, relative_path: str) -> str:
        """The JupyterLab address that opens ``relative_path`` alone (``reset`` drops earlier tabs)."""
        return f"{self.url}/lab/tree/{relative_path}?reset&token={self.token}"

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def shut_down_kernels(self) -> None:
        """End every notebook session and its kernel, so the next notebook starts fresh."""
        status, body = self.request("GET", "/api/sessions")
        assert status == 200, f"cannot list the lab's sessions: HTTP {status} {body}"
        for session in json.loads(body):
            self.request("DELETE", f"/api/sessions/{session['id']}")


@dataclass
class FirstError:
    """The first error output of an executed notebook, and the cell that shows it."""

    cell_index: int
    ename: str
    evalue: str
    traceback: str


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lab_environment(folder: Path, token: str) -> dict[str, str]:
    """The environment of a Binder-like lab: this venv first on PATH, Jupyter and IPython state in ``folder``."""
    environment = dict(os.environ)
    environment.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}",
        "JUPYTER_CONFIG_DIR": str(folder / "config"),
        "JUPYTER_DATA_DIR": str(folder / "data"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "IPYTHONDIR": str(folder / "ipython"),
        "JUPYTER_TOKEN": token,
    })
    return environment


def set_up_student_mode(environment: dict[str, str]) -> None:
    """Run the repository's ``postBuild`` as Binder does, then add the test-only lab settings."""
    result = subprocess.run([str(REPO / "postBuild")], cwd=REPO, env=environment, capture_output=True, text=True)
    assert result.returncode == 0, f"postBuild failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    user_settings = Path(environment["JUPYTER_CONFIG_DIR"]) / "lab" / "user-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = user_settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def copy_notebooks(root: Path) -> None:
    """Fill the lab's folder: ``release/`` as handed out, and ``solved/`` holding each release notebook
    with every answer written in, as a student who solved it all would hand it in."""
    shutil.copytree(REPO / "release", root / "release")
    for assignment in release_assignments():
        solved = root / "solved" / assignment
        shutil.copytree(REPO / "release" / assignment, solved)
        nbformat.write(solved_release(REPO, assignment), solved / f"{assignment}.ipynb")


def wait_until_serving(lab: JupyterLab) -> None:
    """Return once ``/api/status`` answers; fail with the server's log if it exits or never answers."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if lab.process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {lab.process.returncode}:\n{lab.log_tail()}", pytrace=False)
        try:
            if lab.request("GET", "/api/status")[0] == 200:
                return
        except OSError:  # not listening yet
            pass
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_SECONDS} s:\n{lab.log_tail()}", pytrace=False)


def stop_lab(lab: JupyterLab) -> None:
    """Shut the server down through its API (it ends its kernels), then make sure no process of it is left."""
    try:
        server = psutil.Process(lab.process.pid)
        processes = [server, *server.children(recursive=True)]  # kernels run in sessions of their own
    except psutil.NoSuchProcess:  # the server died on its own; the failing test says so
        processes = []
    try:
        lab.request("POST", "/api/shutdown")
    except OSError:  # already gone
        pass
    _, still_running = psutil.wait_procs(processes, timeout=30)
    for process in still_running:
        process.kill()
    psutil.wait_procs(still_running, timeout=10)
    lab.process.wait()


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory):
    """One student-mode JupyterLab per xdist worker, on loopback with a random token; stopped at the end."""
    folder = tmp_path_factory.mktemp("jupyterlab")
    root = folder / "notebooks"
    copy_notebooks(root)
    token = secrets.token_hex(24)
    environment = lab_environment(folder, token)
    set_up_student_mode(environment)
    port = free_port()
    log = folder / "server.log"
    with log.open("w") as log_file:
        # The repository root is the working folder, as on Binder: Validate reads nbgrader_config.py from it.
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
             "--LabApp.extension_manager=readonly"],  # offline: never ask PyPI about lab extensions
            cwd=REPO, env=environment, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    lab = JupyterLab(f"http://127.0.0.1:{port}", token, root, process, log)
    try:
        wait_until_serving(lab)
        yield lab
    finally:
        stop_lab(lab)


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under playwright; fails with the fix when either is missing."""
    if PLAYWRIGHT_MISSING is not None:
        pytest.fail(f"python playwright is missing ({PLAYWRIGHT_MISSING}): run `make setup` "
                    "(it is pinned in requirements.txt)", pytrace=False)
    if not CHROMIUM.is_file():
        pytest.fail(f"Debian's chromium is missing ({CHROMIUM}): run `sudo apt-get install chromium`", pytrace=False)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, jupyter_lab: JupyterLab):
    """A fresh browser tab; afterwards the tab is closed and the lab's kernels are shut down."""
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()
    jupyter_lab.shut_down_kernels()


def open_notebook(page: Page, lab: JupyterLab, relative_path: str) -> None:
    """Open the notebook in JupyterLab and wait until its kernel is started and idle."""
    kernel_name = nbformat.read(lab.root / relative_path, as_version=4).metadata.kernelspec.display_name
    page.goto(lab.page_url(relative_path))
    idle = re.compile(rf"^{re.escape(kernel_name)} \| Idle$")
    page.locator(".jp-StatusBar-TextItem").filter(has_text=idle).wait_for(timeout=KERNEL_READY_MS)


def run_all_cells(page: Page) -> None:
    """Click Run -> Run All Cells, as a student would, and wait until the run ends (it stops at the first error)."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(RUN_ALL_FINISHED, timeout=RUN_ALL_MS, polling=250)


def save_and_read(page: Page, path: Path) -> nbformat.NotebookNode:
    """Save the notebook from the browser (toolbar button) and read what was written to disk."""
    page.locator(".jp-NotebookPanel-toolbar [data-jp-item-name='save']").click()
    page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached", timeout=60_000)
    return nbformat.read(path, as_version=4)


def cell_in_page(page: Page, cell_index: int) -> Locator:
    """The notebook cell at ``cell_index`` as shown in the page."""
    return page.locator(".jp-NotebookPanel-notebook .jp-Cell").nth(cell_index)


def plain(text: str) -> str:
    """``text`` without terminal colour codes (tracebacks are coloured)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def first_error(notebook: nbformat.NotebookNode) -> FirstError | None:
    """The first error output in the notebook, or None when no cell failed."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                return FirstError(index, output.ename, output.evalue, plain("\n".join(output.traceback)))
    return None


def raising_cell(notebook: nbformat.NotebookNode, error: FirstError) -> int:
    """The index of the cell whose code raised ``error``: the innermost ``Cell In[n]`` frame, else the failing cell."""
    executed = {cell.get("execution_count"): index for index, cell in enumerate(notebook.cells)
                if cell.cell_type == "code" and cell.get("execution_count") is not None}
    counts = re.findall(r"Cell In\[(\d+)\]", error.traceback)
    return executed.get(int(counts[-1]), error.cell_index) if counts else error.cell_index


def describe_cell(notebook: nbformat.NotebookNode, index: int) -> str:
    """A cell as a maintainer finds it: its index, nbgrader grade id (if any) and first line."""
    cell = notebook.cells[index]
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else "(empty)"
    return f"cell {index}" + (f" [{grade_id}]" if grade_id else "") + f" `{first_line}`"


def cell_to_show(notebook: nbformat.NotebookNode) -> int:
    """The cell a screenshot should show: the first error's, else the last cell with output."""
    error = first_error(notebook)
    if error is not None:
        return error.cell_index
    return max((index for index, cell in enumerate(notebook.cells) if cell.get("outputs")), default=0)


def run_in_lab(page: Page, lab: JupyterLab, relative_path: str, screenshot: Path) -> nbformat.NotebookNode:
    """Open a notebook, Run All, save it and return it as saved; the screenshot (of the first error, or the
    last output) is taken even when a step fails."""
    try:
        open_notebook(page, lab, relative_path)
        run_all_cells(page)
        notebook = save_and_read(page, lab.root / relative_path)
        cell_in_page(page, cell_to_show(notebook)).scroll_into_view_if_needed()
        return notebook
    finally:
        page.screenshot(path=screenshot, full_page=True)


def test_every_release_notebook_is_found():
    found = release_assignments()
    assert len(found) >= 8, f"expected at least 8 notebooks in release/NN-slug/NN-slug.ipynb, found {found}"


def test_the_lab_runs_in_student_mode_with_validate(jupyter_lab):
    for instructor_page in ("/formgrader", "/formgraders", "/courses", "/assignments"):
        status, _ = jupyter_lab.request("GET", instructor_page)
        assert status == 404, f"{instructor_page} answers HTTP {status}: the instructor tools are on in student mode"
    status, body = jupyter_lab.request("GET", f"/nbgrader_version?version={nbgrader.__version__}")
    assert (status, json.loads(body)) == (200, {"success": True}), "the Validate server extension is not serving"
    status, lab_page = jupyter_lab.request("GET", "/lab")
    assert status == 200, f"/lab answers HTTP {status}"
    page_config = json.loads(re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                                       lab_page, re.DOTALL).group(1))
    disabled = set(page_config["disabledExtensions"])
    assert {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment"} <= disabled, disabled
    assert "@jupyter/nbgrader:validate-assignment" not in disabled


@pytest.mark.parametrize("assignment", release_assignments())
def test_release_notebook_stops_first_at_an_exercise(assignment, page, jupyter_lab):
    relative_path = f"release/{assignment}/{assignment}.ipynb"
    notebook = run_in_lab(page, jupyter_lab, relative_path, ARTIFACTS / f"release-{assignment}.png")

    error = first_error(notebook)
    assert error is not None, (f"{relative_path}: Run All finished without any error, "
                               "but every unanswered exercise should raise NotImplementedError")
    where = f"{relative_path}, {describe_cell(notebook, error.cell_index)}"
    assert error.ename == "NotImplementedError", (
        f"{where}: the first error is {error.ename}: {error.evalue}, "
        f"not an exercise's NotImplementedError\n{error.traceback}")
    source_index = raising_cell(notebook, error)
    source = notebook.cells[source_index]
    assert is_exercise_solution(source) and "raise NotImplementedError" in source.source, (
        f"{where}: NotImplementedError came from {describe_cell(notebook, source_index)}, "
        f"which is not an exercise's answer cell\n{error.traceback}")
    shown = cell_in_page(page, error.cell_index).locator(".jp-OutputArea-output")
    expect(shown).to_contain_text("NotImplementedError")


@pytest.mark.parametrize("assignment", release_assignments())
def test_solved_notebook_runs_without_error_and_shows_its_figures(assignment, page, jupyter_lab):
    relative_path = f"solved/{assignment}/{assignment}.ipynb"
    notebook = run_in_lab(page, jupyter_lab, relative_path, ARTIFACTS / f"solved-{assignment}.png")
    error = first_error(notebook)
    assert error is None, (f"{relative_path}, {describe_cell(notebook, error.cell_index)}: "
                           f"{error.ename}: {error.evalue}\n{error.traceback}")
    not_run = [index for index, cell in enumerate(notebook.cells)
               if cell.cell_type == "code" and cell.get("execution_count") is None]
    assert not_run == [], f"{relative_path}: Run All did not run cells {not_run}"

    saved = sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))
    shown = page.locator(".jp-NotebookPanel-notebook .jp-RenderedImage img")
    assert saved >= FIGURES_PER_NOTEBOOK and shown.count() == saved, (
        f"{relative_path}: {saved} figures in the saved notebook, {shown.count()} shown in the page; "
        f"every notebook needs at least {FIGURES_PER_NOTEBOOK}")
    for number in range(saved):
        figure = shown.nth(number)
        figure.scroll_into_view_if_needed()
        assert figure.evaluate("image => image.complete && image.naturalWidth > 0"), (
            f"{relative_path}: figure {number + 1} is not drawn in the page")
        figure.screenshot(path=ARTIFACTS / f"figure-{assignment}-{number + 1}.png")


def test_solved_notebook_validates(page, jupyter_lab):
    relative_path = f"solved/{VALIDATED_ASSIGNMENT}/{VALIDATED_ASSIGNMENT}.ipynb"
    open_notebook(page, jupyter_lab, relative_path)
    page.get_by_role("button", name="Validate").click()
    dialog = page.locator(".jp-Dialog")  # the verdict, or nbgrader's "Validation failed" / "Version Mismatch"
    try:
        dialog.wait_for(timeout=VALIDATE_MS)
    finally:
        page.screenshot(path=ARTIFACTS / f"solved-{VALIDATED_ASSIGNMENT}-validate.png", full_page=True)
    title = dialog.locator(".jp-Dialog-header").inner_text().strip()
    assert title == "Validation Results", f"{relative_path}: Validate says {title}: {dialog.inner_text()}"
    verdict = dialog.locator("#validation-message")
    expect(verdict).to_have_class(re.compile(r"\bvalidation-success\b"))
    expect(verdict).to_have_text("Success! Your notebook passes all the tests.")
