"""Per-item database writes on a real PostgreSQL: the worker's preloaded pool vs. a new
connection per item vs. a raw held psycopg connection (the limit).

Every item of a batch is written twice by the worker that computes it: a *claim* before
computing (``results.claim``: one INSERT … ON CONFLICT (key) DO UPDATE … WHERE … RETURNING, which
also says whether the item is already done) and a *finish* after (``results.finish``: one
UPDATE with the result), each in its own transaction. All three paths run inside the same Dask
worker process (a 1-worker LocalCluster started with ``preload=["simmate_k8s.preload"]``),
timed inside the worker, on distinct keys (every claim an insert):

- preload: what ``flows.library._compute_item`` does, minus the computation: the worker's
  pooled engine through ``_with_database`` (retry wrapper) → ``results.claim`` and
  ``results.finish``.
- raw: one held psycopg connection executing the same two statements (the claim compiled from
  ``results._claim_statement("postgresql", rerun=False)``, the update as ``results.finish``
  executes it; both checked byte for byte against what SQLAlchemy sends to psycopg), commit
  after each.
- connect-per-task: the same two statements on a new psycopg connection per item, closed
  after.

    python bench/save_per_task.py [--saves 2000] [--reps 5] [--connect-saves 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid

import _common  # bench/ is on sys.path: scripts run as `python bench/NAME.py`

TITLE = "Per-item claim + finish (real PostgreSQL, timed inside a Dask worker)"
KINDS = ("preload", "raw", "connect")
LABELS = {
    "preload": "preload: worker's pooled engine, `results.claim` + `results.finish` "
               "(through the tasks' retry wrapper)",
    "connect": "connect-per-task: new psycopg connection per item (same two statements), "
               "closed after",
    "raw": "raw limit: one held psycopg connection, same two statements, commit after each",
}
WORKFLOW, VERSION = "bench_relax", "1"
PARAMETERS = {"fmax": 0.05, "max_steps": 500}
# the claim row's columns, as results.claim binds them
CLAIM_COLUMNS = ("key", "workflow", "workflow_version", "input_name", "input_hash", "parameters",
                 "status", "batch_id", "flow_run_id", "execution_id", "executions", "worker",
                 "queued_at", "started_at", "created_at", "updated_at")
FINISH_PARAMS = {"b_status", "b_error", "b_result", "b_now", "b_seconds", "progress",
                 "b_provenance", "b_key", "b_execution"}


# --- runs inside the worker (pickled by value: only simmate_k8s, psycopg and the stdlib) ---------


def _item(i: int, tag: str) -> dict:
    import hashlib

    digest = hashlib.sha256(f"{tag}-{i}".encode()).hexdigest()
    return {"key": hashlib.sha256(f"key-{tag}-{i}".encode()).hexdigest(), "name": f"{i}.POSCAR",
            "digest": digest}


def _result(i: int, structure: str) -> dict:
    """Shaped like a relaxation_emt result (the relaxed POSCAR included, ~2.5 kB)."""
    return {"formula": "Cu32", "natoms": 32, "energy_ev": -0.123456789 * i,
            "energy_per_atom_ev": -0.0038, "max_force_ev_per_a": 0.0491, "converged": True,
            "steps": 17, "relaxed_poscar": structure}


def statements(url: str) -> dict:
    """The claim and finish SQL as psycopg receives them from SQLAlchemy, and the claim's
    constant parameters. The claim is compiled from ``results._claim_statement``; both are
    checked against what ``results.claim`` and ``results.finish`` really execute (one item on
    ``url``, captured with ``before_cursor_execute``), so a change in results.py stops this
    bench instead of skewing it."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from simmate_k8s import database, results

    compiled = results._claim_statement("postgresql", rerun=False).compile(
        dialect=postgresql.psycopg.dialect(), column_keys=list(CLAIM_COLUMNS))
    constants = {key: value for key, value in compiled.params.items() if key not in CLAIM_COLUMNS}
    sent = []
    engine = database.create_engine(url)
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _c, _cur, statement, params, _ctx, _many: sent.append((statement,
                                                                                 params)))
    try:
        item = _item(0, "capture")
        results.claim(engine, item, workflow=WORKFLOW, version=VERSION, parameters=PARAMETERS,
                      batch_id="capture", flow_run_id="capture", execution_id="capture",
                      worker="capture", queued_at=results.now(), rerun=False)
        results.finish(engine, item["key"], "capture", status=results.COMPLETED, result={},
                       compute_seconds=0.1, provenance={})
    finally:
        engine.dispose()
    sent = [(statement, params) for statement, params in sent
            if statement.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    if len(sent) != 2:
        raise RuntimeError(f"expected results.claim and results.finish to execute one "
                           f"statement each, saw {len(sent)}; update bench/save_per_task.py")
    (claim_sql, _), (finish_sql, finish_params) = sent
    if str(compiled) != claim_sql:
        raise RuntimeError("results.claim no longer executes _claim_statement(rerun=False) as "
                           "compiled here; update bench/save_per_task.py")
    if set(finish_params) != FINISH_PARAMS:
        raise RuntimeError(f"results.finish binds {sorted(finish_params)}, not "
                           f"{sorted(FINISH_PARAMS)}; update bench/save_per_task.py")
    return {"claim": claim_sql, "claim_constants": constants, "finish": finish_sql}


def measure_in_worker(kind: str, url: str, saves: int, tag: str, structure: str,
                      sql: dict) -> float:
    """Seconds for ``saves`` items (claim + finish each) of distinct keys, done as ``kind``."""
    import time

    import psycopg
    from psycopg.types.json import Json

    from simmate_k8s import preload, results

    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    options = {"connect_timeout": 5, "application_name": "simmate-k8s-bench"}
    queued_at, worker, provenance = results.now(), "bench-worker", preload.provenance()

    if kind == "preload":
        from simmate_k8s.flows.library import _with_database

        def save(i):
            item, execution_id = _item(i, tag), uuid.uuid4().hex
            executions = _with_database(lambda engine: results.claim(
                engine, item, workflow=WORKFLOW, version=VERSION, parameters=dict(PARAMETERS),
                batch_id=tag, flow_run_id=tag, execution_id=execution_id, worker=worker,
                queued_at=queued_at, rerun=False))
            assert executions == 1, executions
            result = _result(i, structure)
            done = _with_database(lambda engine: results.finish(
                engine, item["key"], execution_id, status=results.COMPLETED, result=result,
                compute_seconds=0.25, provenance=provenance))
            assert done
    else:
        def write(connection, i):
            item, execution_id, stamp = _item(i, tag), uuid.uuid4().hex, results.now()
            row = {**sql["claim_constants"], "key": item["key"], "workflow": WORKFLOW,
                   "workflow_version": VERSION, "input_name": item["name"],
                   "input_hash": item["digest"], "parameters": Json(dict(PARAMETERS)),
                   "status": results.RUNNING, "batch_id": tag, "flow_run_id": tag,
                   "execution_id": execution_id, "executions": 1, "worker": worker,
                   "queued_at": queued_at, "started_at": stamp, "created_at": stamp,
                   "updated_at": stamp}
            assert connection.execute(sql["claim"], row).fetchone()[0] == 1
            connection.commit()
            finished = results.now()
            cursor = connection.execute(sql["finish"], {
                "b_status": results.COMPLETED, "b_error": None,
                "b_result": Json(_result(i, structure)), "b_now": finished, "b_seconds": 0.25,
                "progress": None, "b_provenance": Json(provenance), "b_key": item["key"],
                "b_execution": execution_id})
            assert cursor.rowcount == 1
            connection.commit()

        if kind == "raw":
            held = psycopg.connect(libpq_url, **options)

            def save(i):
                write(held, i)
        elif kind == "connect":
            def save(i):
                with psycopg.connect(libpq_url, **options) as connection:
                    write(connection, i)
        else:
            raise ValueError(kind)
    for i in range(5):  # warm up: first connection, statement caches, prepared statements
        save(-1 - i)
    start = time.perf_counter()
    for i in range(saves):
        save(i)
    elapsed = time.perf_counter() - start
    if kind == "raw":
        held.close()
    return elapsed


def _row_summary(url: str) -> dict:
    """Rows per status, and the rows executed more than once (none expected)."""
    import sqlalchemy as sa

    from simmate_k8s import database, results

    engine = database.create_engine(url)
    table = results.results_table
    try:
        with engine.connect() as connection:
            statuses = dict(connection.execute(
                sa.select(table.c.status, sa.func.count()).group_by(table.c.status)).all())
            again = connection.execute(sa.select(sa.func.count()).select_from(table)
                                       .where(table.c.executions != 1)).scalar_one()
    finally:
        engine.dispose()
    return {"statuses": statuses, "reexecuted": again}


# --- the driver --------------------------------------------------------------------------------


def _example_structure() -> str:
    from pathlib import Path

    import simmate_k8s.flows

    examples = Path(simmate_k8s.flows.__file__).parent / "examples"
    return (examples / "Cu_fcc_rattled.POSCAR").read_text()


def run(saves: int = 2000, reps: int = 5, connect_saves: int = 200) -> dict:
    import sys

    import cloudpickle
    from distributed import Client, LocalCluster

    from simmate_k8s import database, migrations
    from simmate_k8s.settings import DATABASE_URL
    from tests.support.postgres import PostgresServer

    # the worker unpickles measure_in_worker by value, whatever this module is called
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    structure = _example_structure()
    per_item: dict[str, list[float]] = {kind: [] for kind in KINDS}
    with PostgresServer() as server:
        url = server.create_database("bench_save")
        engine = database.create_engine(url)
        migrations.upgrade(engine)
        engine.dispose()
        sql = statements(url)
        previous = os.environ.get(DATABASE_URL)
        os.environ[DATABASE_URL] = url  # what the preload in the worker connects to
        try:
            with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                              preload=["simmate_k8s.preload"], dashboard_address=":0") as cluster, \
                    Client(cluster) as client:
                for rep in range(reps):  # interleaved, so background load hits all alike
                    for kind in KINDS:
                        n = connect_saves if kind == "connect" else saves
                        tag = f"{kind}-{rep}-{uuid.uuid4().hex[:8]}"
                        seconds = client.submit(measure_in_worker, kind, url, n, tag, structure,
                                                sql, pure=False).result()
                        per_item[kind].append(seconds / n * 1e6)
                rows = client.submit(_row_summary, url, pure=False).result()
        finally:
            if previous is None:
                os.environ.pop(DATABASE_URL, None)
            else:
                os.environ[DATABASE_URL] = previous
    return summarize(per_item, saves, connect_saves, reps, rows)


def summarize(per_item: dict, saves: int, connect_saves: int, reps: int, rows: dict) -> dict:
    medians = {kind: statistics.median(values) for kind, values in per_item.items()}
    ratios = [
        _common.ratio_row("preload / raw limit (claim + finish)",
                          medians["preload"] / medians["raw"], 1.25, at_most=True),
        _common.ratio_row("connect-per-task / preload", medians["connect"] / medians["preload"],
                          10, at_most=False),
    ]
    return {"title": TITLE, "per_item_us": per_item, "median_us": medians, "ratios": ratios,
            "saves": saves, "connect_saves": connect_saves, "reps": reps, "rows": rows}


def markdown(results: dict) -> str:
    rows = []
    for kind in ("preload", "connect", "raw"):
        values = results["per_item_us"][kind]
        n = results["connect_saves"] if kind == "connect" else results["saves"]
        rows.append([LABELS[kind], f"{results['median_us'][kind]:,.0f}",
                     f"{min(values):,.0f} – {max(values):,.0f}", f"{results['reps']} × {n}"])
    table = _common.markdown_table(
        ["path", "µs per item (median)", "min – max", "reps × items"], rows)
    statuses = ", ".join(f"{count:,} {status}"
                         for status, count in sorted(results["rows"]["statuses"].items()))
    return (f"{table}\n\n{_common.ratio_table(results['ratios'])}\n\n"
            f"Rows afterwards: {statuses} (every item a distinct key, warm-ups included); rows "
            f"executed more than once: {results['rows']['reexecuted']}.")


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=2000, help="items per rep (held paths)")
    parser.add_argument("--connect-saves", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    results = run(args.saves, args.reps, args.connect_saves)
    _common.print_section(TITLE, markdown(results))
    return results


if __name__ == "__main__":
    main()
