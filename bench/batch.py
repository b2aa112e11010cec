"""A batch of relaxation_emt runs: the real CLI on 2 workers vs. raw ``client.map`` (the limit)
vs. serial in one process.

Every variant is a whole new process, timed from outside (interpreter start, imports, cluster
start and shutdown included), on the same 100 deterministic structures (rattled fcc
Cu/Pt/Au cells of 144 atoms, one seed each; ~0.3 s per relaxation on one core):

- CLI: ``simmate-k8s run relaxation_emt <100 POSCAR files> --workers 2``: a 2-worker processes
  LocalCluster with the preload, one Prefect flow run per input, results saved to a fresh
  database on a private real PostgreSQL (checked: 100 rows).
- raw: ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` (no preload, no
  Prefect, no saving) + ``client.map(emt.relax, texts)`` + gather.
- serial: ``emt.relax`` on each text in a loop, one process, with the single-threaded BLAS
  that Dask's nanny gives its workers (``distributed.nanny.pre-spawn-environ``:
  OMP/MKL/OPENBLAS_NUM_THREADS=1). With numpy's default threaded OpenBLAS the small
  eigendecompositions of BFGS ran ~2.7× slower on this loaded 2-core machine, which would make
  the parallel speedup look super-linear.

    python bench/batch.py [--structures 100] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "Batch of relaxation_emt runs on 2 workers (whole-process wall time)"
ELEMENTS = (("Cu", 3.61), ("Pt", 3.92), ("Au", 4.08))
SUPERCELL = (4, 3, 3)  # × the 4-atom cubic cell = 144 atoms
# what Dask's nanny sets in its workers; the serial baseline gets the same
SINGLE_THREAD_BLAS = {name: "1" for name in
                      ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def write_structures(directory: Path, count: int) -> list[Path]:
    """``count`` rattled 4×3×3 fcc supercells (144 atoms), element and seed from the index."""
    from ase.build import bulk

    from simmate_k8s.flows.structures import to_poscar

    paths = []
    for index in range(count):
        element, a = ELEMENTS[index % len(ELEMENTS)]
        atoms = bulk(element, "fcc", a=a, cubic=True).repeat(SUPERCELL)
        atoms.rattle(stdev=0.08, seed=index)
        path = directory / f"{index:03d}_{element}{len(atoms)}.POSCAR"
        path.write_text(to_poscar(atoms))
        paths.append(path)
    return paths


# --- the raw and serial variants, each run as `python bench/batch.py --phase NAME DIR` --------


def phase_raw(texts: list[str], workers: int) -> dict:
    start = time.perf_counter()
    from distributed import Client, LocalCluster

    from simmate_k8s.flows import emt

    imported = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.wait_for_workers(workers)
        ready = time.perf_counter()
        results = client.gather(client.map(emt.relax, texts, pure=False))
        computed = time.perf_counter()
    return {"imports_s": imported - start, "cluster_start_s": ready - imported,
            "compute_s": computed - ready, "shutdown_s": time.perf_counter() - computed,
            "converged": sum(r["converged"] for r in results)}


def phase_serial(texts: list[str], workers: int) -> dict:
    start = time.perf_counter()
    from simmate_k8s.flows import emt

    imported = time.perf_counter()
    results = [emt.relax(text) for text in texts]
    return {"imports_s": imported - start, "compute_s": time.perf_counter() - imported,
            "converged": sum(r["converged"] for r in results)}


PHASES = {"raw": phase_raw, "serial": phase_serial}


def _run_phase(name: str, paths: list[Path], workers: int) -> tuple[float, dict]:
    command = [sys.executable, __file__, "--phase", name, "--workers", str(workers),
               *map(str, paths)]
    start = time.perf_counter()
    env = _common.quiet_env(**(SINGLE_THREAD_BLAS if name == "serial" else {}))
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{name} phase failed:\n{result.stderr[-3000:]}")
    return wall, json.loads(result.stdout.strip().splitlines()[-1])


def _run_cli(paths: list[Path], workers: int, url: str, home: Path) -> float:
    env = _common.quiet_env(SIMMATE_DATABASE_URL=url, XDG_DATA_HOME=str(home / "data"))
    command = [str(_common.BIN / "simmate-k8s"), "run", "relaxation_emt", *map(str, paths),
               "--workers", str(workers)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"simmate-k8s run failed ({result.returncode}):\n"
                           f"{result.stderr[-3000:]}")
    return wall


def run(structures: int = 100, reps: int = 3, serial_reps: int = 2, workers: int = 2) -> dict:
    from tests.conftest import count_rows
    from tests.support.postgres import PostgresServer

    walls: dict[str, list[float]] = {"cli": [], "raw": [], "serial": []}
    inner: dict[str, list[dict]] = {"raw": [], "serial": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="simmate-bench-") as tmp, PostgresServer() as server:
        tmp = Path(tmp)
        paths = write_structures(tmp, structures)
        for rep in range(max(reps, serial_reps)):  # interleaved: background load hits all alike
            if rep < reps:
                url = server.create_database(f"batch_{rep}")
                walls["cli"].append(_run_cli(paths, workers, url, tmp))
                rows.append(count_rows(url))
                wall, detail = _run_phase("raw", paths, workers)
                walls["raw"].append(wall)
                inner["raw"].append(detail)
            if rep < serial_reps:
                wall, detail = _run_phase("serial", paths, workers)
                walls["serial"].append(wall)
                inner["serial"].append(detail)
    return summarize(walls, inner, rows, structures, workers)


def summarize(walls, inner, rows, structures, workers) -> dict:
    med = {name: statistics.median(values) for name, values in walls.items()}
    compute = {name: statistics.median(d["compute_s"] for d in details)
               for name, details in inner.items()}
    ratios = [
        _common.ratio_row("CLI / raw client.map (whole process)", med["cli"] / med["raw"], 1.3,
                          at_most=True),
    ]
    return {
        "title": TITLE, "structures": structures, "workers": workers, "walls_s": walls,
        "median_s": med, "inner": inner, "compute_median_s": compute, "rows": rows,
        "ratios": ratios,
        "speedup_raw_vs_serial": med["serial"] / med["raw"],
        "efficiency": med["serial"] / (workers * med["raw"]),
        "compute_speedup": compute["serial"] / compute["raw"],
        "compute_efficiency": compute["serial"] / (workers * compute["raw"]),
        "raw_fixed_s": statistics.median(d["imports_s"] + d["cluster_start_s"] + d["shutdown_s"]
                                         for d in inner["raw"]),
    }


def markdown(results: dict) -> str:
    n, w = results["structures"], results["workers"]
    labels = {
        "cli": f"`simmate-k8s run relaxation_emt <{n} files> --workers {w}` (PostgreSQL results)",
        "raw": f"raw `client.map(emt.relax, texts)`, {w}-worker processes LocalCluster",
        "serial": "serial `emt.relax` loop, one process",
    }
    rows = []
    for name, label in labels.items():
        values = results["walls_s"][name]
        rows.append([label, f"{results['median_s'][name]:.2f}",
                     f"{min(values):.2f} – {max(values):.2f}", len(values),
                     f"{results['median_s'][name] / n * 1000:.0f}"])
    table = _common.markdown_table(
        ["variant", "wall s (median)", "min – max", "runs", "ms per structure"], rows)
    c = results["compute_median_s"]
    return (
        f"{table}\n\n{_common.ratio_table(results['ratios'])}\n\n"
        f"- Speedup raw vs. serial (whole process): {results['speedup_raw_vs_serial']:.2f}×; "
        f"parallel efficiency serial / ({w} × raw): {results['efficiency']:.0%}.\n"
        f"- Compute phase only (inside the process, imports and cluster start/stop excluded): "
        f"serial {c['serial']:.2f} s, raw {c['raw']:.2f} s → speedup "
        f"{results['compute_speedup']:.2f}×, efficiency {results['compute_efficiency']:.0%}. "
        f"Raw's fixed cost (imports + cluster start + shutdown): {results['raw_fixed_s']:.2f} s.\n"
        f"- Rows saved by each CLI run: {results['rows']} (expected {n})."
    )


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--serial-reps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child process: one variant, JSON on the last line
        texts = [Path(path).read_text() for path in args.paths]
        print(json.dumps(PHASES[args.phase](texts, args.workers)))
        return {}
    results = run(args.structures, args.reps, args.serial_reps, args.workers)
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
