"""A real Dask cluster as separate processes: `dask scheduler` + `dask worker --preload ...`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.postgres import free_port

REPO = Path(__file__).resolve().parents[2]



def dask_command() -> list[str]:
    return [str(Path(sys.executable).with_name("dask"))]


class DaskProcesses:
    """Scheduler and workers in their own processes, workers with the results-DB preload."""

    def __init__(self, database_url: str, workers: int = 2, connect_timeout: float = 20,
                 extra_env: dict | None = None):
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.workers = workers
        self.env = {
            **os.environ,
            "SIMMATE_DATABASE_URL": database_url,
            "SIMMATE_DB_CONNECT_TIMEOUT": str(connect_timeout),
            "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
            # so workers can unpickle functions defined in test modules
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **(extra_env or {}),
        }
        self.logs = Path(tempfile.mkdtemp(prefix="simmate-dask-"))
        self.scheduler = None
        self.worker_processes: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "wb") as log:  # the child keeps its own copy
            return subprocess.Popen(dask_command() + args, env=self.env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn("scheduler", [
            "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
            "--dashboard-address", ":0", "--no-show",
        ])

    def start_worker(self, name: str) -> subprocess.Popen:
        process = self._spawn(name, [
            "worker", self.address, "--name", name, "--nthreads", "1", "--host", "127.0.0.1",
            "--dashboard-address", ":0", "--preload", "simmate_k8s.preload",
            "--local-directory", str(self.logs / name),
        ])
        self.worker_processes.append(process)
        return process

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            if count:
                client.wait_for_workers(count, timeout=timeout)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> DaskProcesses:
        self.start_scheduler()
        for index in range(self.workers):
            self.start_worker(f"worker-{index}")
        try:
            self.wait_for_workers(self.workers)
        except Exception:
            self.close()
            logs = "\n".join(self.log(f"worker-{i}")[-2000:] for i in range(self.workers))
            raise RuntimeError(f"Dask workers did not start:\n{logs}") from None
        return self

    def close(self) -> None:
        for process in [*self.worker_processes, self.scheduler]:
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in [*self.worker_processes, self.scheduler]:
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __exit__(self, *exc) -> None:
        self.close()
