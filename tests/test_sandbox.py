import asyncio
import os
import shutil
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from course.grader import sandbox
from course.grader.grading import nbgrader_env
from conftest import REPO

TINY = "99-tiny"


def run_in_sandbox(tmp_path, *sources, **manager_settings):
    """Execute code cells in a sandboxed kernel whose working folder is ``tmp_path``; return their outputs as text."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    client = NotebookClient(notebook, timeout=60, kernel_name="python3", allow_errors=True,
                            kernel_manager_class=sandbox.SandboxedKernelManager,
                            resources={"metadata": {"path": str(tmp_path)}})
    for name, value in manager_settings.items():
        client.config.SandboxedKernelManager[name] = value
    client.execute()
    return ["".join(o.get("text", "") or o.get("evalue", "") for o in cell.outputs).strip() for cell in notebook.cells]


def test_the_kernel_sees_only_what_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTOR_SECRET_TOKEN", "do-not-leak")
    uid, source_visible, env_leak, network, writes = run_in_sandbox(
        tmp_path,
        "import os; print(os.getuid())",
        f"print(os.path.exists({str(REPO / 'source')!r}), os.path.exists({str(REPO / 'nbgrader_config.py')!r}))",
        "print(os.environ.get('INSTRUCTOR_SECRET_TOKEN'))",
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 22), timeout=1)\n    print('connected')\n"
        "except OSError as error:\n    print('no network')",
        "open('mine.txt', 'w').write('ok')\ntry:\n    open('/etc/sneaky', 'w')\nexcept OSError:\n    print('read-only')",
    )
    assert int(uid) != 0
    assert (source_visible, env_leak, network, writes) == ("False False", "None", "no network", "read-only")
    assert (tmp_path / "mine.txt").read_text() == "ok"


def test_a_fork_bomb_leaves_the_next_kernel_its_own_process_allowance(tmp_path):
    # A killed sandbox's processes take a moment to go, and the grader starts the next kernel at
    # once: while a fork bomb's children still fill their uid's process cap, a new kernel must start.
    # As root each kernel has a uid of its own; as an ordinary user every kernel runs as that user
    # in a user namespace of its own, whose process count is its own.
    async def start_bomb() -> sandbox.SandboxedKernelManager:
        manager = sandbox.SandboxedKernelManager()
        (tmp_path / "bomb").mkdir()
        await manager.start_kernel(cwd=str(tmp_path / "bomb"))
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=60)
        reply = await client.execute_interactive(
            "import os, time\nfor _ in range(3000):\n    try:\n        pid = os.fork()\n    except OSError:\n"
            "        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n", timeout=60)
        client.stop_channels()
        assert reply["content"]["status"] == "ok"
        return manager

    bomb = asyncio.run(start_bomb())
    try:
        (uid,) = run_in_sandbox(tmp_path, "import os; print(os.getuid())")
        assert int(uid) >= sandbox.SANDBOX_UID_BASE if os.geteuid() == 0 else int(uid) == os.geteuid()
    finally:
        asyncio.run(bomb.shutdown_kernel(now=True))


def test_limits_stop_runaway_memory_and_files(tmp_path):
    memory, size = run_in_sandbox(
        tmp_path,
        "try:\n    block = bytearray(3 * 2**30)\n    print('allocated')\nexcept MemoryError:\n    print('capped')",
        "try:\n    open('big', 'wb').write(bytes(20 * 2**20))\nexcept OSError:\n    pass\nimport os; print(os.path.getsize('big'))",
        memory_mb=1024, file_mb=8,
    )
    assert memory == "capped"
    assert int(size) <= 8 * 2**20


def test_missing_bubblewrap_names_the_fix(monkeypatch):
    sandbox.sandbox_problem.cache_clear()
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    try:
        assert "apt-get install bubblewrap" in sandbox.sandbox_problem()
    finally:
        sandbox.sandbox_problem.cache_clear()


@pytest.fixture
def no_bwrap_env(tmp_path):
    """An environment whose PATH has everything but bubblewrap."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("prlimit", "setpriv", "sh", "alembic"):
        found = shutil.which(tool, path=nbgrader_env()["PATH"])
        if found:
            os.symlink(found, bin_dir / tool)
    return {**nbgrader_env(), "PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}"}


def test_no_sandbox_no_grading_unless_asked(tiny_course, no_bwrap_env):
    submission = tiny_course / "submitted" / "ada" / TINY / f"{TINY}.ipynb"
    submission.parent.mkdir(parents=True)
    shutil.copy2(tiny_course / "source" / TINY / f"{TINY}.ipynb", submission)

    refused = subprocess.run([sys.executable, "-m", "course.cli", "--root", str(tiny_course), "grade", TINY],
                             capture_output=True, text=True, env=no_bwrap_env)
    assert refused.returncode == 2
    assert "refusing to grade without a sandbox" in refused.stderr and "--unsafe-no-sandbox" in refused.stderr
    assert not (tiny_course / "autograded" / "ada").exists()

    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", TINY, "--force"], cwd=tiny_course, env=no_bwrap_env, check=True,
                   capture_output=True)
    plain = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", TINY], cwd=tiny_course,
                           capture_output=True, text=True, env=no_bwrap_env)
    assert "refusing to grade without a sandbox" in plain.stdout + plain.stderr
    assert "apt-get install bubblewrap" in plain.stdout + plain.stderr

    unsafe = subprocess.run([sys.executable, "-m", "course.cli", "--root", str(tiny_course), "grade", TINY,
                             "--unsafe-no-sandbox"], capture_output=True, text=True, env=no_bwrap_env)
    assert unsafe.returncode == 0, unsafe.stdout + unsafe.stderr
    assert "3/3" in unsafe.stdout
