"""A real, throwaway PostgreSQL cluster for the tests and `make load`: Debian's server binaries, initdb in a
temporary folder, listening on 127.0.0.1 only, started once per test process and removed after.

The server refuses to run as root; as root, the cluster belongs to the ``postgres`` user the
Debian package creates (or ``nobody``). Each test gets a database of its own."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WHY_MISSING = "PostgreSQL's server is not installed (Debian's postgresql package; .ci/run installs it)"


def server_binaries() -> Path | None:
    """The folder of initdb, pg_ctl and postgres: pg_config's, or Debian's newest version."""
    found = shutil.which("pg_config")
    if found:
        folder = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if folder and (Path(folder) / "initdb").exists():
            return Path(folder)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return debian[-1].parent if debian else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="reachable-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self._user = pwd.getpwnam(name)
                    break
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)  # type: ignore[union-attr]

    def _run(self, *command: str) -> None:
        as_user = ["runuser", "-u", self._user.pw_name, "--"] if self._user is not None else []
        result = subprocess.run([*as_user, *command], capture_output=True, text=True, check=False, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()[-2000:]}")

    def start(self) -> None:
        self._run(
            str(self.binaries / "initdb"), "-D", str(self.data), "-U", "reachable", "-A", "trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        # A throwaway cluster: no fsync (the bot's own durability is tested on SQLite's files and
        # by killing processes, not by cutting the server's power).
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off -c max_connections=200"
        self._run(
            str(self.binaries / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "log"), "-w",
            "-t", "60", "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def admin_url(self) -> str:
        return f"postgresql://reachable@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """The address of a new, empty database."""
        name = f"t{os.getpid()}_{next(self._names)}"
        deadline = time.monotonic() + 60
        while True:
            try:
                self._run(str(self.binaries / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "reachable",
                          name)  # fmt: skip
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        return f"postgresql://reachable@127.0.0.1:{self.port}/{name}"


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError(WHY_MISSING)
    server = PostgresServer(binaries)
    try:
        server.start()
        yield server
    finally:
        server.stop()
