"""Faults in the middle of a batch: every result is saved exactly once (real PostgreSQL, real
Dask worker processes with the preload, a real Prefect flow with DaskExecutor(address=...))."""

import os
import signal
import threading
import time

from distributed import Client
from prefect.executors import DaskExecutor

from simmate_k8s.flows.library import smoke
from tests.conftest import count_rows
from tests.support.dask import DaskProcesses

TASKS = 60


def _start_smoke(address, n, delay):
    outcome = {}

    def target():
        outcome["state"] = smoke.run(parameters={"n": n, "delay": delay},
                                     executor=DaskExecutor(address=address))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def _rows_or_zero(url):
    try:
        return count_rows(url)
    except Exception:  # the database may be restarting
        return 0


def _wait_for_rows(url, at_least, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _rows_or_zero(url)
        if rows >= at_least:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} rows after {timeout} s")


def _distinct_keys(url):
    from simmate_k8s import database

    return {row["task_key"] for row in database.load_results(database.create_engine(url))}


def test_database_restart_mid_batch_of_60_tasks_saves_each_once(postgres, pg_url):
    with DaskProcesses(pg_url, workers=2) as cluster:
        thread, outcome = _start_smoke(cluster.address, TASKS, delay=0.15)
        before = _wait_for_rows(pg_url, 10)
        postgres.restart(down_for=2.0)
        thread.join(timeout=180)
    assert not thread.is_alive()
    assert outcome["state"].is_successful(), outcome["state"]
    rows = count_rows(pg_url)
    print(f"rows before restart: {before}; after: {rows} of {TASKS}")
    assert before < TASKS, "the restart must happen mid-batch"
    assert rows == TASKS and len(_distinct_keys(pg_url)) == TASKS


def test_worker_sigkill_mid_batch_of_60_tasks_saves_each_once(pg_url):
    with DaskProcesses(pg_url, workers=2) as cluster, Client(cluster.address) as client:
        pids = client.run(os.getpid)
        thread, outcome = _start_smoke(cluster.address, TASKS, delay=0.15)
        before = _wait_for_rows(pg_url, 10)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=180)
        workers_after = len(client.scheduler_info()["workers"])
    assert not thread.is_alive()
    assert outcome["state"].is_successful(), outcome["state"]
    rows = count_rows(pg_url)
    print(f"killed worker pid {victim} after {before} rows; saved {rows} of {TASKS}; "
          f"workers after: {workers_after}")
    assert before < TASKS, "the kill must happen mid-batch"
    assert rows == TASKS and len(_distinct_keys(pg_url)) == TASKS
