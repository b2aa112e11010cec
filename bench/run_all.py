"""Run every benchmark and write docs/benchmarks.md (the machine, each table with its target).

    python bench/run_all.py [--quick] [--output PATH]

Takes ~5 minutes on a quiet 2-core machine, plus ~5 for the SLURM section when SLURM is
installed (--quick: a few minutes, fewer items and repetitions; for trying the scripts, not for
the numbers in the docs). ``--output`` writes somewhere else than docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`
import batch
import cli_startup
import image_size
import save_per_task
import slurm_workers
import small_static

DOC = _common.REPO / "docs" / "benchmarks.md"

# name → module, in the order they run (the quick, CPU-light ones first)
MODULES = {"cli_startup": cli_startup, "save_per_task": save_per_task, "batch": batch,
           "small_static": small_static, "image_size": image_size,
           "slurm_workers": slurm_workers}
FULL = {"cli_startup": {"runs": 15}, "image_size": {},
        "save_per_task": {"saves": 2000, "reps": 5, "connect_saves": 200},
        "batch": {"structures": 100, "reps": 3, "serial_reps": 1},
        "small_static": {"items": 1000, "reps": 3},
        "slurm_workers": {"structures": 100, "reps": 3}}
QUICK = {"cli_startup": {"runs": 5}, "image_size": {},
         "save_per_task": {"saves": 500, "reps": 2, "connect_saves": 50},
         "batch": {"structures": 20, "reps": 1, "serial_reps": 1},
         "small_static": {"items": 200, "reps": 1},
         "slurm_workers": {"structures": 20, "reps": 1}}
# the unit of a section's ratios when a row does not name its own
UNITS = {"cli_startup": " s"}

SAVE_NOTES = """\
- Every item of a batch is written twice by the worker that computes it (`flows/library.py`,
  `_compute_item`): a **claim** before computing (`results.claim`: `INSERT … ON CONFLICT (key)
  DO UPDATE … WHERE` the row is not completed `… RETURNING executions`, which both marks the
  item running and says whether it may be computed, counting executions) and a **finish**
  after (`results.finish`: `UPDATE … WHERE key = … AND execution_id = …` with the result, the
  compute time and the provenance), each in its own transaction. All three paths here do
  exactly that for a relaxation-sized result (~2.5 kB with the POSCAR): a new execution id, the
  JSON parameters, result and provenance, two statements and two commits per item.
- All three run in the same Dask worker process (a 1-worker processes `LocalCluster` started
  with `preload=["simmate_k8s.preload"]`), interleaved, timed inside the worker after 5 warm-up
  items, on distinct keys (every claim an insert). The raw paths execute the SQL that
  SQLAlchemy sends to psycopg for `results.claim` and `results.finish`, byte for byte (checked
  at the start against one real claim and finish; the bench stops if results.py changes them).
  PostgreSQL is a private `initdb` server on loopback (scram-sha-256 password auth, `fsync` off
  via `-F`).
- psycopg prepares each statement server-side after 5 executions on the held connections; the
  connect-per-task path never gets there (a new session per item) and pays a TCP connect plus
  a SCRAM handshake per item, now shared by two statements.
- The pool's checkout pre-pings only connections idle for ≥ 1 s (`database.PING_AFTER_IDLE`): a
  busy worker does not pay a round trip per statement for it; a connection that dies in use
  fails its statement, is invalidated, and the tasks' retry wrapper (`_with_database`, waiting
  out an outage for `SIMMATE_DB_SAVE_RETRY`) runs it again on a fresh one.
- Before issue 7 each item was one upsert (`save_result`), executed by psycopg on the pool's
  DBAPI connection: 1.07× the raw limit on a quiet machine, and connect-per-task took 17.5×
  as long."""

BATCH_NOTES = """\
- One `simmate-k8s run` is one batch and one Prefect flow run: `plan` (checks the inputs
  again, records the batch and its items in input order, drops what is already done, groups
  the rest into chunks), `compute` mapped over the chunks (`max(1, items // (50 × workers))`
  items each: 1 for 100 items on 2 workers, so 100 compute tasks), and `summary` (reads the
  batch back from the database and fails the flow run naming any failed input). Each item is
  claimed and finished by the worker that computes it, on the worker's preloaded pool. The
  flow runs use the CLI's one Dask client (`engine.SharedClientDaskExecutor`), which also
  leaves Prefect's config out of every task's context (the workers load their own).
- Raw `client.map` saves nothing and starts its cluster without the preload: the ratio charges
  the CLI with the input checks, the database check, the preload, Prefect (imported in the CLI
  and on each worker's first task), the plan and summary tasks and a claim and a finish per item.
  Both include interpreter start, imports, cluster start and shutdown.
- **Resubmit**: when every item of the batch is already completed, `run` checks the inputs,
  finds every key done (`results.completed_keys`), records the batch (so `results --batch`
  lists it, items marked cached) and prints the report, without starting Dask or importing
  Prefect. Its wall time is interpreter start, imports (SQLAlchemy, psycopg, numpy for the
  input checks), reading and checking the inputs (closest pair under periodic boundaries),
  a connection and a few queries. The check that it computed nothing reads every row before
  and after: status, `finished_at` and `executions` must be unchanged.
- The serial baseline runs with `OMP_NUM_THREADS=MKL_NUM_THREADS=OPENBLAS_NUM_THREADS=1`, which
  Dask's nanny sets in every worker (`distributed.nanny.pre-spawn-environ`). Without it, numpy's
  threaded OpenBLAS made BFGS's small eigendecompositions ~2.7× slower on this busy 2-core
  machine (100 × 32-atom relaxations: 10.3 s vs. 3.7 s), which showed as a bogus 4× "speedup" on
  2 workers. (Worth knowing for the local executor too: relaxations outside Dask run with
  threaded BLAS.)
- History: before issue 7 every input was its own flow run (4 Dask tasks each, after folding
  the save into the compute task and sharing one client between flow runs), ~35 ms of worker
  CPU and ~25 ms of CLI CPU of Prefect per input: CLI / raw 1.22× on a quiet machine."""

STATIC_NOTES = """\
- The work per item is a few milliseconds (one EMT energy and forces of 32 atoms), so this
  shows what a batch costs per item on top of the computation: the per-run part (importing
  Prefect, the database check, the preload, the plan and summary tasks, each worker importing
  Prefect and the flow library on its first task) spread over the items, plus per item a claim
  and a finish round trip and the item's share of a Prefect task run.
- Chunks are why this is affordable: with the automatic chunk size a Prefect task (its
  TaskRunner state machine, a Dask task, its result) is paid once per chunk; `--chunk-size 1`
  pays it for every item. Both CLI runs get the inputs as files, check them and write to a
  fresh database on the private PostgreSQL; raw `client.map` does none of that."""

GENERAL_NOTES = """\
- Every measurement is repeated and interleaved with the variants it is compared to, and
  medians are reported; the load averages above say how quiet the 2 cores were. The parallel
  numbers (batch speedup, efficiency, CLI/raw, orchestration per item) are the most sensitive
  to other load.
- Benchmarks, not tests: nothing here asserts a timing; PASS/MISS only compares the median to
  the target from issues 2 and 7. A run that exits non-zero stops the bench; what each run did
  (its `--json` summary, the rows it wrote) is printed next to its timings."""

NOTES = {"save_per_task": SAVE_NOTES, "batch": BATCH_NOTES, "small_static": STATIC_NOTES}


def _slurm_missing() -> str | None:
    """Why the SLURM section cannot run here, or None."""
    from tests.support.slurm import missing_programs

    missing = missing_programs()
    if missing:
        return f"SLURM programs not found: {', '.join(missing)} (`make slurm-tools`)"
    if os.geteuid() != 0:
        return "the private SLURM of tests/support/slurm.py needs root"
    return None


def _previous_section(heading: str, doc: Path) -> str | None:
    """The section under ``heading`` in an existing docs/benchmarks.md, up to the next one."""
    if not doc.exists():
        return None
    text = doc.read_text()
    if heading not in text:
        return None
    start = text.index(heading)
    following = re.search(r"^## ", text[start + len(heading):], re.MULTILINE)
    end = start + len(heading) + following.start() if following else len(text)
    return text[start:end].rstrip()


def run_all(config: dict, only: set[str] | None = None) -> dict:
    started = time.perf_counter()
    info = _common.machine()
    results = {}
    for name, module in MODULES.items():
        if only and name not in only:
            continue
        if name == "slurm_workers":
            reason = _slurm_missing()
            if reason:
                results[name] = {"title": module.TITLE, "missing": reason, "ratios": []}
                print(f"skipping {name}: {reason}", file=sys.stderr, flush=True)
                continue
        print(f"running {name} {config[name]} ...", file=sys.stderr, flush=True)
        section_start = time.perf_counter()
        results[name] = module.run(**config[name])
        results[name]["elapsed_s"] = time.perf_counter() - section_start
        print("\n" + section(name, results[name]) + "\n", flush=True)
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["run_all wall time"] = f"{time.perf_counter() - started:.0f} s"
    return {"machine": info, "results": results}


def section(name: str, result: dict, doc: Path = DOC) -> str:
    """One section of the document: its heading, its tables and its notes."""
    module = MODULES[name]
    if name == "slurm_workers":  # its markdown carries its own heading (it can --write alone)
        if "missing" in result:
            return _previous_section(slurm_workers.SECTION, doc) or (
                f"{slurm_workers.SECTION}\n\nNot measured: {result['missing']}.")
        return module.markdown(result).rstrip()
    text = f"## {module.TITLE}\n\n{module.markdown(result)}"
    return f"{text}\n\n{NOTES[name]}" if name in NOTES else text


def document(run: dict, quick: bool, doc: Path = DOC) -> str:
    results = run["results"]
    summary_rows = []
    for name, result in results.items():
        for ratio in result["ratios"]:
            measured, target = _common.format_value(ratio, UNITS.get(name, "×"))
            summary_rows.append([ratio["name"], measured, target, f"**{ratio['verdict']}**"])
    sections = [
        "# Benchmarks",
        "Written by `python bench/run_all.py` (`make bench`); do not edit by hand. Each script in "
        "`bench/` also runs on its own and prints its table (`python bench/save_per_task.py`, "
        "`bench/batch.py`, `bench/small_static.py`, `bench/cli_startup.py`, "
        "`bench/slurm_workers.py`, `bench/image_size.py`, `bench/structure_checks.py`)." + (
            "\n\n**Quick mode (`--quick`): fewer items and repetitions, not the reference "
            "numbers.**" if quick else ""),
        "## Machine\n\n" + _common.markdown_table(
            ["", ""], [[key, value] for key, value in run["machine"].items()]),
        "## Targets (issues 2, 7 and 9)\n\n" + _common.markdown_table(
            ["measure", "measured (median)", "target", ""], summary_rows),
        *(section(name, result, doc) for name, result in results.items()),
        f"## Notes\n\n{GENERAL_NOTES}",
    ]
    return "\n\n".join(sections) + "\n"


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    parser.add_argument("--output", type=Path, default=DOC,
                        help=f"where to write the document [default: {DOC}]")
    parser.add_argument("--only", action="append", choices=sorted(MODULES), metavar="NAME",
                        help="run only this benchmark (repeatable; for trying the scripts)")
    args = parser.parse_args()
    if args.only and args.output.resolve() == DOC.resolve():
        parser.error("--only writes a partial document: give --output PATH")
    run = run_all(QUICK if args.quick else FULL, set(args.only or ()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(document(run, args.quick))
    print(f"wrote {args.output} ({run['machine']['run_all wall time']})", file=sys.stderr)
    return run


if __name__ == "__main__":
    main()
