"""Per-task result save on a real PostgreSQL: the worker's preloaded pool vs. a new connection
per task vs. a raw held psycopg connection (the limit).

All three run inside the same Dask worker process (a 1-worker LocalCluster started with
``preload=["simmate_k8s.preload"]``), timed inside the worker. Every save does the same work:
the task key (SHA-256 of the canonical JSON parameters), the JSON result, one
INSERT … ON CONFLICT (task_key) DO UPDATE and a commit. Keys are distinct (all inserts).

    python bench/save_per_task.py [--saves 2000] [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "Per-task result save (real PostgreSQL, timed inside a Dask worker)"
KINDS = ("preload", "raw", "connect")
LABELS = {
    "preload": "preload: worker's pooled engine, `results_engine()` + `database.save_result`",
    "connect": "connect-per-task: new psycopg connection per save (same SQL), closed after",
    "raw": "raw limit: one held psycopg connection, same upsert SQL, commit per save",
}


# --- runs inside the worker (pickled by value: only simmate_k8s, psycopg and the stdlib) ---------


def _record(i: int, tag: str, structure: str) -> tuple[dict, dict]:
    """Parameters and result shaped like a relaxation_emt save (POSCAR in and out)."""
    parameters = {"structure": structure, "fmax": 0.05, "max_steps": 500, "i": f"{tag}-{i}"}
    result = {"formula": "Cu32", "natoms": 32, "energy_ev": -0.123456789 * i,
              "energy_per_atom_ev": -0.0038, "max_force_ev_per_a": 0.0491, "converged": True,
              "steps": 17, "relaxed_poscar": structure}
    return parameters, result


def _upsert_sql() -> str:
    """The SQL that database.save_result executes, compiled once for psycopg (named params)."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.dialects.postgresql import insert

    from simmate_k8s.database import results_table

    columns = ("flow_name", "flow_run_id", "task_key", "input_hash", "status", "result",
               "created_at", "updated_at")
    statement = insert(results_table).values({c: None for c in columns})
    statement = statement.on_conflict_do_update(
        index_elements=["task_key"],
        set_={c: statement.excluded[c] for c in ("flow_run_id", "status", "result", "updated_at")},
    )
    return str(statement.compile(dialect=postgresql.psycopg.dialect()))


def _raw_params(i: int, tag: str, structure: str) -> dict:
    import json
    from datetime import UTC, datetime

    from simmate_k8s.database import input_hash

    parameters, result = _record(i, tag, structure)
    digest = input_hash(parameters)
    now = datetime.now(UTC)
    return {"flow_name": "bench", "flow_run_id": tag, "task_key": f"bench/relax/{digest}",
            "input_hash": digest, "status": "completed", "result": json.dumps(result),
            "created_at": now, "updated_at": now}


def measure_in_worker(kind: str, url: str, saves: int, tag: str, structure: str) -> float:
    """Seconds for ``saves`` saves of distinct keys, the way ``kind`` does them."""
    import time

    import psycopg

    from simmate_k8s import database
    from simmate_k8s.preload import results_engine

    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    options = {"connect_timeout": 5, "application_name": "simmate-k8s-bench"}
    if kind == "preload":
        engine = results_engine()  # the worker's preloaded pool (raises outside a preload worker)

        def save(i):
            parameters, result = _record(i, tag, structure)
            database.save_result(engine, flow_name="bench", task_name="relax",
                                 parameters=parameters, result=result, flow_run_id=tag)
        close = None
    elif kind == "raw":
        sql = _upsert_sql()
        connection = psycopg.connect(libpq_url, **options)

        def save(i):
            connection.execute(sql, _raw_params(i, tag, structure))
            connection.commit()
        close = connection.close
    elif kind == "connect":
        sql = _upsert_sql()

        def save(i):
            with psycopg.connect(libpq_url, **options) as connection:  # commits on exit
                connection.execute(sql, _raw_params(i, tag, structure))
        close = None
    else:
        raise ValueError(kind)
    for i in range(5):  # warm up: first connection, statement caches, prepared statements
        save(-1 - i)
    start = time.perf_counter()
    for i in range(saves):
        save(i)
    elapsed = time.perf_counter() - start
    if close:
        close()
    return elapsed


def _worker_pid() -> int:
    return os.getpid()


# --- the driver --------------------------------------------------------------------------------


def _example_structure() -> str:
    from simmate_k8s.flows.library import EXAMPLES_DIR

    return (EXAMPLES_DIR / "Cu_fcc_rattled.POSCAR").read_text()


def run(saves: int = 2000, reps: int = 5, connect_saves: int = 200) -> dict:
    import sys

    import cloudpickle
    from distributed import Client, LocalCluster

    from simmate_k8s import database
    from tests.support.postgres import PostgresServer

    # the worker unpickles measure_in_worker by value, whatever this module is called
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    structure = _example_structure()
    per_save: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with PostgresServer() as server:
        url = server.create_database("bench_save")
        engine = database.create_engine(url)
        database.ensure_schema(engine)
        engine.dispose()
        os.environ[database.URL_ENV] = url  # what the preload in the worker connects to
        try:
            with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                              preload=["simmate_k8s.preload"], dashboard_address=":0") as cluster, \
                    Client(cluster) as client:
                client.submit(_worker_pid, pure=False).result()
                for rep in range(reps):  # interleaved, so background load hits all alike
                    for kind in KINDS:
                        n = connect_saves if kind == "connect" else saves
                        tag = f"{kind}-{rep}-{uuid.uuid4().hex[:8]}"
                        seconds = client.submit(measure_in_worker, kind, url, n, tag, structure,
                                                pure=False).result()
                        per_save[kind].append(seconds / n * 1e6)
                rows = client.submit(_count_rows, url, pure=False).result()
        finally:
            os.environ.pop(database.URL_ENV, None)
    return summarize(per_save, saves, connect_saves, reps, rows)


def _count_rows(url: str) -> int:
    from simmate_k8s import database

    engine = database.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                database.sa.select(database.sa.func.count()).select_from(database.results_table)
            ).scalar_one()
    finally:
        engine.dispose()


def summarize(per_save: dict, saves: int, connect_saves: int, reps: int, rows: int) -> dict:
    medians = {kind: statistics.median(values) for kind, values in per_save.items()}
    ratios = [
        _common.ratio_row("preload / raw limit", medians["preload"] / medians["raw"], 1.25,
                          at_most=True),
        _common.ratio_row("connect-per-task / preload", medians["connect"] / medians["preload"],
                          10, at_most=False),
    ]
    return {"title": TITLE, "per_save_us": per_save, "median_us": medians, "ratios": ratios,
            "saves": saves, "connect_saves": connect_saves, "reps": reps, "rows": rows}


def markdown(results: dict) -> str:
    rows = []
    for kind in ("preload", "connect", "raw"):
        values = results["per_save_us"][kind]
        n = results["connect_saves"] if kind == "connect" else results["saves"]
        rows.append([LABELS[kind], f"{results['median_us'][kind]:,.0f}",
                     f"{min(values):,.0f} – {max(values):,.0f}", f"{results['reps']} × {n}"])
    table = _common.markdown_table(["path", "µs/save (median)", "min – max", "reps × saves"],
                                   rows)
    return (f"{table}\n\n{_common.ratio_table(results['ratios'])}\n\n"
            f"Rows in the table afterwards: {results['rows']:,} (every save a distinct key).")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=2000)
    parser.add_argument("--connect-saves", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results = run(args.saves, args.reps, args.connect_saves)
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
