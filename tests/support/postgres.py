"""A private, throw-away PostgreSQL server for tests and benchmarks (real initdb + pg_ctl).

Listens on a free loopback port with password authentication; data and socket live in a temp
folder. As root, the server runs as an unprivileged user (postgres refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: run `make install` (apt-get install postgresql)"
    )


class PostgresServer:
    user = "simmate"

    def __init__(self, port: int | None = None, fsync: bool = False):
        self.bin_dir = find_bin_dir()
        self.fsync = fsync  # off (-F) is faster; crash tests need it on
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(12)
        self.base = Path(tempfile.mkdtemp(prefix="simmate-pg-"))
        self.data_dir = self.base / "data"
        self.log_file = self.base / "server.log"
        self._run_as = None
        if os.geteuid() == 0:
            self._run_as = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self._run_as)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        pwfile = self.base / "pw"
        pwfile.write_text(self.password)
        if self._run_as:
            os.chown(pwfile, pwd.getpwnam(self._run_as).pw_uid, -1)
        self._pg("initdb", "-D", str(self.data_dir), "-U", self.user, "--auth=scram-sha-256",
                 f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")
        pwfile.unlink()

    def _pg(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bin_dir / program), *args]
        if self._run_as:
            command = ["runuser", "-u", self._run_as, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True)

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k {self.base} -c max_connections=200"
        if not self.fsync:
            options += " -F"
        result = self._pg("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                          "-o", options, "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            raise RuntimeError(f"postgres did not start: {result.stderr}\n{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def restart(self, down_for: float = 0.0, mode: str = "fast") -> None:
        self.stop(mode)
        time.sleep(down_for)
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text().splitlines()[-lines:])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
