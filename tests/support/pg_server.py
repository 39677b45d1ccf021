"""A throwaway PostgreSQL server for tests and benchmarks.

Debian's server binaries refuse to run as root, so as root every command runs through
``runuser -u postgres``; the data and socket directories live in a fresh world-readable
temp dir that the postgres user can reach. Durability is off (fsync, full-page writes):
this server only ever holds test data.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_pg_bin() -> Path:
    """The directory of ``pg_ctl``: $PG_BIN, Debian's newest /usr/lib/postgresql/*/bin, or PATH."""
    candidates = [os.environ.get("PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))[::-1]
    on_path = shutil.which("pg_ctl")
    candidates.append(str(Path(on_path).parent) if on_path else "")
    for candidate in candidates:
        if candidate and (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install them "
        "(Debian: apt-get install -y postgresql) or set PG_BIN"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """Start with ``start()``, stop with ``stop()`` (or use it as a context manager)."""

    def __init__(self, user: str = "postgres"):
        self.bin = find_pg_bin()
        self.user = user
        self.port: int | None = None
        self.base: Path | None = None

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, check=False, capture_output=True, text=True)
        if result.returncode:
            log = (self.base / "server.log").read_text() if self.base and (self.base / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr or result.stdout}\n{log[-2000:]}")

    def start(self) -> ThrowawayPostgres:
        self.base = Path(tempfile.mkdtemp(prefix="self-learning-pg-", dir="/tmp"))
        self.base.chmod(0o755)
        if self.as_root:
            shutil.chown(self.base, user=self.user)
        data = self.base / "data"
        self._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        for attempt in range(5):
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
            )
            try:
                self._run("pg_ctl", "-D", str(data), "-l", str(self.base / "server.log"), "-w", "-o", options, "start")
                return self
            except RuntimeError:
                if attempt == 4:
                    self.stop()
                    raise
                time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.base is None:
            return
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database, empty or a copy of ``template`` (which must have no open connection),
        and return its URL."""
        import psycopg
        from psycopg import sql

        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)
        return self.url(name)

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
