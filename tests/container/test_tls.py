"""The chart's Dask TLS in the project image: scheduler and preload worker containers started
with the args and env the DaskCluster renders, the certificates of the chart's Secret mounted
where the pods mount them; a client container with the flow-run Job's env runs a batch into
PostgreSQL, and clients without the certificates are refused.

The image must hold this checkout's CLI: SIMMATE_TEST_IMAGE, or the fixture's build."""

from __future__ import annotations

import json

import pytest

from tests.support.dask_tls import MOUNT, ChartTls, assert_tls_scheduler_refuses_strangers
from tests.support.postgres import free_port

from .conftest import wait_for_port

pytestmark = pytest.mark.container

FLOW_ENV_KEEP = ("DASK_", "SIMMATE_", "HOME")  # the Job's plain env (Prefect's is the agent's)


def volume(directory) -> tuple[str, str]:
    return ("--volume", f"{directory}:{MOUNT}:ro")


# The stand-in base carries Debian's Python 3.11.2; the host venv may be another 3.11.x.
@pytest.mark.filterwarnings("ignore:Mismatched versions found")
def test_tls_cluster_from_the_rendered_chart(containers, pg_url, tmp_path):

    chart = ChartTls()
    port, dashboard, worker_dashboard = free_port(), free_port(), free_port()
    address = f"tls://127.0.0.1:{port}"
    local = {chart.address: address, "$(DASK_WORKER_NAME)": "tls-worker"}

    # Only ports, the Service address and the worker name differ from the rendered pods.
    args = chart.scheduler.args(local)
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dashboard-address") + 1] = f"127.0.0.1:{dashboard}"
    scheduler = containers.start(
        "tls-scheduler",
        *args,
        "--host",
        "127.0.0.1",
        env=chart.scheduler.env(local),
        options=volume(chart.mount(chart.scheduler, tmp_path / "scheduler", owner=1000)),
    )
    wait_for_port(port, timeout=90, what=lambda: containers.logs(scheduler))

    args = chart.worker.args(local)
    args[args.index("--dashboard-address") + 1] = str(worker_dashboard)
    worker = containers.start(
        "tls-worker",
        *args,
        "--host",
        "127.0.0.1",
        env={**chart.worker.env(local), "SIMMATE_DATABASE_URL": pg_url},
        options=volume(chart.mount(chart.worker, tmp_path / "worker", owner=1000)),
    )

    flow_certs = chart.mount(chart.flow_run, tmp_path / "flow", owner=1000)
    flow_env = {k: v for k, v in chart.flow_run.env(local).items() if k.startswith(FLOW_ENV_KEEP)}
    assert flow_env["SIMMATE_DASK_ADDRESS"] == address
    run = containers.run(
        "simmate-k8s",
        "run",
        "smoke",
        "--param",
        "n=6",
        "--address",
        address,
        "--batch-id",
        "tls-smoke",
        "--json",
        env={**flow_env, "SIMMATE_DATABASE_URL": pg_url},
        options=volume(flow_certs),
        timeout=300,
    )
    logs = f"--- scheduler\n{containers.logs(scheduler)}\n--- worker\n{containers.logs(worker)}"
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{logs}"
    (outcome,) = json.loads(run.stdout)
    assert outcome["summary"]["completed"] == 6, logs

    import sqlalchemy as sa

    from simmate_k8s import database, results

    engine = sa.create_engine(database.parse_url(pg_url))
    try:
        rows = results.load_rows(engine, workflow="smoke")
    finally:
        engine.dispose()
    assert [row["input_name"] for row in rows] == [f"square-{i}" for i in range(6)]
    assert all(row["worker"].startswith("tls-worker (tls://") for row in rows), rows

    # Without the certificates: the CLI says so in one line; the scheduler refuses tcp://, TLS
    # without a client certificate, and a certificate of another CA.
    bare = {k: v for k, v in flow_env.items() if not k.startswith("DASK_")}
    refused = containers.run(
        "simmate-k8s",
        "run",
        "smoke",
        "--address",
        address,
        env={**bare, "SIMMATE_DATABASE_URL": pg_url},
    )
    assert refused.returncode == 2, refused.stderr
    assert "needs TLS certificates: set DASK_DISTRIBUTED__COMM__TLS__CA_FILE" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    plain = containers.run(
        "simmate-k8s",
        "run",
        "smoke",
        "--address",
        f"tcp://127.0.0.1:{port}",
        env={**bare, "SIMMATE_DATABASE_URL": pg_url},
    )
    assert plain.returncode == 2 and "no Dask scheduler answers" in plain.stderr, plain.stderr
    assert_tls_scheduler_refuses_strangers(address, port, str(flow_certs / "ca.crt"))
