"""Run each grading kernel inside a bubblewrap sandbox with resource limits.

nbgrader executes a submission in a Jupyter kernel that, by default, runs as the
instructor: it can read ``source/`` (the hidden tests), write ``gradebook.db`` and reach the
network. ``SandboxedKernelManager`` starts the kernel with Debian's ``bwrap`` instead:

- the file system is empty but for read-only system folders, the Python installation,
  the virtual environment and the ``course`` package the grader itself runs, which the
  kernel imports (``PYTHONPATH`` names its folder, so a course folder holding its own
  ``course/`` beside a different installed one is graded with the same checks and guard
  the grader uses); the kernel's own working folder
  (the submission's ``autograded/<student>/<assignment>``) is the only writable place
  besides a private, size-capped ``/tmp``;
- no network (a new network namespace; the kernel talks to nbgrader over Unix sockets),
  a new PID namespace (every process of the submission dies with its kernel), a new
  session (no access to the instructor's terminal) and a clean environment;
- ``prlimit`` caps address space, CPU time, processes and threads, file size and open
  files; run as root, the kernel also drops to an unprivileged uid of its own, so those
  caps bind and one submission's fork bomb cannot use up another's process allowance.

nbgrader uses it through ``nbgrader_config.py`` (``Execute.kernel_manager_class``). Where
bubblewrap is missing or cannot create namespaces, starting a kernel fails with a message
that names the fix, unless the instructor sets ``unsafe_no_sandbox``.
"""
from __future__ import annotations

import functools
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode

from course.grader import GraderFault

SANDBOX_UID_BASE = 200_000  # grading as root, each kernel gets its own unprivileged uid above this
SYSTEM_FOLDERS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"]
PASSED_ENVIRONMENT = ["LANG", "LC_ALL", "TZ", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                      "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"]
INSTALL_HINT = ("install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora: `sudo dnf install bubblewrap`) "
                "and make sure user namespaces are enabled (`sysctl kernel.unprivileged_userns_clone=1` on older kernels); "
                "see docs/instructors.md")


class SandboxUnavailable(GraderFault):
    """The sandbox cannot start here; grading stops rather than run student code unconfined."""


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str | None:
    """Why kernels cannot be sandboxed on this machine, or None when they can."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    if shutil.which("prlimit") is None:
        return "prlimit (util-linux) is not installed: install util-linux"
    probe = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--", "true"]
    if os.geteuid() != 0:
        probe.insert(1, "--unshare-user")
    result = subprocess.run(probe, capture_output=True, text=True)
    if result.returncode != 0:
        return f"bubblewrap cannot create a sandbox here ({result.stderr.strip() or 'exit ' + str(result.returncode)}): {INSTALL_HINT}"
    return None


def course_package() -> Path:
    """The folder of the ``course`` package this process runs: the one every grading kernel imports too."""
    import course

    return Path(course.__file__).resolve().parent


def readable_paths(extra: list[str]) -> list[Path]:
    """What a sandboxed kernel may read: Python, the environment, the course package and ``extra``."""
    paths = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), course_package()}
    paths.update(Path(p).resolve() for p in extra)
    # Drop any path that sits inside another one.
    return sorted(p for p in paths if not any(other != p and other in p.parents for other in paths))


_kernels_started = itertools.count()


def new_sandbox_uid() -> int:
    """A uid for the next kernel this process starts, when grading as root.

    Every kernel gets a uid of its own: RLIMIT_NPROC counts the processes of a uid, and the
    processes of a killed sandbox (say, the 255 children of a fork bomb) take a moment to go,
    so a uid reused by the next kernel could leave it unable to start. The process id keeps
    concurrent grading processes apart; each cycles through 100 uids.
    """
    return SANDBOX_UID_BASE + (os.getpid() % 100_000) * 100 + next(_kernels_started) % 100


def sandbox_command(kernel_command: list[str], workdir: Path, runtime: Path, *, readable: list[Path], memory_mb: int,
                    cpu_seconds: int, processes: int, file_mb: int, tmp_mb: int, uid: int) -> list[str]:
    """The bwrap + prlimit command that runs ``kernel_command`` confined, as described in the module docstring
    (as ``uid`` when grading as root)."""
    command = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
               "--die-with-parent", "--new-session", "--clearenv"]
    root = os.geteuid() == 0
    if root:
        command += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        command += ["--unshare-user"]
    for folder in SYSTEM_FOLDERS:
        path = Path(folder)
        if path.is_symlink():
            command += ["--symlink", os.readlink(path), folder]
        elif path.is_dir():
            command += ["--ro-bind", folder, folder]
    # The private /tmp comes first: the working and runtime folders may lie under the host's /tmp.
    command += ["--proc", "/proc", "--dev", "/dev",
                "--perms", "1777", "--size", str(tmp_mb * 2**20), "--tmpfs", "/tmp",
                "--perms", "1777", "--size", str(tmp_mb * 2**20), "--tmpfs", "/dev/shm"]
    made = {*SYSTEM_FOLDERS, "/tmp", "/dev", "/proc"}
    for path in [*readable, workdir, runtime]:
        for parent in reversed(path.parents):
            if str(parent) not in made and parent != Path("/"):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
    for path in readable:
        command += ["--ro-bind", str(path), str(path)]
    command += ["--bind", str(workdir), str(workdir), "--bind", str(runtime), str(runtime), "--chdir", str(workdir)]
    environment = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
                   "MPLCONFIGDIR": "/tmp", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(course_package().parent)}
    environment.update({name: os.environ[name] for name in PASSED_ENVIRONMENT if name in os.environ})
    for name, value in environment.items():
        command += ["--setenv", name, value]
    command.append("--")
    if root:
        command += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all"]
    command += ["prlimit", f"--as={memory_mb * 2**20}", f"--cpu={cpu_seconds}", f"--nproc={processes}",
                f"--fsize={file_mb * 2**20}", "--nofile=1024", "--core=0", *kernel_command]
    return command


class SandboxedKernelManager(AsyncKernelManager):
    """A Jupyter kernel manager whose kernels run confined by bubblewrap (see the module docstring).

    The kernel spec of the notebook is ignored: the kernel is always this Python's ipykernel.
    """

    memory_mb = Integer(3072, help="Address-space cap of the kernel, in MB").tag(config=True)
    cpu_seconds = Integer(600, help="CPU-time cap of each kernel process, in seconds").tag(config=True)
    processes = Integer(256, help="Cap on processes and threads of the sandbox's uid").tag(config=True)
    file_mb = Integer(64, help="Largest file the kernel may write, in MB").tag(config=True)
    tmp_mb = Integer(256, help="Size of the kernel's private /tmp (and /dev/shm), in MB").tag(config=True)
    extra_readable = List(Unicode(), help="More folders the kernel may read (read-only)").tag(config=True)
    unsafe_no_sandbox = Bool(False, help="Run kernels unconfined, as the grader's user. Only for trusted notebooks.").tag(config=True)

    def __init__(self, **kwargs):
        kwargs["transport"] = "ipc"  # Unix sockets: the kernel has no network at all
        kwargs["kernel_name"] = "python3"  # whatever kernel the submission names
        super().__init__(**kwargs)
        self._workdir: Path | None = None
        self._runtime: Path | None = None
        self._uid = SANDBOX_UID_BASE

    async def _async_pre_start_kernel(self, **kw):
        if not self.unsafe_no_sandbox and (problem := sandbox_problem()):
            raise SandboxUnavailable(f"refusing to grade without a sandbox: {problem}. "
                                     "To grade trusted notebooks unconfined, set SandboxedKernelManager.unsafe_no_sandbox=True.")
        # The kernel runs in its own session, out of reach of a signal to bwrap's process group:
        # interrupt it with an interrupt_request message instead (ipykernel then signals itself).
        self.kernel_spec.interrupt_mode = "message"
        self._workdir = Path(kw.get("cwd") or os.getcwd()).resolve()
        self._runtime = Path(tempfile.mkdtemp(prefix="course-kernel-"))
        # Removed with this manager (or at exit) even when the kernel died and was never shut down.
        weakref.finalize(self, shutil.rmtree, self._runtime, ignore_errors=True)
        self.connection_file = str(self._runtime / "kernel.json")
        self.ip = str(self._runtime / "ipc")
        self._uid = new_sandbox_uid()
        if os.geteuid() == 0 and not self.unsafe_no_sandbox:
            for folder in (self._runtime, self._workdir):
                _give_to_sandbox(folder, self._uid)
        if self.unsafe_no_sandbox:  # the sandbox sets PYTHONPATH itself (sandbox_command)
            kw["env"] = {**(kw.get("env") or os.environ), "PYTHONPATH": str(course_package().parent)}
        return await super()._async_pre_start_kernel(**kw)

    def write_connection_file(self, **kwargs) -> None:
        """Write the connection file, readable by the sandbox's uid when grading as root."""
        super().write_connection_file(**kwargs)
        if os.geteuid() == 0 and not self.unsafe_no_sandbox:
            os.chown(self.connection_file, self._uid, self._uid)

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        """The command that starts the kernel: this Python's ipykernel, inside the sandbox."""
        # Neither Python (-P) nor IPython (--ignore-cwd) puts the working folder on sys.path: a
        # submission's folder may hold a course/ or numpy/ of its own, which must not replace the real ones.
        kernel = [sys.executable, "-P", "-m", "ipykernel_launcher", "--ignore-cwd", "-f", self.connection_file,
                  *(extra_arguments or [])]
        if self.unsafe_no_sandbox:
            return kernel
        return sandbox_command(kernel, self._workdir, self._runtime, readable=readable_paths(self.extra_readable),
                               memory_mb=self.memory_mb, cpu_seconds=self.cpu_seconds, processes=self.processes,
                               file_mb=self.file_mb, tmp_mb=self.tmp_mb, uid=self._uid)


def _give_to_sandbox(folder: Path, uid: int) -> None:
    """Let the sandbox's unprivileged ``uid`` write in ``folder`` (grading as root)."""
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, uid, uid, follow_symlinks=False)
