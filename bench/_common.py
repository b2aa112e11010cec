"""Shared helpers for the benchmark scripts: repo paths, timing, tables, the machine."""

from __future__ import annotations

import argparse
import json
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


def ratio_row(name: str, value: float, target: float, at_most: bool, unit: str = "×") -> dict:
    """A measure with its target, e.g. ``ratio_row("preload / raw", 1.1, 1.25, at_most=True)``;
    ``unit`` is printed after the value and the target ("×", " %", " s", "" for a count)."""
    return {"name": name, "value": value, "target": f"{'≤' if at_most else '≥'} {target:g}",
            "verdict": verdict(value, target, at_most), "unit": unit}


def format_value(row: dict, default_unit: str = "×") -> tuple[str, str]:
    """(measured, target) of a ratio row as printed, each with the row's unit."""
    unit = row.get("unit", default_unit)
    return f"{row['value']:.3g}{unit}", f"{row['target']}{unit}"


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio_table(ratios: list[dict], unit: str = "×") -> str:
    return markdown_table(["measure", "measured", "target", ""],
                          [[r["name"], *format_value(r, unit), r["verdict"]] for r in ratios])


# --- whole-process runs: the CLI, and a phase of a bench script in a child process -------------


def run_cli(command: list[str], env: dict) -> tuple[float, str]:
    """(whole-process wall s, stdout) of ``command``; fails loudly on exit != 0."""
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... exited {result.returncode}:\n"
                           f"{result.stderr[-3000:]}")
    return wall, result.stdout


def run_phase(script: str, name: str, paths: list[Path], workers: int,
              env: dict | None = None) -> tuple[float, dict]:
    """(whole-process wall s, the JSON it printed last) of ``python SCRIPT --phase NAME``."""
    command = [sys.executable, script, "--phase", name, "--workers", str(workers),
               *map(str, paths)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env or quiet_env())
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{name} phase of {Path(script).name} failed:\n"
                           f"{result.stderr[-3000:]}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1])


def raw_client_map(function: Callable[[str], dict], texts: list[str], workers: int,
                   started: float) -> tuple[dict, list[dict]]:
    """The limit a CLI batch is measured against: ``client.map(function, texts)`` on a
    ``workers``-process LocalCluster without the preload, no Prefect, nothing saved.
    ``started`` is when the process began its imports (``time.perf_counter()``)."""
    from distributed import Client, LocalCluster

    imported = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        ready = time.perf_counter()
        results = client.gather(client.map(function, texts, pure=False))
        computed = time.perf_counter()
    return {"imports_s": imported - started, "cluster_start_s": ready - imported,
            "compute_s": computed - ready, "shutdown_s": time.perf_counter() - computed}, results


def fcc_structures(directory: Path, count: int, supercell: tuple[int, int, int],
                   stdev: float) -> list[Path]:
    """``count`` POSCAR files of rattled fcc Cu/Pt/Au supercells of the 4-atom cubic cell;
    element and rattle seed from the index, so every input differs (checked)."""
    from ase.build import bulk

    from simmate_k8s.flows.structures import to_poscar

    elements = (("Cu", 3.61), ("Pt", 3.92), ("Au", 4.08))
    paths, texts = [], set()
    width = len(str(max(count - 1, 1)))
    for index in range(count):
        element, a = elements[index % len(elements)]
        atoms = bulk(element, "fcc", a=a, cubic=True).repeat(supercell)
        atoms.rattle(stdev=stdev, seed=index)
        text = to_poscar(atoms)
        texts.add(text)
        path = directory / f"{index:0{width}d}_{element}{len(atoms)}.POSCAR"
        path.write_text(text)
        paths.append(path)
    if len(texts) != count:
        raise RuntimeError(f"only {len(texts)} of {count} structures differ")
    return paths


def batch_summary(stdout: str) -> dict:
    """The one batch's ``summary`` from ``simmate-k8s run ... --json``."""
    batches = json.loads(stdout)
    if len(batches) != 1:
        raise RuntimeError(f"expected one batch (one flow run), got {len(batches)}")
    return batches[0]["summary"]


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


def parse_phase_args(parser, phases: dict) -> object:
    """Arguments of a benchmark that runs each variant in a child process of itself: the child
    gets --phase NAME and the input files, runs that variant, and prints its JSON on the last
    line; then `.phase` is set and the caller returns."""
    parser.add_argument("--phase", choices=sorted(phases), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        started = time.perf_counter()
        texts = [Path(path).read_text() for path in args.paths]
        print(json.dumps(phases[args.phase](texts, args.workers, started)))
    return args

