"""Fixtures for the container tier: podman, the project image, a scheduler container.

The real PostgreSQL comes from the suite-wide ``pg_url`` fixture (tests/support/postgres.py).

Needs rootful podman configured by ``scripts/install-container-tools.sh``; skipped when podman is
missing. The image is built from the real Dockerfile with ``scripts/build-image.sh`` (a cache hit
when it is already built) unless ``SIMMATE_TEST_IMAGE`` names an image that exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.image import podman_env
from tests.support.postgres import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/python:3.11-slim"

# How every project container runs here: like the chart's pods (non-root, read-only root
# filesystem, no capabilities), with /tmp and $HOME as empty scratch space (emptyDir in k8s).
# Every test container carries the label below; after a crashed session, clean up with
#   podman rm --force --filter label=simmate-k8s-test
HARDENED = [
    "--label", "simmate-k8s-test=1",
    "--network", "host",
    "--read-only",
    "--tmpfs", "/tmp:rw,mode=1777,notmpcopyup",
    "--tmpfs", "/home/simmate:rw,mode=1777,notmpcopyup",
    "--user", "1000:1000",
    "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges",
]  # fmt: skip


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["podman", *args], env=podman_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}{result.stdout}"
        )
    return result


class Containers:
    """Starts detached containers and removes every one of them at the end, whatever happened."""

    podman = staticmethod(podman)
    free_port = staticmethod(free_port)

    def __init__(self, image: str):
        self.image = image
        self.names: list[str] = []

    def start(
        self,
        role: str,
        *command: str,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
    ) -> str:
        """``options``: extra `podman run` options, e.g. ("--volume", "dir:/path:ro")."""
        name = f"simmate-test-{role}-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        env_args = [f"--env={key}={value}" for key, value in (env or {}).items()]
        podman(
            "run", "--detach", "--name", name, *HARDENED, *env_args, *options, self.image, *command
        )
        return name

    def run(
        self,
        *command: str,
        env: dict[str, str] | None = None,
        timeout: float = 300,
        options: tuple[str, ...] = (),
    ):
        """A foreground container (removed afterwards); returns the CompletedProcess."""
        env_args = [f"--env={key}={value}" for key, value in (env or {}).items()]
        name = f"simmate-test-run-{uuid.uuid4().hex[:8]}"
        self.names.append(name)
        return podman(
            "run", "--rm", "--name", name, *HARDENED, *env_args, *options, self.image, *command,
            check=False, timeout=timeout,
        )  # fmt: skip

    @staticmethod
    def logs(name: str) -> str:
        result = podman("logs", name, check=False)
        return result.stdout + result.stderr

    def remove_all(self) -> None:
        for name in reversed(self.names):
            podman("rm", "--force", "--time", "0", name, check=False)
        self.names.clear()


@pytest.fixture(scope="session")
def image() -> str:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/install-container-tools.sh)")
    requested = os.environ.get("SIMMATE_TEST_IMAGE")
    if requested:
        if podman("image", "exists", requested, check=False).returncode != 0:
            pytest.fail(f"SIMMATE_TEST_IMAGE={requested} is not in local podman storage")
        return requested
    has_base = podman("image", "exists", BASE_IMAGE, check=False).returncode == 0
    build = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "build-image.sh")],
        env={**podman_env(), "PULL": "never" if has_base else "missing"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if build.returncode != 0:
        pytest.fail(f"image build failed:\n{build.stderr[-6000:]}")
    return build.stdout.strip().splitlines()[-1]


@pytest.fixture
def containers(image: str) -> Iterator[Containers]:
    group = Containers(image)
    try:
        yield group
    finally:
        group.remove_all()


@pytest.fixture(scope="session")
def scheduler(image: str) -> Iterator[str]:
    """A `dask scheduler` container on a free loopback port; yields its tcp:// address."""
    group = Containers(image)
    port, dashboard = free_port(), free_port()
    try:
        name = group.start(
            "scheduler", "dask", "scheduler",
            "--host", "127.0.0.1", "--port", str(port),
            "--dashboard-address", f"127.0.0.1:{dashboard}",
        )  # fmt: skip
        wait_for_port(port, timeout=60, what=lambda: Containers.logs(name))
        yield f"tcp://127.0.0.1:{port}"
    finally:
        group.remove_all()


def wait_for_port(port: int, timeout: float, what=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s\n{what()}")
