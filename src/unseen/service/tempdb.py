"""A throw-away PostgreSQL server for tests and benchmarks: Debian's ``postgresql`` binaries, a temporary data
directory, 127.0.0.1 and a free port, run as the ``postgres`` OS user when started by root (PostgreSQL refuses
to run as root; CI runs as root).

>>> with TemporaryPostgres() as pg:                     # doctest: +SKIP
...     url = pg.create_database("events")              # postgresql://postgres@127.0.0.1:PORT/events
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from ..exceptions import MissingDependencyError

__all__ = ["TemporaryPostgres", "find_pg_bin", "free_port"]

INSTALL_HINT = "PostgreSQL is not installed: run 'sudo apt-get install -y postgresql' (or scripts/install-data.sh --with-postgres)."


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_pg_bin() -> Path:
    """The folder with ``initdb`` and ``pg_ctl``: ``$PG_BIN``, Debian's newest ``/usr/lib/postgresql/*/bin``, or PATH."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise MissingDependencyError(INSTALL_HINT)


class TemporaryPostgres:
    """Start a PostgreSQL server in a temporary directory; :meth:`stop` (or leaving the ``with`` block) removes it.

    Parameters
    ----------
    port : int, optional
        Default: a free port.
    fsync : bool, default True
        Keep PostgreSQL's durability (the crash tests need it).
    """

    def __init__(self, port: int | None = None, *, fsync: bool = True):
        self.bin = find_pg_bin()
        self.port = port or free_port()
        self.fsync = fsync
        self.root = Path(tempfile.mkdtemp(prefix="unseen-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "postgres.log"
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise MissingDependencyError(f"No 'postgres' OS user to run the server as. {INSTALL_HINT}") from None
            self._user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.running = False

    @property
    def url(self) -> str:
        """The URL of the ``postgres`` database."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        done = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=str(self.root),
            **self._user,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")
        return done

    def start(self) -> TemporaryPostgres:
        """initdb, then pg_ctl start on 127.0.0.1 (waits until it accepts connections)."""
        for d in (self.data, self.socket_dir):
            d.mkdir()
            if self._user:
                os.chown(d, self._user["user"], self._user["group"])
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir} -c fsync={'on' if self.fsync else 'off'} "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.log), "-w", "-t", "60", "start", timeout=90
        )
        self.running = True
        return self

    def create_database(self, name: str) -> str:
        """Create a database and return its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def create_schema(self, name: str) -> str:
        """Create a schema in the ``postgres`` database and return a URL whose connections use it (``search_path``):
        an isolated, empty store in milliseconds, where a new database costs seconds."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url}?options=-csearch_path%3D{name}"

    def drop_schema(self, name: str) -> None:
        """Drop a schema made by :meth:`create_schema`, with everything in it."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

    def drop_database(self, name: str) -> None:
        """Drop a database (closing its connections)."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        """Stop the server and delete its directory (an immediate shutdown: the data are thrown away, so the
        shutdown checkpoint would only cost time)."""
        if self.running:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop", timeout=90)
            finally:
                self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryPostgres:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
