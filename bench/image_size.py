"""Image size: the project image against its base (python:3.11-slim), and what fills it.

Measures the image already built in the repo-local podman storage (`make test-container` or
`scripts/build-image.sh`); it builds nothing.

    python bench/image_size.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "Image size"
BASE = "docker.io/library/python:3.11-slim"
SITE = "/opt/venv/lib/python3.11/site-packages"


def _podman_env() -> dict[str, str]:
    conf = _common.REPO / ".tools" / "containers"
    env = dict(os.environ)
    for name, file in (("CONTAINERS_CONF", "containers.conf"),
                       ("CONTAINERS_STORAGE_CONF", "storage.conf")):
        if (conf / file).exists():
            env.setdefault(name, str(conf / file))
    return env


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], env=_podman_env(), capture_output=True, text=True,
                          check=True).stdout


def run() -> dict:
    version = tomllib.loads((_common.REPO / "pyproject.toml").read_text())["project"]["version"]
    image = f"simmate-k8s:{version}"
    if not shutil.which("podman"):
        return {"title": TITLE, "image": image, "missing": "podman is not installed", "ratios": []}
    try:
        sizes = {name: int(_podman("image", "inspect", name, "--format", "{{.Size}}"))
                 for name in (image, BASE)}
    except subprocess.CalledProcessError:
        return {"title": TITLE, "image": image, "ratios": [],
                "missing": "the image is not built (run `make test-container`)"}
    du = _podman("run", "--rm", "--entrypoint", "sh", image, "-c",
                 f"du -sm {SITE}/* | sort -n | tail -8")
    largest = [line.split("\t") for line in du.strip().splitlines()][::-1]
    return {"title": TITLE, "image": image, "sizes": sizes, "largest_mb": largest,
            "ratios": []}


def markdown(results: dict) -> str:
    if "missing" in results:
        return f"Not measured: {results['missing']}."
    sizes = results["sizes"]
    image, base = sizes[results["image"]], sizes[BASE]
    table = _common.markdown_table(
        ["image", "size (MB)"],
        [[f"`{results['image']}`", f"{image / 1e6:.0f}"],
         [f"`{BASE}` (the debootstrap stand-in here)", f"{base / 1e6:.0f}"],
         ["added by the project layers",
          f"{(image - base) / 1e6:.0f} ({image / base:.1f}× the base)"]])
    largest = _common.markdown_table(
        ["site-packages entry", "MB"],
        [[f"`{name.rsplit('/', 1)[-1]}`", mb] for mb, name in results["largest_mb"]])
    return (f"{table}\n\nLargest installed packages:\n\n{largest}\n\n"
            "No target was set. The compiled `.pyc` files are kept on purpose: under a read-only "
            "root filesystem Python cannot write them at start, and the worker stack imports in "
            "~1.0 s with them against ~3.7 s without (docs/image.md).")


def main() -> dict:
    results = run()
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
