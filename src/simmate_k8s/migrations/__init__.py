"""Schema migrations of the results database: Alembic, configured in code (no alembic.ini).

The revisions live in ``versions/`` and are frozen (each spells its columns out; none imports
:mod:`simmate_k8s.results`). The revision is kept in ``simmate_alembic_version``, not Alembic's
default ``alembic_version``, so a results database that is also another Alembic project's
database (e.g. Prefect Server's) keeps both apart.

Every check-and-upgrade runs under a database lock, so processes starting at once on a new
database never race on creating the tables: PostgreSQL ``pg_advisory_xact_lock``, SQLite
``BEGIN IMMEDIATE``; the revision is read again once the lock is held, and all DDL runs in that
one transaction (both backends have transactional DDL: a failed upgrade leaves nothing behind).

A database made by 0.1.0 has ``simmate_results`` (with ``task_key``) and no version table; it
counts as revision 0001 and is stamped so before upgrading.

Only the schema's owner runs DDL. A login without the privilege (the chart's writer role, which
the workers use) that finds the database at HEAD only reads the revision; one that would have to
create or upgrade the tables gets a one-line SchemaError saying who has to (the chart's
results-schema Job, or ``simmate-k8s db upgrade`` with the owner's URL).

A new revision (developers): change results.py, then, on a database at HEAD::

    from alembic import command
    from simmate_k8s import migrations
    command.revision(migrations.config("sqlite:///db.sqlite3"), "what changed",
                     autogenerate=True, rev_id="0003")

then freeze what it wrote (no imports of results.py), add it to REVISIONS and move HEAD.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from simmate_k8s.database import parse_url, reason, redact, retrying
from simmate_k8s.errors import SchemaError, SchemaNotCreatedError

HEAD = "0002"
REVISIONS = ("0001", "0002")  # oldest first; a test checks this against versions/
LEGACY = "0001"  # what a 0.1.0 database (no version table) is
VERSION_TABLE = "simmate_alembic_version"
TABLES = ("simmate_results", "simmate_batches", "simmate_batch_items")
SCRIPT_LOCATION = Path(__file__).resolve().parent  # env.py, script.py.mako and versions/

# pg_advisory_xact_lock key: the bytes of "simmate!" as a bigint (any fixed number would do;
# every simmate-k8s process must use the same one).
PG_LOCK_KEY = int.from_bytes(b"simmate!", "big")

# Alembic's ``op``/``context`` are process-wide proxies: one migration at a time per process.
_alembic_lock = threading.Lock()

INSUFFICIENT_PRIVILEGE = "42501"  # SQLSTATE of "permission denied for schema public" and kin


def config(url: str | None = None, connection: Connection | None = None):
    """An Alembic Config for this package: on ``connection`` (what env.py runs on), or else on
    ``url`` (for developers' ``alembic`` commands)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:  # with the psycopg 3 driver, as the app connects
        rendered = parse_url(str(url)).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def _state(connection: Connection) -> tuple[str | None, bool]:
    """(revision, stamped): the revision in the version table, else what the tables say."""
    inspector = sa.inspect(connection)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        versions = connection.execute(
            sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if versions:
            return ",".join(sorted(versions)), True
    if "simmate_results" not in tables:
        if tables & set(TABLES):
            raise SchemaError(f"the results database {redact(connection.engine.url)} has "
                              f"{', '.join(sorted(tables & set(TABLES)))} but no simmate_results "
                              "table; restore it from a backup or point at another database")
        return None, False
    columns = {column["name"] for column in inspector.get_columns("simmate_results")}
    if "task_key" in columns:
        return LEGACY, False
    if "key" in columns and {"simmate_batches", "simmate_batch_items"} <= tables:
        return HEAD, False  # made by results.metadata.create_all (e.g. a test), not migrated
    raise SchemaError(f"the results database {redact(connection.engine.url)} has a "
                      "simmate_results table this release does not recognise (no schema "
                      "revision); point at another database")


def _connect(engine: Engine) -> Connection:
    """``engine.connect()``; on SQLite retried while another process opens the brand-new file:
    switching it to WAL (database._sqlite_pragmas) fails at once with "database is locked"
    rather than waiting, when processes start together."""
    if engine.dialect.name != "sqlite":
        return engine.connect()

    def locked(error: Exception) -> bool:
        return isinstance(error, sa.exc.OperationalError) and "locked" in str(error.orig)

    return retrying(engine.connect, locked, timeout=60)


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision: None for a database without simmate tables, "0001"
    for one made by 0.1.0 (not stamped yet). SchemaError if its tables are no known shape."""
    with _connect(engine) as connection:
        return _state(connection)[0]


def _not_current(engine: Engine, revision: str) -> SchemaError:
    where = f"the results database {redact(engine.url)} is at schema revision {revision}"
    if revision in REVISIONS:
        return SchemaError(f"{where}, this release writes {HEAD}; run `simmate-k8s db upgrade` "
                           "as the schema's owner (back it up first)")
    return SchemaError(f"{where}, which a newer simmate-k8s made (this release writes {HEAD}); "
                       "use that release, or a database of its own for this one")


@contextlib.contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the migration lock until it commits."""
    with _connect(engine) as connection:
        if engine.dialect.name == "sqlite":
            # pysqlite BEGINs only before INSERT/UPDATE/DELETE (DDL would commit statement by
            # statement); in autocommit mode it leaves the transaction to us, and BEGIN
            # IMMEDIATE takes the write lock now, before the check.
            connection.execution_options(isolation_level="AUTOCOMMIT")
            with connection.begin():
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                yield connection  # SQLAlchemy's COMMIT/ROLLBACK go to sqlite3, which ends it
        else:
            # READ COMMITTED whatever the server's default: the check after the lock must see
            # what the process that held it committed (REPEATABLE READ would not)
            connection.execution_options(isolation_level="READ COMMITTED")
            with connection.begin():
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": PG_LOCK_KEY})
                yield connection


def _migrate(engine: Engine, create_only: bool) -> tuple[str | None, str]:
    with _locked(engine) as connection:
        before, stamped = _state(connection)  # again: another process may have done it
        if before == HEAD and stamped:
            return before, HEAD
        if before not in (None, HEAD) and (create_only or before not in REVISIONS):
            raise _not_current(engine, before)
        from alembic import command

        try:
            with _alembic_lock:
                cfg = config(connection=connection)
                if before is not None and not stamped:
                    command.stamp(cfg, before)
                if before != HEAD:
                    command.upgrade(cfg, HEAD)
        except sa.exc.DBAPIError as error:
            if getattr(error.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
                raise
            raise _may_not_migrate(engine, before, error) from None
    return before, HEAD


def _may_not_migrate(engine: Engine, before: str | None, error: Exception) -> SchemaError:
    """What a login without DDL rights (the chart's writer role) is told instead of a traceback."""
    user = engine.url.username or "this login"
    where = f"the results database {redact(engine.url)}"
    state = "has no simmate tables yet" if before is None else (
        f"is at schema revision {before}, this release writes {HEAD}")
    message = (f"{where} {state}, and {user} may not change its schema ({reason(error)}); run "
               "the chart's results-schema Job, or `simmate-k8s db upgrade` with the schema "
               "owner's URL")
    return (SchemaNotCreatedError if before is None else SchemaError)(message)


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run every pending revision (creating the tables in an empty database); returns
    (revision before, revision now). At HEAD already, it only reads the revision."""
    before, stamped = _state_of(engine)
    if before == HEAD and stamped:
        return before, HEAD
    if before is not None and before not in REVISIONS:
        raise _not_current(engine, before)
    return _migrate(engine, create_only=False)


def ensure_current(engine: Engine) -> None:
    """Make sure this release can write: create the tables in an empty database, else raise
    SchemaError unless the database is at HEAD (upgrading is the user's explicit choice)."""
    revision, stamped = _state_of(engine)
    if revision == HEAD and stamped:
        return
    if revision not in (None, HEAD):
        raise _not_current(engine, revision)
    _migrate(engine, create_only=True)


def _state_of(engine: Engine) -> tuple[str | None, bool]:
    with _connect(engine) as connection:
        return _state(connection)
