"""A throwaway PostgreSQL server for the tests: its own data folder, reachable only by a Unix socket.

Debian's ``postgresql`` package provides the server programs (``.ci/run`` installs it). The
server refuses to run as root, so when the tests run as root it runs as the package's
``postgres`` account. Nothing listens on the network.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "install PostgreSQL's server programs (Debian/Ubuntu: sudo apt-get install postgresql)"


def server_programs() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``, the newest installed version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]), reverse=True)
    if found:
        return Path(found[0]).parent
    if which := shutil.which("initdb"):
        return Path(which).parent
    raise RuntimeError(f"the PostgreSQL tests need a server: {INSTALL_HINT}")


class ThrowawayPostgres:
    """A PostgreSQL server in a temporary folder, started by ``start`` and removed by ``stop``."""

    def __init__(self) -> None:
        self.programs = server_programs()
        self.folder = Path(tempfile.mkdtemp(prefix="course-postgres-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.socket = self.folder / "socket"
        self.account = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        self.user = "course"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.account, "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")

    def start(self) -> "ThrowawayPostgres":
        """Create the cluster (trust authentication for its one user) and start it on a Unix socket only."""
        self.socket.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.folder, self.account)
            shutil.chown(self.socket, self.account)
        self._run(str(self.programs / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        self._run(str(self.programs / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "start",
                  "-o", f"-c listen_addresses='' -k {self.socket} -c fsync=off -c full_page_writes=off -c max_connections=200")
        return self

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) of ``database`` on this server."""
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name``; return its URL."""
        import psycopg

        with psycopg.connect(host=str(self.socket), user=self.user, dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        try:
            self._run(str(self.programs / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
