"""`simmate-k8s doctor`'s Prefect Server rows against the Prefect Server v1 contract, and the
whole command, all green, with a real Dask cluster and a real PostgreSQL."""

import json
from datetime import UTC, datetime, timedelta

from simmate_k8s import doctor, migrations, server_config
from simmate_k8s.doctor import FAIL, OK, SKIPPED
from tests.conftest import run_cli
from tests.support.dask import DaskProcesses
from tests.support.postgres import free_port


def rows_by_check(rows):
    return {row.check: row for row in rows}


def prefect_rows(now=None):
    return rows_by_check(doctor.prefect_rows(server_config.load(), now=now))


def test_all_green_exits_0(registered, api_env, pg_url, postgres):
    """A registered server with a polling agent, a migrated database, preloaded workers."""
    from simmate_k8s import database

    migrations.upgrade(database.create_engine(pg_url))
    registered.state.add_agent("k8s-agent", datetime.now(UTC))
    with DaskProcesses(pg_url, workers=1) as cluster:
        env = {**api_env, "SIMMATE_DATABASE_URL": pg_url, "SIMMATE_DASK_ADDRESS": cluster.address}
        result = run_cli("doctor", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    assert {check: row["status"] for check, row in rows.items()} == {
        "Kubernetes": SKIPPED, "scheduler": OK, "workers": OK, "results database": OK,
        "results schema": OK, "Prefect API": OK, "tenant": OK, "flows registered": OK,
        "agent heartbeat": OK}
    assert rows["Kubernetes"]["detail"] == "no --release: Kubernetes checks skipped"
    assert "1 worker(s)" in rows["workers"]["detail"]
    assert "k8s-agent" in rows["agent heartbeat"]["detail"]
    assert postgres.password not in result.stdout


def test_the_table_names_each_failure_and_its_fix(prefect_api, api_env):
    """Nothing registered and no agent: exit 1, and the table says what to run."""
    result = run_cli("doctor", "--no-prefect", env=api_env)
    assert result.returncode == 0, result.stdout + result.stderr  # default SQLite, no scheduler
    result = run_cli("doctor", env=api_env)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[0] + " " + line.split()[1]: line for line in result.stdout.splitlines()}
    assert "FAIL" in lines["flows registered"]
    assert "simmate-k8s register --project simmate" in lines["flows registered"]
    assert "FAIL" in lines["agent heartbeat"]
    assert "no agent has asked Prefect Server for work" in lines["agent heartbeat"]


def test_prefect_api_down(in_process, monkeypatch):
    port = free_port()
    monkeypatch.setenv("PREFECT__CLOUD__API", f"http://user:hunter2@127.0.0.1:{port}/graphql")
    rows = prefect_rows()
    assert rows["Prefect API"].status == FAIL
    assert f"no Prefect Server answers at http://user:***@127.0.0.1:{port}/graphql" in \
        rows["Prefect API"].detail
    assert "simmate-k8s config set api-url" in rows["Prefect API"].fix
    assert "hunter2" not in repr(rows)
    assert {rows[c].status for c in ("tenant", "flows registered", "agent heartbeat")} == {
        SKIPPED}


def test_prefect_api_down_exits_1(cli_env):
    env = {**cli_env, "PREFECT__CLOUD__API": f"http://127.0.0.1:{free_port()}/graphql"}
    result = run_cli("doctor", env=env)
    assert result.returncode == 1
    assert "no Prefect Server answers" in result.stdout


def test_no_tenant(in_process):
    in_process.state.tenant = None
    rows = prefect_rows()
    assert rows["Prefect API"].status == OK
    assert rows["tenant"].status == FAIL
    assert "has no tenant yet" in rows["tenant"].detail
    assert "create-tenant" in rows["tenant"].fix
    assert rows["flows registered"].status == SKIPPED


def test_flows_not_registered(in_process):
    rows = prefect_rows()
    assert rows["tenant"].status == OK
    row = rows["flows registered"]
    assert row.status == FAIL
    assert "not registered in project 'simmate': relaxation_emt, smoke, static_energy_emt" \
        in row.detail
    assert row.fix == "simmate-k8s register --project simmate"


def test_flows_registered_in_another_project_do_not_count(registered, monkeypatch):
    monkeypatch.setenv("SIMMATE_PROJECT", "materials")
    assert prefect_rows()["flows registered"].status == FAIL
    monkeypatch.delenv("SIMMATE_PROJECT")
    assert prefect_rows()["flows registered"].status == OK


def test_agent_heartbeat(registered):
    now = datetime.now(UTC)
    assert prefect_rows(now)["agent heartbeat"].status == FAIL  # no agent
    registered.state.add_agent("never-polled", None)
    row = prefect_rows(now)["agent heartbeat"]
    assert (row.status, "1 registered, none polled" in row.detail) == (FAIL, True)
    registered.state.add_agent("stale", now - timedelta(minutes=5))
    row = prefect_rows(now)["agent heartbeat"]
    assert row.status == FAIL
    assert "agent 'stale' last asked for work 300 s ago" in row.detail
    registered.state.add_agent("fresh", now - timedelta(seconds=8))
    row = prefect_rows(now)["agent heartbeat"]
    assert (row.status, row.detail) == (OK, "agent 'fresh' asked for work 8 s ago")
