"""The results database connection: URL parsing and redaction, pooled engines, retries.

The URL comes from :class:`simmate_k8s.settings.Settings` (``SIMMATE_DATABASE_URL``; unset, a
SQLite file in the user's data directory). Every URL this module prints goes through
:func:`redact`. The tables and what is written to them live in :mod:`simmate_k8s.results`.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from simmate_k8s.errors import DatabaseAuthError, DatabaseError
from simmate_k8s.redaction import REDACTED, redact_query
from simmate_k8s.settings import DATABASE_URL

URL_HELP = "expected e.g. postgresql://user:password@host:5432/dbname or sqlite:///path/results.db"


def redact(url: str | URL) -> str:
    """The URL with every password (userinfo and query, e.g. ``?password=``) replaced by
    ``***``; safe to print and log."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except Exception:
            return "<unparsable URL>"
    text = url.set(query={}).render_as_string(hide_password=True)
    pairs = [(key, value) for key, values in url.query.items()
             for value in ((values,) if isinstance(values, str) else values)]  # fmt: skip
    return f"{text}?{redact_query(pairs)}" if pairs else text


def parse_url(url: str) -> URL:
    """Parse a database URL, choosing the psycopg 3 driver for PostgreSQL.

    Raises DatabaseError (one line, passwords redacted) when the URL is not usable.
    """
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseError(f"{DATABASE_URL} is not a database URL ({URL_HELP})") from None
    backend = parsed.get_backend_name()
    if backend in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
        if not parsed.host and "host" not in parsed.query or not parsed.database:
            raise DatabaseError(
                f"{DATABASE_URL}={redact(parsed)} needs a host and a database name ({URL_HELP})")
    elif backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise DatabaseError(f"{DATABASE_URL}={redact(parsed)} needs a file path ({URL_HELP})")
        _check_sqlite_path(parsed)
    else:
        raise DatabaseError(
            f"{DATABASE_URL}={redact(parsed)} uses '{backend}'; "
            f"only postgresql and sqlite are supported ({URL_HELP})")
    return parsed


def _check_sqlite_path(url: URL) -> None:
    """A SQLite file needs a directory to live in: name the part of the path that is not one."""
    path = Path(url.database).expanduser()
    if path.is_dir():
        raise DatabaseError(f"{DATABASE_URL}={redact(url)} is a directory; name a file in it, "
                            "e.g. sqlite:///DIR/results.sqlite3")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DatabaseError(f"{DATABASE_URL}={redact(url)}: {parent} is a file, not a "
                                    "directory; choose another path for the SQLite file")
            return


def create_engine(url: str | URL, pool_size: int = 2) -> Engine:
    """A pooled engine that survives a database restart.

    PostgreSQL connections are pre-pinged only after sitting idle in the pool for
    ``PING_AFTER_IDLE`` seconds (see :func:`_ping_when_idle`); a connection that dies while in
    steady use fails its statement, is invalidated, and the caller retries on a fresh one.
    """
    parsed = url if isinstance(url, URL) else parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database).expanduser()  # sqlite itself does not expand ~
        path.parent.mkdir(parents=True, exist_ok=True)
        parsed = parsed.set(database=str(path))
        engine = sa.create_engine(
            parsed, pool_pre_ping=True, connect_args={"timeout": 60, "check_same_thread": False})
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
    # WAL lets several local worker processes read while one writes. Switching to it needs a
    # lock that sqlite does not wait for (no busy handler there): processes opening a new file
    # at once retry the switch; once a file is in WAL mode it stays so and this is one read.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=60000")
    deadline = time.monotonic() + 60
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except dbapi_connection.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.close()


def check_connection(engine: Engine) -> str:
    """One real round trip; returns the server version string."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return "SQLite " + connection.execute(sa.text("select sqlite_version()")).scalar_one()
        return connection.execute(sa.text("show server_version")).scalar_one()


# SQLSTATEs (and their messages, for errors raised while connecting) that no retry can fix
_FATAL_SQLSTATES = {"28000", "28P01", "3D000", "42501"}
_FATAL_MESSAGES = ("password authentication failed", "no password supplied", "does not exist",
                   "permission denied", "no pg_hba.conf entry")


def is_auth_error(error: BaseException) -> bool:
    """The server refused us (credentials, database name, privileges): do not retry."""
    original = getattr(error, "orig", None) or error
    if getattr(original, "sqlstate", None) in _FATAL_SQLSTATES:
        return True
    text = str(original).lower()
    return any(message in text for message in _FATAL_MESSAGES)


def is_transient(engine: Engine, error: BaseException) -> bool:
    """A lost or refused connection (a restart, a network blip): worth retrying."""
    if is_auth_error(error):
        return False
    if isinstance(error, sa.exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, sa.exc.OperationalError | sa.exc.InterfaceError)
    dbapi = engine.dialect.loaded_dbapi
    return isinstance(error, dbapi.OperationalError | dbapi.InterfaceError)


def retrying(action, transient, timeout: float, on_retry=None):
    """``action()``, retried with backoff (0.1 s doubling to 2 s) while ``transient(error)``,
    for at most ``timeout`` seconds; then the last error is raised. ``on_retry(error,
    attempt)`` is told about each retry."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    attempt = 0
    while True:
        try:
            return action()
        except Exception as error:
            remaining = deadline - time.monotonic()
            if not transient(error) or remaining <= 0:
                raise
            attempt += 1
            if on_retry is not None:
                on_retry(error, attempt)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 2.0)


def reason(error: BaseException) -> str:
    """The first line of what the driver said, passwords never included."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip()
    line = text.splitlines()[0] if text else error.__class__.__name__
    return re.sub(r"(password=)\S+", r"\1" + REDACTED, line)


def connect_with_retry(engine: Engine, timeout: float) -> str:
    """Round-trip until it works or ``timeout`` seconds pass; returns the server version.

    A refused login fails at once. Raises DatabaseError with one clear line.
    """
    attempts = 0

    def connect():
        nonlocal attempts
        attempts += 1
        return check_connection(engine)

    try:
        return retrying(connect, lambda error: is_transient(engine, error), timeout)
    except sa.exc.DBAPIError as error:
        if is_auth_error(error):
            raise DatabaseAuthError(
                f"the results database {redact(engine.url)} refused the connection "
                f"({reason(error)}); check the user, password and database name in "
                f"{DATABASE_URL}") from None
        raise DatabaseError(
            f"cannot reach the results database {redact(engine.url)} after {attempts} "
            f"attempts in {timeout:g} s ({reason(error)}); check {DATABASE_URL} and that the "
            "database accepts connections from this host") from None
