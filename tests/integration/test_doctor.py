"""`simmate-k8s doctor`'s scheduler, worker and results-database rows against real `dask
scheduler`/`dask worker` processes and a real PostgreSQL (Prefect rows: tests/contract)."""

import json
import time

import pytest
from alembic import command
from distributed import Client

from simmate_k8s import database, doctor, migrations
from simmate_k8s.doctor import FAIL, OK, SKIPPED
from tests.conftest import run_cli
from tests.support.dask import DaskProcesses
from tests.support.postgres import free_port


def by_check(rows):
    return {row.check: row for row in rows}


@pytest.fixture(scope="module")
def databases(postgres):
    """Two databases on one server: the workers' and another one."""
    return (postgres.create_database("doctor_workers"), postgres.create_database("doctor_other"))


@pytest.fixture(scope="module")
def cluster(databases):
    with DaskProcesses(databases[0], workers=2) as processes:
        yield processes


def test_scheduler_and_workers_on_the_same_database(cluster, databases):
    rows = by_check(doctor.dask_rows(cluster.address, databases[0], timeout=5))
    assert rows["scheduler"].status == OK
    assert rows["workers"].status == OK
    assert "2 worker(s), each with the preload on postgresql+psycopg://" in rows["workers"].detail
    assert "/doctor_workers" in rows["workers"].detail


def test_workers_saving_to_another_database(cluster, databases, postgres):
    row = by_check(doctor.dask_rows(cluster.address, databases[1], timeout=5))["workers"]
    assert row.status == FAIL
    assert "/doctor_workers but this command reads" in row.detail
    assert row.detail.endswith("; set SIMMATE_DATABASE_URL to the workers' database")
    assert "/doctor_other" in row.detail
    assert "--preload simmate_k8s.preload" in row.fix
    assert postgres.password not in repr(row)


def test_a_worker_without_the_preload(cluster, databases):
    plain = cluster._spawn("plain", ["worker", cluster.address, "--name", "plain",
                                     "--nthreads", "1", "--host", "127.0.0.1",
                                     "--dashboard-address", ":0"])
    cluster.worker_processes.append(plain)
    with Client(cluster.address, timeout=30) as client:
        client.wait_for_workers(3, timeout=60)
    try:
        row = by_check(doctor.dask_rows(cluster.address, databases[0], timeout=5))["workers"]
        assert row.status == FAIL
        assert "has no results database; start workers with --preload simmate_k8s.preload" \
            in row.detail
    finally:
        plain.terminate()
        plain.wait(timeout=30)
        with Client(cluster.address, timeout=30) as client:  # the module's cluster, as it was
            deadline = time.monotonic() + 30
            while len(client.scheduler_info()["workers"]) > 2 and time.monotonic() < deadline:
                time.sleep(0.2)


def test_scheduler_down_fails_fast():
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens
    started = time.monotonic()
    rows = by_check(doctor.dask_rows(address, "sqlite:///unused.sqlite3", timeout=2))
    assert time.monotonic() - started < 15
    assert rows["scheduler"].status == FAIL
    assert f"no Dask scheduler answers at {address}" in rows["scheduler"].detail
    assert rows["scheduler"].fix
    assert rows["workers"].status == SKIPPED


def test_no_scheduler_address_is_skipped_with_the_reason():
    rows = by_check(doctor.dask_rows(None, "sqlite:///unused.sqlite3", timeout=2))
    assert rows["scheduler"].status == rows["workers"].status == SKIPPED
    assert "set SIMMATE_DASK_ADDRESS or --scheduler" in rows["scheduler"].detail


def test_database_current(pg_url):
    migrations.upgrade(database.create_engine(pg_url))
    rows = by_check(doctor.database_rows(pg_url, timeout=5))
    assert rows["results database"].status == OK
    assert (rows["results schema"].status, rows["results schema"].detail) == (
        OK, f"revision {migrations.HEAD} (current)")


def test_database_down(postgres):
    url = f"postgresql://simmate:hunter2@127.0.0.1:{free_port()}/results"
    started = time.monotonic()
    rows = by_check(doctor.database_rows(url, timeout=2))
    assert time.monotonic() - started < 15
    row = rows["results database"]
    assert row.status == FAIL
    assert "cannot reach the results database postgresql+psycopg://simmate:***@" in row.detail
    assert "SIMMATE_DATABASE_URL" in row.fix
    assert "hunter2" not in repr(rows)
    assert rows["results schema"].status == SKIPPED


def test_wrong_password(postgres, pg_url):
    url = pg_url.replace(postgres.password, "not-the-password")
    row = by_check(doctor.database_rows(url, timeout=5))["results database"]
    assert row.status == FAIL
    assert "refused the connection" in row.detail
    assert "not-the-password" not in row.detail


def test_old_schema_says_db_upgrade_and_upgrading_fixes_it(pg_url):
    command.upgrade(migrations.config(pg_url), "0001")  # what 0.1.0 left (see test_migrations)
    row = by_check(doctor.database_rows(pg_url, timeout=5))["results schema"]
    assert row.status == FAIL
    assert row.detail == f"revision 0001, this release writes {migrations.HEAD}"
    assert row.fix.startswith("simmate-k8s db upgrade")
    migrations.upgrade(database.create_engine(pg_url))
    assert by_check(doctor.database_rows(pg_url, timeout=5))["results schema"].status == OK


def test_empty_database_is_fine(pg_url):
    row = by_check(doctor.database_rows(pg_url, timeout=5))["results schema"]
    assert row.status == OK
    assert "creates the tables" in row.detail


def test_cli_exit_codes(cluster, databases, cli_env, pg_url):
    """Exit 0 when every check passes or is skipped, 1 on any failure; a table or JSON."""
    migrations.upgrade(database.create_engine(databases[0]))
    env = {**cli_env, "SIMMATE_DATABASE_URL": databases[0]}
    result = run_cli("doctor", "--no-prefect", "--scheduler", cluster.address, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0].split() == ["CHECK", "STATUS", "FOUND", "/", "WHAT",
                                                     "IS", "WRONG", "FIX"]
    down = {**env, "SIMMATE_DASK_ADDRESS": f"tcp://127.0.0.1:{free_port()}"}
    result = run_cli("doctor", "--no-prefect", "--json", "--timeout", "2", env=down)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert rows["scheduler"]["status"] == FAIL
    assert rows["results database"]["status"] == OK
    old = {**env, "SIMMATE_DATABASE_URL": pg_url}
    command.upgrade(migrations.config(pg_url), "0001")
    result = run_cli("doctor", "--no-prefect", env=old)
    assert result.returncode == 1
    assert "simmate-k8s db upgrade" in result.stdout


@pytest.mark.parametrize("args", [["--release", "Bad_Name"], ["--timeout", "0"],
                                  ["--release", "ok", "-n", "No/Such"]])
def test_bad_options_exit_2_in_one_line(args, cli_env):
    result = run_cli("doctor", *args, env=cli_env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_no_password_in_any_row(cli_env, tmp_path):
    """Both URLs with secrets in userinfo and query, every check failing: none printed."""
    from tests.unit.test_redaction import QUERY_SECRET, USER_SECRET, secret_env

    env = {**secret_env(cli_env), "KUBECONFIG": str(tmp_path / "missing"),
           "SIMMATE_DASK_ADDRESS": f"tcp://127.0.0.1:{free_port()}"}
    for output in ([], ["--json"]):
        result = run_cli("doctor", "--release", "t2", "-n", "ns2", "--timeout", "1", *output,
                         env=env)
        printed = result.stdout + result.stderr
        assert result.returncode == 1, printed
        assert USER_SECRET not in printed and QUERY_SECRET not in printed, printed
        assert "Traceback" not in printed
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert "simmate:***@127.0.0.1:9/results?password=***" in rows["results database"]["detail"]
    assert "alice:***@127.0.0.1:9/graphql?token=***" in rows["Prefect API"]["detail"]
    assert rows["Kubernetes context"]["status"] == FAIL
