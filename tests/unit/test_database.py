"""The results database connection: URLs, redaction, engines, which errors are retried."""

import sqlite3
import time

import psycopg
import psycopg.errors
import pytest
import sqlalchemy as sa

from simmate_k8s import database
from simmate_k8s.errors import DatabaseAuthError, DatabaseError, SimmateError

SECRET = "hunter2"


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, SimmateError)
    assert message and "\n" not in message
    assert SECRET not in message
    return message


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url, driver", [
    ("postgresql://u:p@db:5432/results", "postgresql+psycopg"),
    ("postgres://u:p@db/results", "postgresql+psycopg"),
    ("postgresql+psycopg://u:p@db/results", "postgresql+psycopg"),
    ("postgresql+psycopg2://u:p@db/results", "postgresql+psycopg"),
    ("postgresql:///results?host=/run/postgresql", "postgresql+psycopg"),  # a Unix socket
    ("sqlite:////tmp/x.sqlite3", "sqlite"),
])
def test_parse_url_picks_the_driver(url, driver):
    assert database.parse_url(url).drivername == driver


@pytest.mark.parametrize("url, expected", [
    ("not a url", "is not a database URL"),
    ("", "is not a database URL"),
    (f"mysql://u:{SECRET}@db/results", "uses 'mysql'; only postgresql and sqlite"),
    (f"mysql://u@db/results?password={SECRET}", "only postgresql and sqlite"),
    (f"postgresql://u:{SECRET}@/results", "needs a host and a database"),
    (f"postgresql://u:{SECRET}@db", "needs a host and a database"),
    (f"postgresql://u@/results?password={SECRET}", "needs a host and a database"),
    ("sqlite://", "needs a file path"),
    ("sqlite:///:memory:", "needs a file path"),
])
def test_parse_url_rejects_with_one_redacted_line(url, expected):
    with pytest.raises(DatabaseError) as error:
        database.parse_url(url)
    message = one_line(error)
    assert expected in message and message.startswith("SIMMATE_DATABASE_URL")


def test_a_sqlite_path_under_an_existing_file_is_named(tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a directory")
    for path in (blocker / "results.db", blocker / "deeper" / "still" / "results.db"):
        with pytest.raises(DatabaseError) as error:
            database.parse_url(f"sqlite:///{path}")
        message = one_line(error)
        assert f"{blocker} is a file, not a directory" in message


def test_a_sqlite_path_that_is_a_directory_is_named(tmp_path):
    with pytest.raises(DatabaseError) as error:
        database.parse_url(f"sqlite:///{tmp_path}")
    assert "is a directory; name a file in it" in one_line(error)


def test_a_sqlite_path_in_directories_yet_to_be_made_is_fine(tmp_path):
    url = database.parse_url(f"sqlite:///{tmp_path}/new/dirs/results.db")
    engine = database.create_engine(url)
    try:
        assert database.check_connection(engine).startswith("SQLite 3.")
    finally:
        engine.dispose()
    assert (tmp_path / "new" / "dirs" / "results.db").is_file()


def test_a_sqlite_path_with_a_tilde_is_in_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    engine = database.create_engine("sqlite:///~/simmate/results.db")
    try:
        database.check_connection(engine)
    finally:
        engine.dispose()
    assert (tmp_path / "home" / "simmate" / "results.db").is_file()
    assert not (tmp_path / "~").exists()


# --- redaction -------------------------------------------------------------------------------


@pytest.mark.parametrize("url, kept", [
    (f"postgresql://simmate:{SECRET}@db:5432/r", "postgresql://simmate:***@db:5432/r"),
    (f"postgresql://u@h/db?password={SECRET}", "postgresql://u@h/db?password="),
    (f"postgresql://u@h/db?sslpassword={SECRET}&sslmode=require", "sslmode=require"),
    (f"postgresql://u@h/db?PASSWORD={SECRET}", "postgresql://u@h/db?"),
    (f"postgresql://u:{SECRET}@h/db?password={SECRET}x", "postgresql://u:***@h/db?"),
    (f"postgresql://u@h/db?auth_token={SECRET}&application_name=app", "application_name=app"),
    (f"postgresql://u@h/db?client_secret={SECRET}", "postgresql://u@h/db?"),
    (f"postgresql:///db?host=/run/pg&password={SECRET}", "host=/run/pg&password=***"),
    (f"postgresql://u:{SECRET.replace('2', '%40')}@h/db", "postgresql://u:***@h/db"),
    (f"sqlite:////tmp/{'results'}.db", "sqlite:////tmp/results.db"),
])
def test_redact_hides_passwords_in_userinfo_and_query(url, kept):
    shown = database.redact(url)
    assert SECRET not in shown and "hunter%40" not in shown
    assert kept in shown


def test_redact_of_a_parsed_url_and_of_garbage():
    parsed = database.parse_url(f"postgresql://u:{SECRET}@h/db?sslpassword={SECRET}")
    assert SECRET not in database.redact(parsed)
    assert database.redact("::not a url::") == "<unparsable URL>"


def test_reason_is_one_line_without_the_password():
    error = sa.exc.OperationalError(
        "select 1", {}, psycopg.OperationalError(
            f"connection failed: host=db user=u password={SECRET}\nsecond line"))
    assert database.reason(error) == "connection failed: host=db user=u password=***"
    assert database.reason(ValueError()) == "ValueError"


# --- which errors are worth retrying ----------------------------------------------------------


def wrapped(orig):
    return sa.exc.OperationalError("select 1", {}, orig)


@pytest.mark.parametrize("orig", [
    psycopg.errors.InvalidPassword("password authentication failed for user \"u\""),
    psycopg.errors.InvalidCatalogName("database \"results\" does not exist"),
    psycopg.errors.InsufficientPrivilege("permission denied for table simmate_results"),
    psycopg.errors.InvalidAuthorizationSpecification("role \"nobody\" does not exist"),
    # while connecting, libpq gives no SQLSTATE: only the message says what happened
    psycopg.OperationalError("connection failed: FATAL:  password authentication failed for "
                             "user \"simmate\""),
    psycopg.OperationalError("connection failed: fe_sendauth: no password supplied"),
    psycopg.OperationalError("connection failed: FATAL:  no pg_hba.conf entry for host"),
])
def test_refusals_are_auth_errors_and_not_transient(orig):
    engine = database.create_engine("postgresql://u:pw@127.0.0.1:1/db")
    assert database.is_auth_error(wrapped(orig)) and database.is_auth_error(orig)
    assert not database.is_transient(engine, wrapped(orig))
    assert not database.is_transient(engine, orig)


@pytest.mark.parametrize("orig", [
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
    psycopg.errors.CannotConnectNow("the database system is starting up"),
    psycopg.InterfaceError("the connection is closed"),
])
def test_lost_connections_are_transient(orig):
    engine = database.create_engine("postgresql://u:pw@127.0.0.1:1/db")
    assert not database.is_auth_error(orig)
    assert database.is_transient(engine, orig)
    assert database.is_transient(engine, wrapped(orig))


def test_other_errors_are_not_transient(sqlite_url):
    engine = database.create_engine(sqlite_url)
    integrity = sa.exc.IntegrityError("insert", {}, sqlite3.IntegrityError("UNIQUE failed"))
    programming = sa.exc.ProgrammingError("select", {}, sqlite3.ProgrammingError("bad"))
    for error in (integrity, programming, ValueError("x"), KeyError("k"),
                  sqlite3.IntegrityError("UNIQUE failed")):
        assert not database.is_transient(engine, error), error
    assert database.is_transient(engine, sqlite3.OperationalError("database is locked"))
    invalidated = sa.exc.DBAPIError("select", {}, sqlite3.DatabaseError("gone"),
                                    connection_invalidated=True)
    assert database.is_transient(engine, invalidated)


# --- retrying --------------------------------------------------------------------------------


class Flaky:
    """Fails ``failures`` times with ``error``, then returns "done"; counts the calls."""

    def __init__(self, failures, error=None):
        self.failures, self.calls = failures, 0
        self.error = error if error is not None else ConnectionError("away")

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def test_retrying_returns_once_the_action_works():
    action, told = Flaky(3), []
    result = database.retrying(action, lambda e: isinstance(e, ConnectionError), timeout=30,
                               on_retry=lambda error, attempt: told.append(attempt))
    assert result == "done" and action.calls == 4 and told == [1, 2, 3]


def test_retrying_gives_up_within_its_timeout_with_the_last_error():
    action = Flaky(10**9)
    start = time.monotonic()
    with pytest.raises(ConnectionError, match="away"):
        database.retrying(action, lambda e: True, timeout=1.0)
    elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.5
    assert 3 <= action.calls < 20  # backed off (0.1 s doubling), not a busy loop


def test_retrying_does_not_retry_a_non_transient_error():
    action = Flaky(5, error=ValueError("bad data"))
    start = time.monotonic()
    with pytest.raises(ValueError, match="bad data"):
        database.retrying(action, lambda e: isinstance(e, ConnectionError), timeout=30)
    assert action.calls == 1 and time.monotonic() - start < 0.5


def test_retrying_with_no_time_left_tries_once():
    action = Flaky(1)
    with pytest.raises(ConnectionError):
        database.retrying(action, lambda e: True, timeout=0)
    assert action.calls == 1


# --- connecting ------------------------------------------------------------------------------


def test_connect_with_retry_gives_up_within_the_timeout():
    from tests.support.postgres import free_port

    engine = database.create_engine(f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/db")
    start = time.monotonic()
    with pytest.raises(DatabaseError) as error:
        database.connect_with_retry(engine, timeout=1.0)
    assert time.monotonic() - start < 5
    message = one_line(error)
    assert not isinstance(error.value, DatabaseAuthError)
    assert "cannot reach the results database postgresql+psycopg://u:***@127.0.0.1:" in message
    assert "attempts in 1 s" in message


def test_a_refused_login_fails_at_once(monkeypatch):
    engine = database.create_engine(f"postgresql://u:{SECRET}@db/results")
    refusals = []

    def refuse(engine):
        refusals.append(time.monotonic())
        raise wrapped(psycopg.OperationalError(
            'connection failed: FATAL:  password authentication failed for user "u"'))

    monkeypatch.setattr(database, "check_connection", refuse)
    start = time.monotonic()
    with pytest.raises(DatabaseAuthError) as error:
        database.connect_with_retry(engine, timeout=30)
    assert len(refusals) == 1 and time.monotonic() - start < 1
    message = one_line(error)
    assert "refused the connection (connection failed: FATAL:  password authentication" in message
    assert "u:***@db/results" in message


def test_sqlite_engine_uses_wal(sqlite_url):
    engine = database.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar_one()
        assert mode == "wal"
        assert database.connect_with_retry(engine, timeout=5).startswith("SQLite ")
    finally:
        engine.dispose()
