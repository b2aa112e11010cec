"""Shared helpers for the benchmark scripts: repo paths, timing, tables, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo
    sys.path.insert(0, str(REPO))


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: no SIMMATE_/PREFECT__ settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMMATE_", "PREFECT__"))}
    return {**env, **extra}


def wall_times(command: list[str], runs: int, env: dict | None = None, cwd=None) -> list[float]:
    """Whole-process wall time (s) of ``command``, ``runs`` times; fails loudly on exit != 0."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])}... exited {result.returncode}:\n"
                               f"{result.stderr[-3000:]}")
    return times


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def verdict(value: float, target: float, at_most: bool) -> str:
    ok = value <= target if at_most else value >= target
    return "PASS" if ok else "MISS"


def ratio_row(name: str, value: float, target: float, at_most: bool) -> dict:
    """A ratio with its target, e.g. ``ratio_row("preload / raw", 1.1, 1.25, at_most=True)``."""
    return {"name": name, "value": value, "target": f"{'≤' if at_most else '≥'} {target:g}",
            "verdict": verdict(value, target, at_most)}


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio_table(ratios: list[dict], unit: str = "×") -> str:
    return markdown_table(
        ["ratio", "measured", "target", ""],
        [[r["name"], f"{r['value']:.3g}{unit}", f"{r['target']}{unit}", r["verdict"]]
         for r in ratios],
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _postgres_version() -> str:
    try:
        from tests.support.postgres import find_bin_dir

        out = subprocess.run([str(find_bin_dir() / "postgres"), "--version"],
                             capture_output=True, text=True).stdout
        return out.strip().removeprefix("postgres (PostgreSQL) ")
    except Exception as error:  # noqa: BLE001 - reported, not fatal
        return f"unknown ({error})"


def machine() -> dict[str, str]:
    from importlib.metadata import version

    return {
        "date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpu_model(),
        "cores (os.cpu_count)": str(os.cpu_count()),
        "RAM": f"{_ram_gib():.1f} GiB",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        **{name: version(name) for name in
           ("prefect", "distributed", "dask", "SQLAlchemy", "psycopg", "ase")},
        "PostgreSQL": _postgres_version(),
    }


def print_section(title: str, body: str) -> None:
    print(f"\n## {title}\n\n{body}\n", flush=True)
