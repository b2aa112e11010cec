"""The project image as podman sees it: the repo-local podman configuration, the image size and
its target (issue 9: at most 600 MB). Shared by the container tests and bench/image_size.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_DIR = Path(
    os.environ.get("SIMMATE_CONTAINERS_DIR") or REPO / ".tools" / "containers"
)
MAX_IMAGE_MB = 600  # `podman image inspect --format {{.Size}}`, MB of 10^6 bytes


def podman_env() -> dict[str, str]:
    """The environment, plus the repo-local podman config when it exists (as podman-env.sh)."""
    env = dict(os.environ)
    for variable, name in (
        ("CONTAINERS_CONF", "containers.conf"),
        ("CONTAINERS_STORAGE_CONF", "storage.conf"),
    ):
        if not env.get(variable) and (CONTAINERS_DIR / name).is_file():
            env[variable] = str(CONTAINERS_DIR / name)
    return env


def image_size_mb(image: str) -> float:
    """The image's size as podman reports it (all its layers, the base's included)."""
    size = subprocess.run(
        ["podman", "image", "inspect", image, "--format", "{{.Size}}"],
        env=podman_env(), capture_output=True, text=True, check=True,
    ).stdout
    return int(size) / 1e6
