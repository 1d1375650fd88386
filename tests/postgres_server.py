"""A real, throw-away PostgreSQL server for tests: initdb + pg_ctl on a temp folder and a free port.

Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). The server binaries
come from PATH or ``/usr/lib/postgresql/<version>/bin`` (Debian's postgresql package).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

#: The password of the test server's superuser: tests check it never shows up in output.
PASSWORD = "pg-canary-5e1d9a"
USER = "crmsync"


def find_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    return next((Path(f) for f in folders if (Path(f) / "initdb").exists()), None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    """Start with :meth:`start`, make databases with :meth:`new_database`, :meth:`stop` at the end."""

    def __init__(self, binaries: Path, fsync: bool = False) -> None:
        self.binaries = binaries
        #: Tests run without fsync (fast, nothing to survive); a benchmark measures real durability.
        self.fsync = fsync
        self.folder = Path(tempfile.mkdtemp(prefix="crmsync-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0

    def _run(self, *command: str) -> None:
        argv = [str(self.binaries / command[0]), *command[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        """initdb (password auth on TCP), then start the server and wait until it accepts connections."""
        password_file = self.folder / "pw"
        password_file.write_text(PASSWORD)
        if self._as_postgres:
            shutil.chown(self.folder, "postgres")
            shutil.chown(password_file, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", USER, "--pwfile", str(password_file), "-A", "scram-sha-256",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        if not self.fsync:
            options += " -c fsync=off -c synchronous_commit=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def url(self, database: str = "postgres") -> str:
        """A connection URL with the password in it (as a user's secret URL would be)."""
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and delete its folder."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
