"""The retention CronJob: rendered as asked, and its SQL (files/retention.sql, the same bytes the
CronJob mounts) run by psql against a real PostgreSQL holding Prefect Server v1's tables."""

import subprocess
import uuid

import psycopg
import pytest

from tests.chart.helpers import CHART, find, kinds, render_chart
from tests.chart.test_network_policy import COMPONENT, policies
from tests.support.postgres import find_bin_dir

SQL = (CHART / "files" / "retention.sql").read_text()

# Prefect Server v1's tables, reduced to the columns and foreign keys the retention SQL relies on,
# as PrefectHQ/server's published migrations define them:
#   services/postgres/alembic/versions/2020-06-24T092037_initial_database_migration.py
#     (the tables, indexes and ON DELETE CASCADE foreign keys; `log` has no primary key),
#   services/postgres/alembic/versions/2020-08-08T205817_remove_state_id_foreign_keys.py
#     (flow_run.state_id / task_run.state_id dropped),
#   (log.created / log.updated stay: the migration dropping them, 2020-08-17T220757_remove_
#     updated_and_created_columns_on_.py, is a dead branch no later migration revises; see
#     tests/contract/prefect_server_api.py. The SQL does not use them.)
PREFECT_TABLES = """
CREATE TABLE flow_run (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created timestamptz NOT NULL DEFAULT now(),
    updated timestamptz NOT NULL DEFAULT now(),
    scheduled_start_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    state varchar
);
CREATE INDEX ix_flow_run_updated ON flow_run (updated);
CREATE TABLE flow_run_state (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    flow_run_id uuid NOT NULL REFERENCES flow_run (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL DEFAULT clock_timestamp(),
    state varchar NOT NULL
);
CREATE INDEX ix_flow_run_state_flow_run_id ON flow_run_state (flow_run_id);
CREATE TABLE task_run (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    flow_run_id uuid NOT NULL REFERENCES flow_run (id) ON DELETE CASCADE,
    map_index integer NOT NULL DEFAULT -1,
    updated timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_task_run_flow_run_id ON task_run (flow_run_id);
CREATE TABLE task_run_state (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_run_id uuid NOT NULL REFERENCES task_run (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL DEFAULT clock_timestamp(),
    state varchar NOT NULL
);
CREATE INDEX ix_task_run_state_task_run_id ON task_run_state (task_run_id);
CREATE TABLE log (
    flow_run_id uuid REFERENCES flow_run (id) ON DELETE CASCADE,
    task_run_id uuid REFERENCES task_run (id) ON DELETE CASCADE,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    message varchar,
    id uuid NOT NULL DEFAULT gen_random_uuid()
);
CREATE INDEX ix_log_flow_run_id ON log (flow_run_id);
CREATE INDEX ix_log_task_run_id ON log (task_run_id);
"""

TABLES = ("flow_run", "flow_run_state", "task_run", "task_run_state", "log")


def add_flow_run(connection, age_days, tasks=3, scheduled_in_days=None):
    """A flow run with states, task runs (each with states) and logs, all `age_days` old."""
    run = uuid.uuid4()
    when = f"now() - interval '{age_days} days'"
    scheduled = when
    if scheduled_in_days is not None:
        scheduled = f"now() + interval '{scheduled_in_days} days'"
    connection.execute(
        f"INSERT INTO flow_run (id, created, updated, scheduled_start_time, state) "
        f"VALUES (%s, {when}, {when}, {scheduled}, 'Success')", (run,))
    for state in ("Scheduled", "Running", "Success"):
        connection.execute(
            f"INSERT INTO flow_run_state (flow_run_id, timestamp, state) VALUES (%s, {when}, %s)",
            (run, state))
    connection.execute(
        f"INSERT INTO log (flow_run_id, timestamp, message) VALUES (%s, {when}, 'flow log')",
        (run,))
    for index in range(tasks):
        task = uuid.uuid4()
        connection.execute(
            f"INSERT INTO task_run (id, flow_run_id, map_index, updated) "
            f"VALUES (%s, %s, %s, {when})", (task, run, index))
        for state in ("Pending", "Running", "Success"):
            connection.execute(
                f"INSERT INTO task_run_state (task_run_id, timestamp, state) "
                f"VALUES (%s, {when}, %s)", (task, state))
        connection.execute(
            f"INSERT INTO log (flow_run_id, task_run_id, timestamp, message) "
            f"VALUES (%s, %s, {when}, 'task log')", (run, task))
    return run


def counts(connection):
    return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def psql(url, days, batch_size):
    return subprocess.run(
        [str(find_bin_dir() / "psql"), "--no-psqlrc", "-v", "ON_ERROR_STOP=1",
         "-v", f"days={days}", "-v", f"batch_size={batch_size}", "-d", url, "-f", "-"],
        input=SQL, capture_output=True, text=True, timeout=120)


@pytest.fixture
def prefect_db(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
        connection.execute(PREFECT_TABLES)
    return pg_url


def test_old_runs_go_with_their_children_in_batches_and_new_ones_stay(prefect_db):
    with psycopg.connect(prefect_db, autocommit=True) as connection:
        old = [add_flow_run(connection, age_days=40) for _ in range(5)]
        new = [add_flow_run(connection, age_days=2) for _ in range(2)]
        later = add_flow_run(connection, age_days=40, scheduled_in_days=1)  # scheduled ahead
        connection.execute("INSERT INTO log (timestamp, message) VALUES "
                           "(now() - interval '90 days', 'orphan old'), (now(), 'orphan new')")
        before = counts(connection)

    result = psql(prefect_db, days=30, batch_size=2)
    assert result.returncode == 0, result.stderr

    with psycopg.connect(prefect_db) as connection:
        left = {row[0] for row in connection.execute("SELECT id FROM flow_run")}
        assert left == {*new, later}
        assert old[0] not in left
        after = counts(connection)
        # 5 old runs x (3 states, 3 task runs x 3 states, 1 + 3 logs) and one old orphan log
        assert before["flow_run"] - after["flow_run"] == 5
        assert before["flow_run_state"] - after["flow_run_state"] == 15
        assert before["task_run"] - after["task_run"] == 15
        assert before["task_run_state"] - after["task_run_state"] == 45
        assert before["log"] - after["log"] == 5 * 4 + 1
        orphan = connection.execute(
            "SELECT message FROM log WHERE flow_run_id IS NULL").fetchall()
        assert orphan == [("orphan new",)]
        # nothing left pointing at a deleted run
        assert connection.execute(
            "SELECT count(*) FROM task_run WHERE flow_run_id <> ALL (%s)",
            ([*new, later],)).fetchone()[0] == 0
    # batch size 2 over 5 old runs: three batches, each its own transaction
    assert result.stderr.count("retention: batch") == 3
    assert "deleted 5 flow run(s)" in result.stderr


def test_running_again_deletes_nothing_more(prefect_db):
    with psycopg.connect(prefect_db, autocommit=True) as connection:
        add_flow_run(connection, age_days=40)
        add_flow_run(connection, age_days=1)
    assert psql(prefect_db, days=30, batch_size=1000).returncode == 0
    with psycopg.connect(prefect_db) as connection:
        once = counts(connection)
    second = psql(prefect_db, days=30, batch_size=1000)
    assert second.returncode == 0 and "deleted 0 flow run(s)" in second.stderr
    with psycopg.connect(prefect_db) as connection:
        assert counts(connection) == once and once["flow_run"] == 1


@pytest.mark.parametrize("days, batch", [(0, 10), (30, 0)])
def test_nonsense_settings_delete_nothing(prefect_db, days, batch):
    with psycopg.connect(prefect_db, autocommit=True) as connection:
        add_flow_run(connection, age_days=400)
    result = psql(prefect_db, days=days, batch_size=batch)
    assert result.returncode != 0 and "must be at least 1" in result.stderr
    with psycopg.connect(prefect_db) as connection:
        assert counts(connection)["flow_run"] == 1


def test_cronjob_is_off_by_default(default_docs):
    assert "CronJob" not in kinds(default_docs)


def test_cronjob_runs_the_very_sql_file_with_psql():
    docs = render_chart(
        {"prefectServer": {"retention": {"enabled": True, "days": 14, "batchSize": 500,
                                         "schedule": "0 2 * * 0"}}},
        release="lab-a",
    )
    assert find(docs, "ConfigMap", "-retention")["data"]["retention.sql"] == SQL
    cron = find(docs, "CronJob", "-retention")
    assert cron["spec"]["schedule"] == "0 2 * * 0"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]
    postgres_peers = policies(docs)["postgresql"]["spec"]["ingress"][0]["from"]
    assert any(peer["podSelector"]["matchLabels"].get(COMPONENT) == "retention"
               for peer in postgres_peers), "the NetworkPolicy lets it reach postgres"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    [container] = spec["containers"]
    assert container["image"] == "postgres:16.4-bookworm"
    assert container["command"][0] == "psql"
    assert "days=14" in container["command"] and "batch_size=500" in container["command"]
    assert container["command"][-1] == "/etc/simmate/retention/retention.sql"
    env = {e["name"]: e for e in container["env"]}
    assert env["PGHOST"]["value"] == "lab-a-simmate-postgresql"
    assert env["PGDATABASE"]["value"] == "prefect"
    # Prefect's role, which owns Prefect's tables; never the superuser
    assert env["PGUSER"]["value"] == "prefect"
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "lab-a-simmate-postgresql-prefect", "key": "password"}


def test_cronjob_reaches_an_external_database():
    docs = render_chart(
        {
            "postgresql": {"enabled": False},
            "externalDatabase": {"host": "db.example.com", "port": 25060, "user": "doadmin",
                                 "existingSecret": "prefect-db", "sslmode": "verify-full"},
            "results": {"existingSecret": "results", "schema": {"enabled": False}},
            "prefectServer": {"retention": {"enabled": True}},
        }
    )
    container = find(docs, "CronJob", "-retention")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["PGHOST"] == "db.example.com" and env["PGPORT"] == "25060"
    assert env["PGSSLMODE"] == "verify-full" and env["PGUSER"] == "doadmin"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "prefect-db", "key": "password"}}
