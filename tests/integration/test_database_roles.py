"""The chart's database initialisation (charts/simmate/files/postgres-roles.sql, the very file the
postgres pod runs) on a real PostgreSQL: what each role may and may not do, the schema made by
the owner as the results-schema hook Job makes it (`simmate-k8s db upgrade`), and preloaded
Dask workers saving a real batch as the writer."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import psycopg
import pytest
from distributed import Client
from psycopg import errors

from tests.chart.helpers import CHART
from tests.conftest import CLI, run_cli
from tests.support.dask import DaskProcesses, dask_command
from tests.support.postgres import PostgresServer

SQL_FILE = CHART / "files" / "postgres-roles.sql"
PREFECT_DB, RESULTS_DB = "prefect", "simmate_results"
ROLES = {"prefect": "prefect", "owner": "simmate_owner", "writer": "simmate_writer",
         "reader": "simmate_reader"}  # the chart's default names (values.yaml)
RESULTS_TABLES = ("simmate_results", "simmate_batches", "simmate_batch_items")


class RolesServer:
    """A private PostgreSQL initialised as the chart initialises its own."""

    def __init__(self):
        self.server = PostgresServer()
        self.server.start()
        self.passwords = {role: uuid.uuid4().hex for role in ROLES}
        result = apply_roles_sql(self.server, init_env(self.passwords))
        assert result.returncode == 0, result.stderr

    def url(self, role: str, database: str = RESULTS_DB, driver: str = "postgresql") -> str:
        return (f"{driver}://{ROLES[role]}:{self.passwords[role]}@127.0.0.1:{self.server.port}"
                f"/{database}")

    def connect(self, role: str, database: str = RESULTS_DB):
        return psycopg.connect(self.url(role, database), autocommit=True)

    def cleanup(self):
        self.server.cleanup()


def init_env(passwords: dict[str, str]) -> dict[str, str]:
    """The env the chart's postgres container gives the init SQL (templates: postgresql.yaml)."""
    env = {"SIMMATE_PG_PREFECT_DB": PREFECT_DB, "SIMMATE_PG_RESULTS_DB": RESULTS_DB}
    for role, name in ROLES.items():
        env[f"SIMMATE_PG_{role.upper()}_ROLE"] = name
        env[f"SIMMATE_PG_{role.upper()}_PASSWORD"] = passwords[role]
    return env


def apply_roles_sql(server: PostgresServer, env: dict[str, str]) -> subprocess.CompletedProcess:
    """psql -f the file as the superuser, as the image's entrypoint does (ON_ERROR_STOP)."""
    connection = {"PGHOST": "127.0.0.1", "PGPORT": str(server.port), "PGUSER": server.user,
                  "PGPASSWORD": server.password, "PGDATABASE": "postgres"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SIMMATE_PG_"))}
    return subprocess.run(
        [str(server.bin_dir / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-f",
         str(SQL_FILE)], env={**clean, **connection, **env}, capture_output=True, text=True,
        timeout=60)


def cli_as(role_url: str, cli_env: dict, connect_timeout: float = 30) -> dict:
    return {**cli_env, "SIMMATE_DATABASE_URL": role_url,
            "SIMMATE_DB_CONNECT_TIMEOUT": str(connect_timeout)}


def denied(connection, statement: str) -> bool:
    try:
        connection.execute(statement)
    except errors.InsufficientPrivilege:
        return True
    return False


@pytest.fixture(scope="module")
def roles(tmp_path_factory):
    """Initialised, then the results schema created by the owner with the hook Job's command."""
    server = RolesServer()
    home = tmp_path_factory.mktemp("owner")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMMATE_", "PREFECT__"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"))
    upgraded = run_cli("db", "upgrade", env=cli_as(server.url("owner"), env))
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from empty to" in upgraded.stdout
    yield server
    server.cleanup()


@pytest.fixture
def fresh_roles():
    """Initialised, no schema yet: what the workers see before the schema Job has run."""
    server = RolesServer()
    yield server
    server.cleanup()


# ---------------------------------------------------------------- what each role is


def test_no_role_is_a_superuser_or_can_make_roles_or_databases(roles):
    with roles.connect("reader") as connection:
        rows = connection.execute(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = ANY (%s)", (list(ROLES.values()),)).fetchall()
    assert {row[0] for row in rows} == set(ROLES.values())
    assert all(not any(row[1:]) for row in rows), rows
    with roles.connect("writer") as connection:
        assert connection.execute("SHOW is_superuser").fetchone()[0] == "off"
        # what a superuser could do with the results password: a shell in the postgres pod
        assert denied(connection, "COPY (SELECT 1) TO PROGRAM 'true'")
        assert denied(connection, "SELECT pg_read_file('postgresql.conf')")
        assert denied(connection, "CREATE ROLE intruder LOGIN SUPERUSER")


@pytest.mark.parametrize("role", ["writer", "reader", "owner"])
def test_only_prefects_role_reaches_prefects_database(roles, role):
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        roles.connect(role, PREFECT_DB)


def test_prefects_role_owns_its_database_and_nothing_else(roles):
    with roles.connect("prefect", PREFECT_DB) as connection:
        # what Prefect's migration and hasura do: tables, functions, hasura's own schema
        connection.execute("CREATE TABLE flow_run (id uuid PRIMARY KEY DEFAULT gen_random_uuid())")
        connection.execute("CREATE SCHEMA hdb_catalog")
        connection.execute("INSERT INTO flow_run DEFAULT VALUES")
        extensions = {row[0] for row in connection.execute("SELECT extname FROM pg_extension")}
        assert {"pgcrypto", "pg_trgm"} <= extensions
        assert connection.execute("SHOW timezone").fetchone()[0] == "UTC"
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        roles.connect("prefect", RESULTS_DB)


def test_the_owner_made_the_schema_and_owns_it(roles):
    with roles.connect("reader") as connection:
        owners = dict(connection.execute(
            "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'").fetchall())
    assert set(RESULTS_TABLES) | {"simmate_alembic_version"} <= set(owners)
    assert set(owners.values()) == {ROLES["owner"]}


# ---------------------------------------------------------------- the writer


def test_the_writer_cannot_create_alter_or_drop_tables(roles):
    with roles.connect("writer") as connection:
        assert denied(connection, "CREATE TABLE intruder (id int)")
        assert denied(connection, "CREATE TEMP TABLE intruder (id int)")
        assert denied(connection, "CREATE SCHEMA intruder")
        assert denied(connection, "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        for table in (*RESULTS_TABLES, "simmate_alembic_version"):
            assert denied(connection, f"DROP TABLE {table}"), table
            assert denied(connection, f"ALTER TABLE {table} ADD COLUMN intruder int"), table
            assert denied(connection, f"TRUNCATE {table}"), table
            assert denied(connection, f"DELETE FROM {table}"), table
    with roles.connect("reader") as connection:  # all still there
        assert connection.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = ANY (%s)",
            (list(RESULTS_TABLES),)).fetchone()[0] == 3


def test_workers_save_a_batch_with_the_writer_and_the_reader_reads_it(roles, cli_env):
    """Real `dask worker --preload simmate_k8s.preload` processes with the writer's URL (what
    the chart gives workers), a real batch through the CLI, rows read back as the reader."""
    writer = roles.url("writer")
    env = cli_as(writer, cli_env)
    batch = f"roles-{uuid.uuid4().hex[:8]}"
    with DaskProcesses(writer, workers=2) as cluster, Client(cluster.address) as client:
        result = run_cli("run", "smoke", "--param", "n=12", "--address", cluster.address,
                         "--batch-id", batch, env=env)
        assert result.returncode == 0, result.stderr
        # every connection the workers and the command hold is the writer's
        with roles.connect("reader") as connection:
            users = {row[0] for row in connection.execute(
                "SELECT usename FROM pg_stat_activity WHERE application_name = 'simmate-k8s'")}
        assert users == {ROLES["writer"]}
        assert len(client.scheduler_info()["workers"]) == 2
    with roles.connect("reader") as connection:
        rows = connection.execute(
            "SELECT r.status, r.worker FROM simmate_batch_items i JOIN simmate_results r "
            "ON r.key = i.result_key WHERE i.batch_id = %s", (batch,)).fetchall()
        assert len(rows) == 12 and {status for status, _ in rows} == {"completed"}
        assert all(worker for _, worker in rows)
        # ... and may not write
        assert denied(connection, "UPDATE simmate_results SET status = 'failed'")
        assert denied(connection, "INSERT INTO simmate_batches (id) VALUES ('x')")
        assert denied(connection, "DELETE FROM simmate_batch_items")
        assert denied(connection, "CREATE TABLE intruder (id int)")
    # the same work again, locally: the writer reads back what it wrote, computes nothing
    again = run_cli("run", "smoke", "--param", "n=12", "--json", env=env)
    assert again.returncode == 0, again.stderr
    [summary] = [entry["summary"] for entry in json.loads(again.stdout)]
    assert summary["cached"] == 12 and summary["completed"] == 0


def test_tables_the_owner_adds_later_are_granted_as_made(roles):
    """A future migration's table: the default privileges grant it to the writer and reader."""
    with roles.connect("owner") as connection:
        connection.execute("CREATE TABLE later_table (id serial PRIMARY KEY, note text)")
    with roles.connect("writer") as connection:
        connection.execute("INSERT INTO later_table (note) VALUES ('from the writer')")
        connection.execute("UPDATE later_table SET note = 'changed'")
        assert denied(connection, "DELETE FROM later_table")
    with roles.connect("reader") as connection:
        assert connection.execute("SELECT note FROM later_table").fetchall() == [("changed",)]
        assert denied(connection, "INSERT INTO later_table (note) VALUES ('no')")
    with roles.connect("owner") as connection:
        connection.execute("DROP TABLE later_table")


# ---------------------------------------------------------------- before the schema Job ran


def test_a_writer_that_finds_no_tables_says_who_must_make_them_and_waits_for_them(
        fresh_roles, cli_env):
    writer = fresh_roles.url("writer")
    # `db upgrade` as the writer: one line naming the owner's way, no traceback, exit 2
    refused = run_cli("db", "upgrade", env=cli_as(writer, cli_env))
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "has no simmate tables yet, and simmate_writer may not change its schema" in line
    assert "results-schema Job" in line and fresh_roles.passwords["writer"] not in line
    # a preloaded worker waits SIMMATE_DB_CONNECT_TIMEOUT for the tables, then does not start
    with DaskProcesses(writer, workers=0) as cluster:
        started = time.monotonic()
        worker = subprocess.run(
            dask_command() + ["worker", cluster.address, "--nthreads", "1", "--no-nanny",
                              "--preload", "simmate_k8s.preload"],
            env={**cluster.env, "SIMMATE_DB_CONNECT_TIMEOUT": "3"}, capture_output=True,
            text=True, timeout=60)
        assert time.monotonic() - started >= 3
    assert worker.returncode != 0
    assert "worker not started" in worker.stderr and "may not change its schema" in worker.stderr
    assert fresh_roles.passwords["writer"] not in worker.stderr
    # the install race: a run as the writer starts, the schema Job (the owner) comes after
    run = subprocess.Popen(
        [*CLI, "run", "smoke", "--param", "n=3"], env=cli_as(writer, cli_env, 60),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert run.poll() is None, run.communicate()
    assert run_cli("db", "upgrade", env=cli_as(fresh_roles.url("owner"), cli_env)).returncode == 0
    _, stderr = run.communicate(timeout=240)
    assert run.returncode == 0, stderr
    with fresh_roles.connect("reader") as connection:
        assert connection.execute("SELECT count(*) FROM simmate_results").fetchone()[0] == 3


def test_a_writer_on_an_older_schema_is_told_to_upgrade_as_the_owner(fresh_roles, cli_env):
    from alembic import command

    from simmate_k8s import database, migrations

    engine = database.create_engine(fresh_roles.url("owner"))
    with engine.begin() as connection:
        command.upgrade(migrations.config(connection=connection), migrations.REVISIONS[0])
    engine.dispose()
    writer = cli_as(fresh_roles.url("writer"), cli_env)
    run = run_cli("run", "smoke", env=writer)
    assert run.returncode == 2
    assert "run `simmate-k8s db upgrade` as the schema's owner" in run.stderr
    upgrade = run_cli("db", "upgrade", env=writer)
    assert upgrade.returncode == 2 and "Traceback" not in upgrade.stderr
    assert (f"is at schema revision {migrations.REVISIONS[0]}, this release writes "
            f"{migrations.HEAD}, and simmate_writer may not change its schema") in upgrade.stderr
    assert run_cli("db", "upgrade", env=cli_as(fresh_roles.url("owner"), cli_env)).returncode == 0
    assert run_cli("run", "smoke", env=writer).returncode == 0


# ---------------------------------------------------------------- the SQL file itself


@pytest.mark.parametrize("unset", ["SIMMATE_PG_WRITER_PASSWORD", "SIMMATE_PG_RESULTS_DB"])
def test_the_sql_stops_before_anything_without_a_name_or_password(unset):
    with PostgresServer() as server:
        env = init_env({role: "pw" for role in ROLES})
        for empty in ("", None):
            given = {**env, unset: empty} if empty is not None else {
                k: v for k, v in env.items() if k != unset}
            result = apply_roles_sql(server, given)
            assert result.returncode != 0
            assert f"postgres-roles.sql: set {unset}" in result.stderr
        with psycopg.connect(server.url(), autocommit=True) as connection:
            made = connection.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname = ANY (%s)",
                (list(ROLES.values()),)).fetchone()[0]
            assert made == 0
