"""The real-SLURM tier: one private single-node SLURM (munged + slurmctld + slurmd) per session.

`make test` installs the packages (scripts/install-slurm.sh); only when the programs are
missing are these tests skipped. Nothing of SLURM is mocked.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from tests.conftest import CLI
from tests.support.slurm import SlurmCluster, missing_programs


@pytest.fixture(scope="session")
def slurm():
    missing = missing_programs()
    if missing:
        pytest.skip(f"SLURM is not installed here ({', '.join(missing)} not found): run "
                    "`make slurm-tools` (scripts/install-slurm.sh) to run the real-SLURM tests")
    with SlurmCluster() as cluster:
        previous = os.environ.get("SLURM_CONF")
        cluster.activate()  # for the in-process API (job_cluster) and for squeue here
        try:
            yield cluster
        finally:
            if previous is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = previous


@pytest.fixture
def slurm_env(slurm, cli_env):
    """CLI environment that reaches the session's SLURM; jobs a test left behind are cancelled
    afterwards (tests that care assert an empty queue themselves)."""
    yield slurm.env(cli_env)
    if slurm.job_ids():
        slurm.cancel_all()
        slurm.wait_for_queue_empty(30)


class WorkersCommand:
    """``simmate-k8s workers slurm ...`` as a subprocess, its output read as it comes."""

    def __init__(self, args, env, system: str = "slurm"):
        self.args = [*CLI, "workers", system, *map(str, args)]
        self.proc = subprocess.Popen(self.args, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((self.proc.stdout, self.lines), (self.proc.stderr, self.errors))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, sink):
        for line in stream:
            with self._changed:
                sink.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines) + "\n--- stderr\n" + "\n".join(self.errors[-40:])

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = predicate(self.lines)
                if found:
                    return found
                if self.proc.poll() is not None and not any(
                        reader.is_alive() for reader in self._readers):
                    raise AssertionError(f"workers command ended ({self.proc.returncode}) "
                                         f"before {what}:\n{self.output}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} after {timeout:g} s:\n{self.output}")
                self._changed.wait(min(remaining, 0.5))

    @property
    def address(self) -> str:
        def find(lines):
            for line in lines:
                match = re.match(r"Dask scheduler: (\S+)", line)
                if match:
                    return match.group(1)
            return None

        return self.wait_for(find, 60, "scheduler address")

    def connected(self) -> list[str]:
        return [line for line in self.lines if " connected (job " in line]

    def wait_connected(self, count: int, timeout: float = 120) -> None:
        self.wait_for(lambda lines: len(self.connected()) >= count, timeout,
                      f"{count} connected workers")

    def job_ids(self) -> list[str]:
        return [m.group(1) for line in self.lines
                if (m := re.search(r"job (\d+) submitted", line))]

    def stop_when_done(self, timeout: float = 60) -> int:
        """The exit code of a command that ends by itself."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"workers command still running after {timeout:g} s:\n"
                                 f"{self.output}") from None
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode

    def stop(self, sig=signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"workers command did not end {timeout:g} s after "
                                 f"{signal.Signals(sig).name}:\n{self.output}") from None
        for reader in self._readers:  # the rest of the output
            reader.join(10)
        return self.proc.returncode


@pytest.fixture
def start_workers(slurm_env):
    """``start_workers(*args, env=None)``: a running WorkersCommand; ended at teardown."""
    started: list[WorkersCommand] = []

    def start(*args, env=None, system="slurm"):
        command = WorkersCommand(args, env or slurm_env, system)
        started.append(command)
        return command

    yield start
    for command in started:
        if command.proc.poll() is None:
            command.proc.send_signal(signal.SIGTERM)
            try:
                command.proc.wait(60)
            except subprocess.TimeoutExpired:
                command.proc.kill()
