"""HPC workers on a real (private, single-node) SLURM vs. local workers.

1. Start-up: from launching ``simmate-k8s workers slurm --jobs 2 --interface lo`` to its second
   "worker ... connected" line (sbatch, SLURM scheduling, interpreter start, imports, the
   preload's database connection, registration), and the same through the API the engine
   uses (``hpc.job_cluster`` → ``client.wait_for_workers(2)``, in this process).
2. Throughput: the same CLI batch, ``simmate-k8s run relaxation_emt <N files> --address ADDR
   --json``, on 2 SLURM-launched workers vs. 2 local workers (a processes ``LocalCluster`` with
   the preload, 1 thread each, started in this process), workers already connected on both
   sides; then raw ``client.map(emt.relax, texts)`` on the same workers. Every run writes to
   a fresh database on a private PostgreSQL; the structures are bench/batch.py's (rattled
   144-atom fcc cells, ~0.3 s each on one core).

Repetitions are interleaved (SLURM then local, again), so background load hits both alike.

    python bench/slurm_workers.py [--structures 100] [--reps 3] [--write]

``--write`` replaces the "SLURM workers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "SLURM workers (simmate-k8s workers slurm, real single-node SLURM)"
SECTION = "## SLURM workers"
TARGET_RATIO = 1.1
CLI = str(_common.BIN / "simmate-k8s")


class WorkersCommand:
    """``simmate-k8s workers slurm`` as a subprocess; ``ready`` is the time of the Nth
    connected worker."""

    def __init__(self, args: list[str], env: dict, workers: int):
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([CLI, "workers", "slurm", *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.address = None
        self.connected: list[float] = []
        self._done = threading.Event()
        self._workers = workers
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            match = re.match(r"Dask scheduler: (\S+)", line)
            if match:
                self.address = match.group(1)
            if " connected (job " in line:
                self.connected.append(time.perf_counter())
                if len(self.connected) >= self._workers:
                    self._done.set()
        self._done.set()

    def wait(self, timeout: float = 300) -> float:
        if not self._done.wait(timeout) or len(self.connected) < self._workers:
            raise RuntimeError(f"{self._workers} workers did not connect (exit "
                               f"{self.proc.poll()})")
        return self.connected[self._workers - 1] - self.started

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(120)


def run_batch(paths: list[Path], address: str, env: dict) -> float:
    command = [CLI, "run", "relaxation_emt", *map(str, paths), "--address", address, "--json"]
    wall, out = _common.run_cli(command, env)
    summary = _common.batch_summary(out)
    if summary["completed"] != len(paths):
        raise RuntimeError(f"batch completed {summary['completed']} of {len(paths)}")
    return wall


def raw_map(address: str, texts: list[str]) -> float:
    from distributed import Client

    from simmate_k8s.flows import emt

    with Client(address) as client:
        start = time.perf_counter()
        results = client.gather(client.map(emt.relax, texts, pure=False))
        wall = time.perf_counter() - start
    if len(results) != len(texts):
        raise RuntimeError("raw map lost results")
    return wall


def api_startup(env: dict) -> float:
    from distributed import Client

    from simmate_k8s import hpc

    start = time.perf_counter()
    with hpc.job_cluster("slurm", hpc.HpcOptions(jobs=2, interface="lo"), env=env) as cluster, \
            Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=300)
        return time.perf_counter() - start


def run(structures: int = 100, reps: int = 3) -> dict:
    os.environ["PREFECT__LOGGING__LEVEL"] = "WARNING"  # local workers log here; quiet both sides
    from distributed import LocalCluster

    from tests.support.postgres import PostgresServer
    from tests.support.slurm import SlurmCluster

    samples: dict[str, list[float]] = {name: [] for name in (
        "startup_cli", "startup_api", "batch_slurm", "batch_local", "raw_slurm", "raw_local")}
    with tempfile.TemporaryDirectory(prefix="simmate-bench-slurm-") as tmp, \
            PostgresServer() as server, SlurmCluster() as slurm:
        tmp = Path(tmp)
        slurm.activate()
        paths = _common.fcc_structures(tmp, structures, (4, 3, 3), 0.08)
        texts = [path.read_text() for path in paths]
        for rep in range(reps):
            # SLURM side
            url = server.create_database(f"slurm_{rep}")
            env = slurm.env(_common.quiet_env(SIMMATE_DATABASE_URL=url,
                                              XDG_DATA_HOME=str(tmp / "data"),
                                              PREFECT__LOGGING__LEVEL="WARNING"))
            workers = WorkersCommand(["--jobs", "2", "--interface", "lo"], env, 2)
            try:
                samples["startup_cli"].append(workers.wait())
                samples["batch_slurm"].append(run_batch(paths, workers.address, env))
                samples["raw_slurm"].append(raw_map(workers.address, texts))
            finally:
                workers.stop()
            slurm.wait_for_queue_empty(60)
            # local side: the same workers' shape (processes, 1 thread, the preload)
            url = server.create_database(f"local_{rep}")
            env = _common.quiet_env(SIMMATE_DATABASE_URL=url, XDG_DATA_HOME=str(tmp / "data"))
            previous = os.environ.get("SIMMATE_DATABASE_URL")
            os.environ["SIMMATE_DATABASE_URL"] = url  # the nannies pass it to the workers
            try:
                with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", preload=["simmate_k8s.preload"],
                                  dashboard_address=":0") as cluster:
                    samples["batch_local"].append(run_batch(paths, cluster.scheduler_address,
                                                            env))
                    samples["raw_local"].append(raw_map(cluster.scheduler_address, texts))
            finally:
                if previous is None:
                    os.environ.pop("SIMMATE_DATABASE_URL", None)
                else:
                    os.environ["SIMMATE_DATABASE_URL"] = previous
            # the in-process API (what `run --cluster slurm` uses)
            url = server.create_database(f"api_{rep}")
            samples["startup_api"].append(api_startup(
                slurm.env(_common.quiet_env(SIMMATE_DATABASE_URL=url,
                                            XDG_DATA_HOME=str(tmp / "data")))))
            slurm.wait_for_queue_empty(60)
    med = {name: statistics.median(values) for name, values in samples.items()}
    ratios = [
        _common.ratio_row(f"CLI batch of {structures}: 2 SLURM workers / 2 local workers",
                          med["batch_slurm"] / med["batch_local"], TARGET_RATIO, at_most=True),
        _common.ratio_row("raw client.map: SLURM / local", med["raw_slurm"] / med["raw_local"],
                          TARGET_RATIO, at_most=True),
    ]
    return {"title": TITLE, "structures": structures, "reps": reps, "samples_s": samples,
            "median_s": med, "ratios": ratios, "machine": _common.machine()}


def markdown(results: dict) -> str:
    n = results["structures"]
    labels = {
        "startup_cli": "`workers slurm --jobs 2` → 2 workers connected (CLI output)",
        "startup_api": "`hpc.job_cluster(jobs=2)` → `wait_for_workers(2)` (in process)",
        "batch_slurm": f"`run relaxation_emt <{n} files> --address` on 2 SLURM workers",
        "batch_local": "the same on 2 local workers (LocalCluster, preload)",
        "raw_slurm": f"raw `client.map(emt.relax)` of {n} on the SLURM workers",
        "raw_local": f"raw `client.map(emt.relax)` of {n} on the local workers",
    }
    rows = []
    for name, label in labels.items():
        values = results["samples_s"][name]
        rows.append([label, f"{results['median_s'][name]:.2f}",
                     f"{min(values):.2f} – {max(values):.2f}", len(values)])
    table = _common.markdown_table(["measure", "s (median)", "min – max", "runs"], rows)
    machine = results["machine"]
    return "\n".join([
        f"{SECTION}", "",
        f"Measured {machine['date (UTC)']} UTC, load average at start "
        f"{machine['load average at start']} on {machine['cores (os.cpu_count)']} cores; "
        f"`python bench/slurm_workers.py --structures {n} --reps {results['reps']}`.", "",
        table, "", _common.ratio_table(results["ratios"]), "",
        "- SLURM is Debian's 22.05 (munged, slurmctld and slurmd of `tests/support/slurm.py`, "
        "one node, 2 CPUs, loopback), so this measures what the project adds on top of the "
        "queue: the job script, sbatch, the worker's start-up and registration. On a real "
        "cluster the queue wait comes first.",
        "- Both sides run the same CLI batch against an existing scheduler (`--address`), with "
        "the same worker shape (one process, one thread, the preload, a fresh PostgreSQL "
        "database per run); only who launched the workers differs. The raw rows do the same "
        "without Prefect or saving.",
        "- Start-up is dominated by interpreter start and imports in the job (distributed, "
        "SQLAlchemy, the preload's database round trip); sbatch and SLURM's scheduling take "
        "~0.1 s here.",
        "",
    ])


def write_section(text: str) -> None:
    doc = _common.REPO / "docs" / "benchmarks.md"
    current = doc.read_text()
    if SECTION in current:
        start = current.index(SECTION)
        rest = current[start + len(SECTION):]
        following = re.search(r"^## ", rest, re.MULTILINE)
        end = start + len(SECTION) + following.start() if following else len(current)
        current = current[:start] + text + "\n" + current[end:]
    else:
        current = current.rstrip("\n") + "\n\n" + text
    doc.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structures", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--write", action="store_true",
                        help="replace the SLURM section of docs/benchmarks.md")
    args = parser.parse_args()
    results = run(args.structures, args.reps)
    text = markdown(results)
    print(text)
    print(json.dumps({"median_s": results["median_s"],
                      "ratios": [(r["name"], round(r["value"], 3)) for r in results["ratios"]]}))
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
