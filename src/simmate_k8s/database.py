"""The results database: URL handling, engines, the results table and an idempotent save.

One setting, ``SIMMATE_DATABASE_URL``. Unset, results go to a SQLite file in the user's data
directory (the embedded default); clusters point it at PostgreSQL. Every URL this module prints
goes through :func:`redact`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from simmate_k8s.errors import UserError

URL_ENV = "SIMMATE_DATABASE_URL"
CONNECT_TIMEOUT_ENV = "SIMMATE_DB_CONNECT_TIMEOUT"
DEFAULT_CONNECT_TIMEOUT = 30.0
URL_HELP = "expected e.g. postgresql://user:password@host:5432/dbname or sqlite:///path/results.db"

metadata = sa.MetaData()

results_table = sa.Table(
    "simmate_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow_name", sa.String(200), nullable=False, index=True),
    sa.Column("flow_run_id", sa.String(64), nullable=True),
    # flow + task + input hash: the identity of one piece of work (a rerun overwrites, never adds)
    sa.Column("task_key", sa.String(300), nullable=False, unique=True),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


def default_url() -> str:
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'simmate-k8s' / 'results.sqlite3'}"


def configured_url() -> str:
    return os.environ.get(URL_ENV) or default_url()


def parse_url(url: str) -> URL:
    """Parse a database URL, choosing the psycopg 3 driver for PostgreSQL.

    Raises UserError (one line, password redacted) when the URL is not usable.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise UserError(f"{URL_ENV} is not a database URL ({URL_HELP})") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        if not parsed.host or not parsed.database:
            raise UserError(
                f"{URL_ENV}={redact(parsed)} needs a host and a database name ({URL_HELP})"
            )
    elif backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UserError(f"{URL_ENV}={redact(parsed)} needs a file path ({URL_HELP})")
    else:
        raise UserError(
            f"{URL_ENV}={redact(parsed)} uses '{backend}'; "
            f"only postgresql and sqlite are supported ({URL_HELP})"
        )
    return parsed


def redact(url: str | URL) -> str:
    """The URL with its password replaced by ``***``; safe to print and log."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except Exception:
            return "<unparsable URL>"
    return url.render_as_string(hide_password=True)


def connect_timeout() -> float:
    raw = os.environ.get(CONNECT_TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{CONNECT_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise UserError(f"{CONNECT_TIMEOUT_ENV}={raw!r} must be more than 0 seconds")
    return value


def create_engine(url: str | URL | None = None, pool_size: int = 2) -> Engine:
    """A pooled engine that survives a database restart.

    PostgreSQL connections are pre-pinged only after sitting idle in the pool for
    ``PING_AFTER_IDLE`` seconds (see :func:`_ping_when_idle`); a connection that dies while in
    steady use is invalidated by SQLAlchemy on the failing statement (with the whole pool) and
    :func:`save_result` retries on a fresh one.
    """
    parsed = url if isinstance(url, URL) else parse_url(url or configured_url())
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"timeout": 60, "check_same_thread": False}
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = sa.create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"connect_timeout": 5, "application_name": "simmate-k8s"},
    )
    _ping_when_idle(engine, PING_AFTER_IDLE)
    return engine


# A connection checked back in less than this long ago is used without a ping (one round trip
# per save saved in busy workers, cf. HikariCP's aliveBypassWindow); older ones are pinged first.
PING_AFTER_IDLE = 1.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pre-ping on checkout, but only connections idle in the pool for ``idle_seconds``.

    A failed ping does what SQLAlchemy's own ``pool_pre_ping`` does: InvalidatePoolError, so the
    pool discards this and every older connection and checks out a fresh one.
    """

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return  # new, or in steady use: a dead one fails its statement and is retried
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.InvalidatePoolError(f"pre-ping failed: {error}") from error


def _sqlite_pragmas(dbapi_connection, _record):
    # WAL lets several local worker processes read while one writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def check_connection(engine: Engine) -> str:
    """One real round trip; returns the server version string."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return "SQLite " + connection.execute(sa.text("select sqlite_version()")).scalar_one()
        return connection.execute(sa.text("show server_version")).scalar_one()


def retrying(action, transient, timeout: float):
    """``action()``, retried with backoff (0.1 s doubling to 2 s) while ``transient(error)``,
    for at most ``timeout`` seconds; then the last error is raised."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        try:
            return action()
        except Exception as error:
            remaining = deadline - time.monotonic()
            if not transient(error) or remaining <= 0:
                raise
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


def connect_with_retry(engine: Engine, timeout: float, create_schema: bool = True) -> str:
    """Round-trip until it works or ``timeout`` seconds pass; returns the server version.

    Creates the results table once connected (unless told not to). Raises ConnectionError with
    one clear line.
    """
    attempts = 0

    def connect():
        nonlocal attempts
        attempts += 1
        version = check_connection(engine)
        if create_schema:
            ensure_schema(engine)
        return version

    try:
        return retrying(connect, lambda error: isinstance(error, sa.exc.DBAPIError), timeout)
    except sa.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        raise ConnectionError(
            f"cannot reach the results database {redact(engine.url)} after {attempts} "
            f"attempts in {timeout:g} s ({reason}); check {URL_ENV} and that the "
            f"database accepts connections from this host"
        ) from None


def ensure_schema(engine: Engine) -> None:
    metadata.create_all(engine, checkfirst=True)


def table_exists(engine: Engine) -> bool:
    return sa.inspect(engine).has_table(results_table.name)


def input_hash(parameters: dict[str, Any]) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


ROW_KEYS = ("flow_name", "flow_run_id", "task_key", "input_hash", "status", "result",
            "created_at", "updated_at")
UPSERT_UPDATES = ("flow_run_id", "status", "result", "updated_at")  # created_at is kept


@functools.cache
def upsert_statement(dialect_name: str):
    """INSERT … ON CONFLICT (task_key) DO UPDATE, built once per dialect; values bound per call.

    (Building it per save cost more than the database round trip: ``excluded`` rebuilds its
    column collection every time.)
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(results_table)
    return statement.on_conflict_do_update(
        index_elements=["task_key"],
        set_={key: statement.excluded[key] for key in UPSERT_UPDATES},
    )


@functools.cache
def _upsert_sql(dialect) -> str:
    """The upsert as the driver's SQL text, compiled by SQLAlchemy once per dialect."""
    return str(upsert_statement(dialect.name).compile(dialect=dialect, column_keys=ROW_KEYS))


def _write_row(engine: Engine, row: dict[str, Any]) -> None:
    """One upsert in its own transaction.

    PostgreSQL, the hot path of every worker: the SQL compiled once, executed by psycopg on a
    pooled connection (checkout and the idle pre-ping still go through the pool). That skips
    SQLAlchemy's per-statement machinery, ~90 µs a save (docs/benchmarks.md). A connection lost
    to a database restart is invalidated here, as SQLAlchemy would, and the caller retries.
    """
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            connection.execute(upsert_statement(engine.dialect.name), row)
        return
    connection = engine.raw_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(_upsert_sql(engine.dialect),
                           {**row, "result": json.dumps(row["result"])})
        connection.commit()
    except engine.dialect.loaded_dbapi.Error as error:
        if engine.dialect.is_disconnect(error, connection.dbapi_connection, None):
            connection.invalidate(error)
        else:
            with contextlib.suppress(engine.dialect.loaded_dbapi.Error):
                connection.rollback()
        raise
    finally:
        connection.close()  # back to the pool (or discarded, if invalidated)


def _is_transient(engine: Engine, error: Exception) -> bool:
    """A lost or refused connection: worth retrying on a fresh one."""
    if isinstance(error, sa.exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError)
    dbapi = engine.dialect.loaded_dbapi
    return isinstance(error, dbapi.OperationalError | dbapi.InterfaceError)


def save_result(
    engine: Engine,
    *,
    flow_name: str,
    task_name: str,
    parameters: dict[str, Any],
    result: dict[str, Any],
    flow_run_id: str | None = None,
    status: str = "completed",
    retry_for: float | None = None,
) -> str:
    """Insert or update the row for this (flow, task, inputs); returns its task key.

    Saving the same work twice leaves one row: the key is unique and the write is an upsert.
    Connection errors (e.g. a database restart) are retried for ``retry_for`` seconds.
    """
    digest = input_hash(parameters)
    task_key = f"{flow_name}/{task_name}/{digest}"
    now = datetime.now(UTC)
    row = dict(
        flow_name=flow_name,
        flow_run_id=flow_run_id,
        task_key=task_key,
        input_hash=digest,
        status=status,
        result=result,
        created_at=now,
        updated_at=now,
    )
    retrying(
        lambda: _write_row(engine, row),
        lambda error: _is_transient(engine, error),
        connect_timeout() if retry_for is None else retry_for,
    )
    return task_key


def load_results(engine: Engine, flow_name: str | None = None) -> list[dict[str, Any]]:
    if not table_exists(engine):
        return []
    query = sa.select(results_table).order_by(results_table.c.id)
    if flow_name:
        query = query.where(results_table.c.flow_name == flow_name)
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]
