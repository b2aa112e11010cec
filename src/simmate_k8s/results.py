"""The results tables and every read and write of them.

One row per piece of work in ``simmate_results``, keyed by :func:`item_key` (workflow, its
version, the input's content and the parameters), so the same work is found again whatever the
input file was called. ``simmate_batches`` and ``simmate_batch_items`` remember what each batch
(one flow run) was asked to do, in input order, including items it found already done.

A worker *claims* an item before computing it (one statement that also says whether it is
already done) and *finishes* it after; both are retried while the database is away. The claim
counts executions, so a task that Dask ran twice is visible, not hidden by the upsert.
Schema changes go through Alembic (:mod:`simmate_k8s.migrations`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from simmate_k8s.identity import finite_json, input_digest, item_key  # noqa: F401  (API)

metadata = sa.MetaData()
NULLABLE_JSON = sa.JSON(none_as_null=True)  # Python None is SQL NULL, not the JSON value null

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"

results_table = sa.Table(
    "simmate_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("workflow", sa.String(200), nullable=False, index=True),
    sa.Column("workflow_version", sa.String(32), nullable=False),
    sa.Column("input_name", sa.Text, nullable=False),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", NULLABLE_JSON, nullable=True),
    sa.Column("batch_id", sa.String(64), nullable=True, index=True),
    sa.Column("flow_run_id", sa.String(64), nullable=True),
    sa.Column("execution_id", sa.String(32), nullable=True),
    sa.Column("executions", sa.Integer, nullable=False),
    sa.Column("worker", sa.Text, nullable=True),
    sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("compute_seconds", sa.Float, nullable=True),
    sa.Column("progress", NULLABLE_JSON, nullable=True),
    sa.Column("provenance", NULLABLE_JSON, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

batches_table = sa.Table(
    "simmate_batches",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(200), nullable=False),
    sa.Column("workflow_version", sa.String(32), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("rerun", sa.Boolean, nullable=False),
    sa.Column("flow_run_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

batch_items_table = sa.Table(
    "simmate_batch_items",
    metadata,
    sa.Column("batch_id", sa.String(64), sa.ForeignKey("simmate_batches.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("input_name", sa.Text, nullable=False),
    sa.Column("result_key", sa.String(64), nullable=False, index=True),
)

TABLES = (results_table, batches_table, batch_items_table)


def now() -> datetime:
    return datetime.now(UTC)


# --- batches -------------------------------------------------------------------------------------


def _insert(dialect_name: str, table: sa.Table):
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def record_batch(engine: Engine, *, batch_id: str, workflow: str, version: str,
                 parameters: dict, items: list[dict], rerun: bool,
                 flow_run_id: str | None) -> None:
    """Remember the batch and its items in input order (again is a no-op: a retried plan)."""
    name = engine.dialect.name
    with engine.begin() as connection:
        connection.execute(_insert(name, batches_table).on_conflict_do_nothing(), dict(
            id=batch_id, workflow=workflow, workflow_version=version, parameters=parameters,
            size=len(items), rerun=rerun, flow_run_id=flow_run_id, created_at=now()))
        rows = [dict(batch_id=batch_id, position=item["position"], input_name=item["name"],
                     result_key=item["key"]) for item in items]
        for start in range(0, len(rows), 1000):
            connection.execute(_insert(name, batch_items_table).on_conflict_do_nothing(),
                               rows[start:start + 1000])


def completed_keys(engine: Engine, keys: Iterable[str]) -> set[str]:
    keys = list(dict.fromkeys(keys))
    found: set[str] = set()
    column = results_table.c.key
    with engine.connect() as connection:
        for start in range(0, len(keys), 500):
            query = sa.select(column).where(column.in_(keys[start:start + 500]),
                                            results_table.c.status == COMPLETED)
            found.update(connection.execute(query).scalars())
    return found


# --- claiming and finishing one item -------------------------------------------------------------


@functools.cache
def _claim_statement(dialect_name: str, rerun: bool):
    """INSERT the item as running, or take over an existing row unless it is already done.

    RETURNING gives a row only when this execution may compute; ``executions`` counts the
    executions within one batch (a retried statement of the same execution is not counted).
    """
    insert = _insert(dialect_name, results_table)
    table, new = results_table, insert.excluded
    same_execution = table.c.execution_id == new.execution_id
    may_compute = (table.c.status != COMPLETED) | same_execution
    if rerun:  # done before this batch does not count; done by this batch does
        may_compute = may_compute | (table.c.batch_id != new.batch_id) | table.c.batch_id.is_(None)
    executions = sa.case(
        (same_execution, table.c.executions),
        (table.c.batch_id == new.batch_id, table.c.executions + 1),
        else_=1,
    )
    updates = {column: new[column] for column in (
        "status", "workflow_version", "input_name", "batch_id", "flow_run_id", "execution_id",
        "worker", "queued_at", "started_at", "updated_at")}
    updates.update(executions=executions, error=None, result=None, finished_at=None,
                   compute_seconds=None, progress=None)
    return insert.on_conflict_do_update(
        index_elements=["key"], set_=updates, where=may_compute,
    ).returning(table.c.executions)


def claim(engine: Engine, item: dict, *, workflow: str, version: str, parameters: dict,
          batch_id: str, flow_run_id: str | None, execution_id: str, worker: str,
          queued_at: datetime, rerun: bool) -> int | None:
    """Mark the item running for this execution; returns its execution count in this batch,
    or None when the item is already completed (and may not be recomputed)."""
    stamp = now()
    row = dict(key=item["key"], workflow=workflow, workflow_version=version,
               input_name=item["name"], input_hash=item["digest"], parameters=parameters,
               status=RUNNING, batch_id=batch_id, flow_run_id=flow_run_id,
               execution_id=execution_id, executions=1, worker=worker, queued_at=queued_at,
               started_at=stamp, created_at=stamp, updated_at=stamp)
    with engine.begin() as connection:
        returned = connection.execute(_claim_statement(engine.dialect.name, rerun), row)
        count = returned.scalar_one_or_none()
    return count


@functools.cache
def _finish_statement():
    """The UPDATE that records an execution's outcome, built once (building it per item cost
    more than its round trip)."""
    table, p = results_table, sa.bindparam
    return (sa.update(table)
            .where(table.c.key == p("b_key"), table.c.execution_id == p("b_execution"))
            .values(status=p("b_status"), result=p("b_result", type_=NULLABLE_JSON),
                    error=p("b_error"), finished_at=p("b_now"),
                    compute_seconds=p("b_seconds"),
                    provenance=p("b_provenance", type_=NULLABLE_JSON), progress=None,
                    updated_at=p("b_now")))


def finish(engine: Engine, key: str, execution_id: str, *, status: str,
           result: dict | None = None, error: str | None = None,
           compute_seconds: float | None = None, provenance: dict | None = None) -> bool:
    """Record the outcome of this execution; False if another execution has taken the item
    over since (then that one's outcome counts)."""
    values = dict(b_key=key, b_execution=execution_id, b_status=status, b_result=result,
                  b_error=error, b_now=now(), b_seconds=compute_seconds,
                  b_provenance=provenance)
    with engine.begin() as connection:
        return connection.execute(_finish_statement(), values).rowcount == 1


def report_progress(engine: Engine, key: str, execution_id: str, progress: dict) -> None:
    """A heartbeat from inside a long computation (e.g. optimizer step and force)."""
    query = (sa.update(results_table)
             .where(results_table.c.key == key, results_table.c.execution_id == execution_id)
             .values(progress=progress, updated_at=now()))
    with engine.begin() as connection:
        connection.execute(query)


def row_for(engine: Engine, key: str) -> dict | None:
    with engine.connect() as connection:
        row = connection.execute(
            sa.select(results_table).where(results_table.c.key == key)).first()
    return dict(row._mapping) if row else None


# --- reading -------------------------------------------------------------------------------------


def batch_report(engine: Engine, batch_id: str) -> list[dict]:
    """Every item of a batch in input order, with its row (status ``missing`` if it has none).

    ``cached`` marks items whose completed row was made by another batch."""
    items, results = batch_items_table, results_table
    query = (sa.select(items.c.position, items.c.input_name, items.c.result_key, results)
             .select_from(items.outerjoin(results, results.c.key == items.c.result_key))
             .where(items.c.batch_id == batch_id).order_by(items.c.position))
    report = []
    with engine.connect() as connection:
        for row in connection.execute(query):
            entry = dict(row._mapping)
            entry["input_name"] = row.input_name  # the batch's own name for it
            entry["key"] = row.result_key
            if entry["status"] is None:
                entry["status"] = "missing"
            entry["cached"] = entry["status"] == COMPLETED and entry["batch_id"] != batch_id
            report.append(entry)
    return report


def status_counts(engine: Engine, batch_id: str) -> dict[str, int]:
    """Rows computed by this batch, per status (the progress of a running batch)."""
    query = (sa.select(results_table.c.status, sa.func.count())
             .where(results_table.c.batch_id == batch_id).group_by(results_table.c.status))
    with engine.connect() as connection:
        return {status: count for status, count in connection.execute(query)}


def running_progress(engine: Engine, batch_id: str) -> list[dict]:
    query = (sa.select(results_table.c.input_name, results_table.c.progress)
             .where(results_table.c.batch_id == batch_id,
                    results_table.c.status == RUNNING,
                    results_table.c.progress.is_not(None)))
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query) if row.progress]


def load_rows(engine: Engine, *, workflow: str | None = None, batch_id: str | None = None,
              status: str | None = None) -> list[dict]:
    """Rows for ``results``: a batch's items in input order, otherwise every row ordered by the
    batch that computed it and the position it had there."""
    if batch_id is not None:
        rows = batch_report(engine, batch_id)
        return [row for row in rows if (workflow is None or row["workflow"] == workflow)
                and (status is None or row["status"] == status)]
    results, items, batches = results_table, batch_items_table, batches_table
    query = (sa.select(results, items.c.position, batches.c.created_at.label("batch_created"))
             .select_from(results
                          .outerjoin(items, (items.c.batch_id == results.c.batch_id)
                                     & (items.c.result_key == results.c.key))
                          .outerjoin(batches, batches.c.id == results.c.batch_id))
             .order_by(batches.c.created_at, items.c.position, results.c.id))
    if workflow is not None:
        query = query.where(results.c.workflow == workflow)
    if status is not None:
        query = query.where(results.c.status == status)
    rows = []
    seen = set()
    with engine.connect() as connection:
        for row in connection.execute(query):
            if row.key in seen:  # an input given twice in one batch
                continue
            seen.add(row.key)
            entry = dict(row._mapping)
            entry.pop("batch_created", None)
            rows.append(entry)
    return rows


def has_tables(engine: Engine) -> bool:
    return sa.inspect(engine).has_table(results_table.name)


# --- a batch's outcome ---------------------------------------------------------------------------


def summarize(report: list[dict], batch_id: str) -> dict:
    """Counts and names from :func:`batch_report`: what this batch computed, found done,
    failed, left unfinished, and executed more than once."""
    summary = {"batch_id": batch_id, "total": len(report), "completed": 0, "cached": 0,
               "failed": [], "missing": [], "reexecuted": []}
    seen = set()
    for row in report:
        first = row["key"] not in seen
        seen.add(row["key"])
        if row["cached"] or not first and row["status"] == COMPLETED:
            summary["cached"] += 1
        elif row["status"] == COMPLETED:
            summary["completed"] += 1
        elif row["status"] == FAILED:
            summary["failed"].append((row["input_name"], row["error"] or "failed"))
        else:
            summary["missing"].append(row["input_name"])
        if first and row.get("batch_id") == batch_id and (row.get("executions") or 0) > 1:
            summary["reexecuted"].append((row["input_name"], row["executions"]))
    return summary


def failure_message(summary: dict, limit: int = 3) -> str:
    """One line naming the failed (and unfinished) inputs and why."""
    parts = []
    failed, missing = summary["failed"], summary["missing"]
    if failed:
        named = "; ".join(f"{name} ({error})" for name, error in failed[:limit])
        more = f"; and {len(failed) - limit} more" if len(failed) > limit else ""
        parts.append(f"{len(failed)} of {summary['total']} items failed: {named}{more}")
    if missing:
        named = ", ".join(missing[:limit]) + (f" and {len(missing) - limit} more"
                                              if len(missing) > limit else "")
        parts.append(f"{len(missing)} not finished: {named}")
    return "; ".join(parts)


def open_results_database(settings) -> tuple[Engine, str]:
    """(engine, server version) for ``settings.database_url``, checked with a round trip and at
    the current schema (an empty database is created); DatabaseError otherwise. What workers
    and commands call before any work starts."""
    from simmate_k8s import database, migrations
    from simmate_k8s.errors import SchemaNotCreatedError

    engine = database.create_engine(database.parse_url(settings.database_url))
    try:
        version = database.connect_with_retry(engine, settings.connect_timeout)
        # A writer login cannot create the tables; their owner (the chart's results-schema Job)
        # may be creating them right now: wait for it as for the server.
        database.retrying(lambda: migrations.ensure_current(engine),
                          lambda error: isinstance(error, SchemaNotCreatedError),
                          settings.connect_timeout)
    except BaseException:
        engine.dispose()
        raise
    return engine, version


def row_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(results_table)
                                  ).scalar_one()
