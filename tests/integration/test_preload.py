"""The worker preload against a real PostgreSQL and real `dask worker` processes."""

import subprocess
import time

import dask
import sqlalchemy as sa
from distributed import Client

from simmate_k8s import database
from simmate_k8s.preload import PLUGIN_NAME
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
    from simmate_k8s import database
    from simmate_k8s.preload import results_engine

    return database.save_result(results_engine(), flow_name="preload-test", task_name="t",
                                parameters={"i": i}, result={"i": i})


def test_every_worker_holds_one_pool_and_tasks_share_it(pg_url):
    with DaskProcesses(pg_url, workers=2) as cluster, Client(cluster.address) as client:
        plugins = client.run(lambda dask_worker: PLUGIN_NAME in dask_worker.plugins)
        assert list(plugins.values()) == [True, True]
        keys = client.gather(client.map(_save_on_worker, range(200)))
        assert len(set(keys)) == 200
        # 200 saves from 2 workers: pooled connections, not one per task
        assert 1 <= _connections(pg_url) <= 2 * 4
    assert len(database.load_results(database.create_engine(pg_url))) == 200


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
            assert client.submit(_save_on_worker, 1).result().startswith("preload-test/t/")
