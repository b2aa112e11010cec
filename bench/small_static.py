"""1,000 small static energies: the CLI batch vs. raw ``client.map`` on 2 workers — what the
orchestration costs per item when the work per item is only milliseconds.

Every variant is a whole new process, timed from outside (interpreter start, imports, cluster
start and shutdown included), on the same 1,000 deterministic structures (fcc Cu/Pt/Au 2×2×2
conventional cells, 32 atoms, rattled with one seed per index so every input differs):

- CLI: ``simmate-k8s run static_energy_emt <1000 files> --workers 2 --json``: one batch, one
  Prefect flow run; the compute task is mapped over chunks of
  ``max(1, items // (50 × workers))`` = 10 items (``engine.chunk_size``), each item claimed and
  finished in a fresh database on a private real PostgreSQL (checked: 1,000 rows,
  summary.completed == 1000).
- CLI, ``--chunk-size 1``: the same with one Prefect task per item (what a batch costs without
  chunks).
- raw: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` (no preload, no
  Prefect, no saving) + ``client.map(emt.static_energy, texts)`` + gather.

Orchestration cost per item = (CLI wall − raw wall) / items: Prefect, the plan and summary
tasks, the preload, the input checks, and a claim and a finish per item in PostgreSQL.
Repetitions are interleaved.

    python bench/small_static.py [--items 1000] [--reps 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "Small static energies (32 atoms) on 2 workers: orchestration cost per item"
SUPERCELL = (2, 2, 2)  # × the 4-atom cubic cell = 32 atoms
RATTLE = 0.05  # Å
TARGET_RUN_RAW = 1.3
VARIANTS = ("cli", "cli_chunk1", "raw")


def write_structures(directory: Path, count: int) -> list[Path]:
    return _common.fcc_structures(directory, count, SUPERCELL, RATTLE)


def phase_raw(texts: list[str], workers: int, started: float) -> dict:
    from simmate_k8s.flows import emt

    detail, results = _common.raw_client_map(emt.static_energy, texts, workers, started)
    return {**detail, "finite": sum(math.isfinite(r["energy_ev"]) for r in results)}


PHASES = {"raw": phase_raw}


def auto_chunk_size(items: int, workers: int) -> int:
    """The chunk size `run` picks (the CLI's own function, so this table cannot drift)."""
    from simmate_k8s.engine import chunk_size

    return chunk_size(items, workers)


def run(items: int = 1000, reps: int = 3, workers: int = 2) -> dict:
    from tests.conftest import count_rows
    from tests.support.postgres import PostgresServer

    walls: dict[str, list[float]] = {name: [] for name in VARIANTS}
    inner: list[dict] = []
    checks: dict[str, list[dict]] = {"cli": [], "cli_chunk1": []}
    with tempfile.TemporaryDirectory(prefix="simmate-bench-") as tmp, PostgresServer() as server:
        tmp = Path(tmp)
        paths = write_structures(tmp, items)
        base = [str(_common.BIN / "simmate-k8s"), "run", "static_energy_emt", *map(str, paths),
                "--workers", str(workers), "--json"]
        commands = {"cli": base, "cli_chunk1": [*base, "--chunk-size", "1"]}
        for rep in range(reps):  # interleaved: background load hits all alike
            for name, command in commands.items():
                url = server.create_database(f"static_{name}_{rep}")
                env = _common.quiet_env(SIMMATE_DATABASE_URL=url,
                                        XDG_DATA_HOME=str(tmp / "data"))
                wall, out = _common.run_cli(command, env)
                walls[name].append(wall)
                summary = _common.batch_summary(out)
                checks[name].append({"completed": summary["completed"],
                                     "failed": len(summary["failed"]) + len(summary["missing"]),
                                     "rows": count_rows(url)})
            wall, detail = _common.run_phase(__file__, "raw", paths, workers)
            walls["raw"].append(wall)
            inner.append(detail)
    return summarize(walls, inner, checks, items, workers)


def summarize(walls, inner, checks, items, workers) -> dict:
    med = {name: statistics.median(values) for name, values in walls.items()}
    per_item_ms = {name: (med[name] - med["raw"]) / items * 1000 for name in checks}
    ratios = [
        _common.ratio_row("`run` / raw client.map (whole process)", med["cli"] / med["raw"],
                          TARGET_RUN_RAW, at_most=True),
    ]
    return {
        "title": TITLE, "items": items, "workers": workers, "walls_s": walls, "median_s": med,
        "inner": inner, "checks": checks, "ratios": ratios, "orchestration_ms": per_item_ms,
        "chunk_size": auto_chunk_size(items, workers),
        "raw_compute_s": statistics.median(d["compute_s"] for d in inner),
        "raw_fixed_s": statistics.median(d["imports_s"] + d["cluster_start_s"] + d["shutdown_s"]
                                         for d in inner),
    }


def markdown(results: dict) -> str:
    n, w, chunk = results["items"], results["workers"], results["chunk_size"]
    labels = {
        "cli": f"`simmate-k8s run static_energy_emt <{n} files> --workers {w}` "
               f"(chunks of {chunk}: {math.ceil(n / chunk)} compute tasks)",
        "cli_chunk1": f"the same with `--chunk-size 1` ({n} compute tasks)",
        "raw": f"raw `client.map(emt.static_energy, texts)`, {w}-worker processes LocalCluster",
    }
    med, raw = results["median_s"], results["median_s"]["raw"]
    rows = []
    for name, label in labels.items():
        values = results["walls_s"][name]
        cost = results["orchestration_ms"].get(name)
        rows.append([label, f"{med[name]:.2f}", f"{min(values):.2f} – {max(values):.2f}",
                     len(values), f"{med[name] / raw:.2f}×",
                     "–" if cost is None else f"{cost:.2f}"])
    table = _common.markdown_table(
        ["variant", "wall s (median)", "min – max", "runs", "vs. raw",
         "orchestration ms per item"], rows)
    checks = results["checks"]
    lines = [
        f"{table}\n\n{_common.ratio_table(results['ratios'])}\n",
        f"- Orchestration cost per item, (`run` wall − raw wall) / {n}: "
        f"**{results['orchestration_ms']['cli']:.2f} ms** with the automatic chunks of {chunk} "
        f"(`max(1, {n} // (50 × {w}))`), {results['orchestration_ms']['cli_chunk1']:.2f} ms with "
        f"one Prefect task per item.",
        f"- Raw's compute phase {results['raw_compute_s']:.2f} s "
        f"({results['raw_compute_s'] / n * 1000 * w:.1f} ms per item per worker); its fixed "
        f"cost (imports + cluster start + shutdown) {results['raw_fixed_s']:.2f} s.",
    ]
    for name, what in (("cli", "`run`"), ("cli_chunk1", "`run --chunk-size 1`")):
        lines.append(
            f"- {what}: summary.completed {[c['completed'] for c in checks[name]]} (expected "
            f"{n}), failed or missing {[c['failed'] for c in checks[name]]}, rows "
            f"{[c['rows'] for c in checks[name]]}.")
    return "\n".join(lines)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = _common.parse_phase_args(parser, PHASES)
    if args.phase:  # this was a child process: its JSON is printed
        return {}
    results = run(args.items, args.reps, args.workers)
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
