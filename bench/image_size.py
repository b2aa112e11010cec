"""Image size: the project image against its 600 MB target (issue 9), its base (the floor) and
the image before issue 9; what fills it, layer by layer and package by package.

Measures images already in the repo-local podman storage (`make test-container` or
`scripts/build-image.sh`); it builds nothing.

    python bench/image_size.py [--image REF] [--baseline REF] [--write]

``--baseline`` names an image to compare with (e.g. one built from an older Dockerfile); without
it the size recorded before issue 9 stands in, and the "left out" table is not made.
``--write`` replaces the "Image size" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tomllib
from datetime import UTC, datetime

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

from tests.support.image import MAX_IMAGE_MB, image_size_mb, podman_env

TITLE = "Image size"
SECTION = f"## {TITLE}"
BASE = "docker.io/library/python:3.11-slim"
SITE = "/opt/venv/lib/python3.11/site-packages"
# Before issue 9 item 7: every dependency (dask-kubernetes, dask-jobqueue, matplotlib, aiohttp,
# kubernetes' asyncio client) and pip/setuptools in the venv (docs/benchmarks.md at the time).
BEFORE_MB = 796
LARGEST = 12


def _podman(*args: str) -> str:
    return subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          check=True).stdout


def _exists(image: str) -> bool:
    return subprocess.run(["podman", "image", "exists", image], env=podman_env()).returncode == 0


def _site_packages(image: str) -> dict[str, int]:
    """{site-packages entry: MB (du -sm)} of ``image``."""
    du = _podman("run", "--rm", "--entrypoint", "sh", image, "-c", f"du -sm {SITE}/*")
    sizes = {}
    for line in du.strip().splitlines():
        mb, path = line.split("\t")
        sizes[path.rsplit("/", 1)[-1]] = int(mb)
    return sizes


def _layers(image: str) -> list[tuple[float, str]]:
    """(MB, what made it) of each non-empty layer, base first."""
    history = json.loads(_podman("history", "--format", "json", image))
    layers = []
    for entry in reversed(history):
        if not entry["size"]:
            continue
        made_by = re.sub(r"^/bin/sh -c (#\(nop\) )?", "", entry["CreatedBy"]).strip()
        made_by = re.sub(r"\b(file|dir):[0-9a-f]{64}", r"\1", made_by)
        layers.append((entry["size"] / 1e6, made_by))
    return layers


def _distributions(entries: dict[str, int]) -> set[str]:
    """Distribution names (normalized) of the .dist-info entries."""
    return {re.sub(r"[-_.]+", "-", name[:-len(".dist-info")].rsplit("-", 1)[0]).lower()
            for name in entries if name.endswith(".dist-info")}


def run(image: str | None = None, baseline: str | None = None) -> dict:
    version = tomllib.loads((_common.REPO / "pyproject.toml").read_text())["project"]["version"]
    image = image or f"simmate-k8s:{version}"
    results = {"title": TITLE, "image": image, "baseline": baseline, "ratios": []}
    if not shutil.which("podman"):
        return {**results, "missing": "podman is not installed"}
    if not _exists(image):
        return {**results, "missing": f"{image} is not built (run `make test-container`)"}
    if baseline and not _exists(baseline):
        return {**results, "missing": f"the baseline {baseline} is not in podman's storage"}
    results["sizes_mb"] = {image: image_size_mb(image), BASE: image_size_mb(BASE)}
    results["packages_mb"] = _site_packages(image)
    results["layers"] = _layers(image)
    if baseline:
        results["sizes_mb"][baseline] = image_size_mb(baseline)
        results["baseline_packages_mb"] = _site_packages(baseline)
    results["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    results["ratios"] = [_common.ratio_row("project image size", results["sizes_mb"][image],
                                           MAX_IMAGE_MB, at_most=True, unit=" MB")]
    return results


def markdown(results: dict) -> str:
    if "missing" in results:
        return f"Not measured: {results['missing']}."
    sizes, image = results["sizes_mb"], results["image"]
    size, base = sizes[image], sizes[BASE]
    baseline = results["baseline"]
    before = sizes[baseline] if baseline else BEFORE_MB
    before_name = (f"`{baseline}` (`--baseline`)" if baseline else
                   "before issue 9 (recorded)")
    command = " ".join(["python bench/image_size.py", f"--image {image}",
                        *([f"--baseline {baseline}"] if baseline else [])])
    table = _common.markdown_table(
        ["image", "MB", "this image is"],
        [[f"`{image}`", f"{size:.0f}", ""],
         ["target (issue 9)", f"{MAX_IMAGE_MB}",
          f"{size / MAX_IMAGE_MB:.2f}× ({MAX_IMAGE_MB - size:+.0f} MB of room)"],
         [before_name, f"{before:.0f}", f"{size / before:.2f}× ({size - before:+.0f} MB)"],
         [f"`{BASE}` (the floor: the base; the debootstrap stand-in here)", f"{base:.0f}",
          f"{size - base:.0f} MB above it"]])
    layers = _common.markdown_table(
        ["layer", "MB"],
        [[("the base: " if index == 0 else "")
          + f"`{made_by[:80]}{'…' if len(made_by) > 80 else ''}`", f"{mb:.1f}"]
         for index, (mb, made_by) in enumerate(results["layers"])])
    packages = results["packages_mb"]
    largest = sorted(packages.items(), key=lambda item: -item[1])[:LARGEST]
    parts = [
        f"Measured {results['date']} UTC; `{command}`.",
        table,
        _common.ratio_table(results["ratios"]),
        f"Layers (`podman history`), base first:\n\n{layers}",
        f"Largest entries of the venv's site-packages (`du -sm`, MB; {sum(packages.values())} "
        f"MB in all):\n\n" + _common.markdown_table(
            ["site-packages entry", "MB"], [[f"`{name}`", mb] for name, mb in largest]),
    ]
    if baseline:
        old = results["baseline_packages_mb"]
        smaller = sorted(((name, mb, packages.get(name, 0)) for name, mb in old.items()
                          if mb - packages.get(name, 0) >= 1), key=lambda row: row[2] - row[1])
        left_out = sorted(_distributions(old) - _distributions(packages))
        parts.append(
            f"Against the baseline: {len(left_out)} distributions left out "
            f"({', '.join(left_out)}); the entries that shrank most:\n\n"
            + _common.markdown_table(
                ["site-packages entry", "baseline MB", "here MB"],
                [[f"`{name}`", mb, now or "—"] for name, mb, now in smaller[:LARGEST]]))
    parts.append(
        "- The baseline is the image of the Dockerfile before issue 9 item 7: every "
        "dependency (dask-kubernetes, dask-jobqueue, matplotlib, aiohttp, kubernetes' asyncio "
        f"client) and pip/setuptools in the venv; without `--baseline` the {BEFORE_MB} MB "
        "recorded then stands in.\n"
        "- What is left out and why it is safe: docs/image.md (*What the image leaves out*). "
        "The container tests fail above the target (`test_image_size_is_within_the_target`).\n"
        "- The compiled `.pyc` files are kept on purpose: under a read-only root filesystem "
        "Python cannot write them at start, and the worker stack imports in ~1.0 s with them "
        "against ~3.7 s without (docs/image.md).")
    return "\n\n".join(parts)


def write_section(text: str) -> None:
    doc = _common.REPO / "docs" / "benchmarks.md"
    current = doc.read_text()
    section = f"{SECTION}\n\n{text}\n"
    if SECTION in current:
        start = current.index(SECTION)
        rest = current[start + len(SECTION):]
        following = re.search(r"^## ", rest, re.MULTILINE)
        end = start + len(SECTION) + following.start() if following else len(current)
        current = current[:start] + section + ("\n" if following else "") + current[end:]
    else:
        current = current.rstrip("\n") + "\n\n\n" + section
    doc.write_text(current)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="the image to measure [default: simmate-k8s:<version>]")
    parser.add_argument("--baseline", help="an image to compare with (e.g. an older build)")
    parser.add_argument("--write", action="store_true",
                        help="replace the Image size section of docs/benchmarks.md")
    args = parser.parse_args()
    results = run(args.image, args.baseline)
    text = markdown(results)
    _common.print_section(TITLE, text)
    if args.write:
        write_section(text)
    return results


if __name__ == "__main__":
    main()
