"""Faults in the middle of a batch, on a real PostgreSQL and real `dask worker` processes with the
preload, driven through the real CLI (`simmate-k8s run --address`).

Every test counts rows AND executions: each row's ``executions`` is how often the batch started
computing that item, so a task that Dask ran twice is seen even though the row was upserted
once. Each test also shows that the fault really met saves (the workers log their retries), and
that running the same batch again computes nothing.
"""

import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from distributed import Client

from tests.conftest import CLI, result_rows
from tests.support.dask import DaskProcesses
from tests.support.postgres import PostgresServer

RETRY_LINE = "results database away"


def start_batch(env, address, n, delay, batch_id):
    return subprocess.Popen(
        [*CLI, "run", "smoke", "--param", f"n={n}", "--param", f"delay={delay}",
         "--address", address, "--batch-id", batch_id, "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=240):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def rows_or_none(url):
    try:
        return result_rows(url)
    except Exception:  # the database is down right now
        return None


def wait_until(predicate, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def completed_count(url):
    rows = rows_or_none(url)
    return rows is not None and sum(r["status"] == "completed" for r in rows)


def check_exactly_once(url, n, batch_id, summary):
    """0 lost, 0 duplicated; executions add up to items + the re-executions reported."""
    rows = result_rows(url)
    assert len(rows) == n, f"{len(rows)} rows for {n} items"
    assert len({r["key"] for r in rows}) == n
    assert {r["input_name"] for r in rows} == {f"square-{i}" for i in range(n)}
    assert all(r["status"] == "completed" and r["batch_id"] == batch_id for r in rows)
    assert all(r["result"]["square"] == int(r["input_name"][7:]) ** 2 for r in rows)
    reexecuted = {r["input_name"]: r["executions"] for r in rows if r["executions"] > 1}
    reported = {entry["input"]: entry["executions"] for entry in summary["reexecuted"]}
    assert reported == reexecuted
    assert sum(r["executions"] for r in rows) == n + sum(c - 1 for c in reexecuted.values())
    return rows, reexecuted


def check_rerun_computes_nothing(env, address, n, delay, url, rows_before):
    batch_id = f"again-{uuid.uuid4().hex[:8]}"
    code, out, err = finish(start_batch(env, address, n, delay, batch_id))
    assert code == 0, err
    [outcome] = json.loads(out)
    assert outcome["summary"]["completed"] == 0 and outcome["summary"]["cached"] == n
    after = {r["key"]: (r["executions"], r["batch_id"], r["finished_at"]) for r in result_rows(url)}
    assert after == {r["key"]: (r["executions"], r["batch_id"], r["finished_at"])
                     for r in rows_before}


def worker_logs(cluster):
    return "".join(cluster.log(f"worker-{i}") for i in range(cluster.workers))


@pytest.fixture
def env(cli_env, pg_url):
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    return cli_env


def test_two_restarts_and_a_sigkilled_worker_in_a_300_item_batch(postgres, pg_url, env):
    n, delay, batch_id = 300, 0.1, "faults-" + uuid.uuid4().hex[:8]
    with DaskProcesses(pg_url, workers=2) as cluster, Client(cluster.address) as client:
        process = start_batch(env, cluster.address, n, delay, batch_id)
        wait_until(lambda: completed_count(pg_url) >= 30, what="30 saved rows")
        postgres.restart(down_for=1.5)
        wait_until(lambda: completed_count(pg_url) >= 120, what="120 saved rows")
        postgres.restart(down_for=1.5)
        # kill a worker while it is computing an item it has claimed: that one must run again
        pids = client.run(os.getpid)
        address, pid = sorted(pids.items())[0]

        def claimed_by_victim():
            rows = rows_or_none(pg_url) or []
            return [r for r in rows if r["status"] == "running" and address in (r["worker"] or "")]

        [victim_item] = wait_until(claimed_by_victim, what="an item running on the victim")[:1]
        before_kill = completed_count(pg_url)
        os.kill(pid, signal.SIGKILL)
        code, out, err = finish(process)
    assert code == 0, err
    assert before_kill < n, "the kill must happen mid-batch"
    [outcome] = json.loads(out)
    rows, reexecuted = check_exactly_once(pg_url, n, batch_id, outcome["summary"])
    assert victim_item["input_name"] in reexecuted, (victim_item["input_name"], reexecuted)
    assert RETRY_LINE in worker_logs(cluster), "no save met the restarts"
    print(f"re-executed after the kill: {reexecuted}; rows {len(rows)}")
    with DaskProcesses(pg_url, workers=1) as again:
        check_rerun_computes_nothing(env, again.address, n, delay, pg_url, rows)


def test_database_down_longer_than_the_connect_timeout(postgres, pg_url, env):
    n, delay, batch_id = 120, 0.05, "outage-" + uuid.uuid4().hex[:8]
    with DaskProcesses(pg_url, workers=2, connect_timeout=3) as cluster:
        process = start_batch(env, cluster.address, n, delay, batch_id)
        before = wait_until(lambda: completed_count(pg_url) >= 20, what="20 saved rows")
        postgres.restart(down_for=12)  # 4 x SIMMATE_DB_CONNECT_TIMEOUT
        code, out, err = finish(process)
    assert code == 0, err
    assert before < n
    [outcome] = json.loads(out)
    rows, reexecuted = check_exactly_once(pg_url, n, batch_id, outcome["summary"])
    assert reexecuted == {}, "no worker was lost: nothing may run twice"
    assert RETRY_LINE in worker_logs(cluster)


@pytest.fixture
def durable_postgres():
    """A server with fsync on: what a crash must not lose has really reached the disk."""
    with PostgresServer(fsync=True) as server:
        yield server


def test_crash_stop_with_fsync_on(durable_postgres, cli_env):
    url = durable_postgres.create_database("crash")
    cli_env["SIMMATE_DATABASE_URL"] = url
    n, delay, batch_id = 150, 0.05, "crash-" + uuid.uuid4().hex[:8]
    with DaskProcesses(url, workers=2) as cluster:
        process = start_batch(cli_env, cluster.address, n, delay, batch_id)
        wait_until(lambda: completed_count(url) >= 40, what="40 saved rows")
        durable_postgres.stop("immediate")  # no shutdown checkpoint: recovery replays the WAL
        time.sleep(2)
        durable_postgres.start()
        code, out, err = finish(process)
    assert code == 0, err
    [outcome] = json.loads(out)
    rows, reexecuted = check_exactly_once(url, n, batch_id, outcome["summary"])
    assert reexecuted == {}
    assert RETRY_LINE in worker_logs(cluster)
    assert "database system was interrupted" in durable_postgres.log_tail(200) or \
        "not properly shut down" in durable_postgres.log_tail(200)


def test_a_rerun_computes_only_the_failed_and_missing_items(pg_url, env):
    from simmate_k8s import database, results

    n = 40
    with DaskProcesses(pg_url, workers=2) as cluster:
        code, out, err = finish(start_batch(env, cluster.address, n, 0, "first"))
        assert code == 0, err
        engine = database.create_engine(pg_url)
        table = results.results_table
        with engine.begin() as connection:  # 5 lost rows, 3 failed ones
            connection.execute(table.delete().where(table.c.input_name.in_(
                [f"square-{i}" for i in range(5)])))
            connection.execute(table.update().where(table.c.input_name.in_(
                [f"square-{i}" for i in range(5, 8)])).values(status="failed", error="boom"))
        engine.dispose()
        code, out, err = finish(start_batch(env, cluster.address, n, 0, "second"))
    assert code == 0, err
    [outcome] = json.loads(out)
    assert (outcome["summary"]["completed"], outcome["summary"]["cached"]) == (8, n - 8)
    recomputed = {r["input_name"] for r in result_rows(pg_url) if r["batch_id"] == "second"}
    assert recomputed == {f"square-{i}" for i in range(8)}
