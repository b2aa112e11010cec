"""The worker preload against a real PostgreSQL and real `dask worker` processes."""

import subprocess
import time

import dask
import sqlalchemy as sa
from distributed import Client

from simmate_k8s import database
from simmate_k8s.preload import PLUGIN_NAME
from tests.conftest import count_rows
from tests.support.dask import DaskProcesses, dask_command
from tests.support.postgres import free_port


def _connections(url: str) -> int:
    engine = database.create_engine(url)
    with engine.connect() as connection:
        count = connection.execute(sa.text(
            "select count(*) from pg_stat_activity where application_name = 'simmate-k8s'"
        )).scalar_one()
    engine.dispose()
    return count - 1  # this query's own connection


def _save_on_worker(i):
    """Claim and finish one item through the worker's preloaded engine, as a task does."""
    import uuid

    from simmate_k8s import results
    from simmate_k8s.preload import results_engine

    engine, execution = results_engine(), uuid.uuid4().hex
    digest = results.input_digest(i)
    item = {"key": results.item_key("preload-test", "1", digest, {}), "name": f"item-{i}",
            "digest": digest}
    assert results.claim(engine, item, workflow="preload-test", version="1", parameters={},
                         batch_id="b", flow_run_id=None, execution_id=execution,
                         worker="w", queued_at=results.now(), rerun=False) == 1
    assert results.finish(engine, item["key"], execution, status="completed", result={"i": i})
    return item["key"]


def test_every_worker_holds_one_pool_and_tasks_share_it(pg_url):
    with DaskProcesses(pg_url, workers=2) as cluster, Client(cluster.address) as client:
        plugins = client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins)
        assert list(plugins.values()) == [True, True]
        keys = client.gather(client.map(_save_on_worker, range(200)))
        assert len(set(keys)) == 200
        # 200 saves from 2 workers: pooled connections, not one per task
        assert 1 <= _connections(pg_url) <= 2 * 4
    assert count_rows(pg_url) == 200


def test_worker_does_not_start_when_the_database_is_down_3s_timeout():
    port = free_port()  # nothing listens here
    url = f"postgresql://simmate:hunter2@127.0.0.1:{port}/results"
    with DaskProcesses(url, workers=0, connect_timeout=3) as cluster:
        started = time.monotonic()
        worker = subprocess.run(
            dask_command() + ["worker", cluster.address, "--nthreads", "1",
                              "--preload", "simmate_k8s.preload", "--no-nanny"],
            env=cluster.env, capture_output=True, text=True, timeout=60,
        )
        elapsed = time.monotonic() - started
        with Client(cluster.address) as client:
            assert client.scheduler_info()["workers"] == {}  # no silent start
    assert worker.returncode != 0
    assert 3 <= elapsed < 30
    assert f"cannot reach the results database postgresql+psycopg://simmate:***@127.0.0.1:{port}" \
        in worker.stderr
    assert "hunter2" not in worker.stderr


def test_client_preload_registers_the_plugin_on_existing_workers(pg_url, monkeypatch):
    monkeypatch.setenv("SIMMATE_DATABASE_URL", pg_url)
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster:
        with Client(cluster.scheduler_address) as plain:
            assert plain.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins) == {
                w: False for w in plain.scheduler_info()["workers"]}
        with dask.config.set({"distributed.client.preload": ["simmate_k8s.preload"]}), \
                Client(cluster.scheduler_address) as client:
            assert all(client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins).values())
            assert len(client.submit(_save_on_worker, 1).result()) == 64
    assert count_rows(pg_url) == 1


def test_worker_with_a_wrong_password_stops_at_once(postgres, pg_url):
    wrong = pg_url.replace(f":{postgres.password}@", ":not-the-password@")
    with DaskProcesses(pg_url, workers=0, connect_timeout=30) as cluster:
        started = time.monotonic()
        worker = subprocess.run(
            dask_command() + ["worker", cluster.address, "--nthreads", "1",
                              "--preload", "simmate_k8s.preload", "--no-nanny"],
            env={**cluster.env, "SIMMATE_DATABASE_URL": wrong}, capture_output=True, text=True,
            timeout=60)
        elapsed = time.monotonic() - started
    assert worker.returncode != 0
    assert elapsed < 15, "a refused login must not be retried for the 30 s connect timeout"
    assert "refused the connection" in worker.stderr and "password authentication" in worker.stderr
    assert "not-the-password" not in worker.stderr
