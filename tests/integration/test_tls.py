"""The chart's Dask TLS with real processes: `dask scheduler` and a preload `dask worker` started
with the args and env the chart renders (certificates from its Secret), the CLI's Security path,
refusals, and the HTTP API the operator's autoscaler uses."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest

from tests.conftest import result_rows, run_cli
from tests.support.dask import dask_command
from tests.support.dask_tls import MOUNT, ChartTls, assert_tls_scheduler_refuses_strangers
from tests.support.postgres import free_port

TLS_VARIABLES = (
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "SIMMATE_"))}


@pytest.fixture(scope="module")
def tls_pg_url(postgres):
    return postgres.create_database(f"t_tls_{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, tls_pg_url):
    """(chart, tls:// address, dashboard port, client env) of a running TLS cluster, shared by
    the tests below (the last one retires its worker)."""
    tmp_path, pg_url = tmp_path_factory.mktemp("tls"), tls_pg_url
    chart = ChartTls()
    port, dashboard, worker_dashboard = free_port(), free_port(), free_port()
    address = f"tls://127.0.0.1:{port}"
    processes = []
    logs = {}

    def spawn(name, pod, args, extra):
        env = {
            **clean_env(),
            **pod.env({MOUNT: str(chart.mount(pod, tmp_path / name))}),
            "HOME": str(tmp_path),
            **extra,
        }
        logs[name] = tmp_path / f"{name}.log"
        with open(logs[name], "wb") as log:
            processes.append(
                subprocess.Popen(
                    dask_command() + args[1:],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    # Only the ports (free local ones) and the Service address (127.0.0.1) are replaced.
    scheduler_args = chart.scheduler.args({})
    scheduler_args[scheduler_args.index("--port") + 1] = str(port)
    scheduler_args[scheduler_args.index("--dashboard-address") + 1] = f"127.0.0.1:{dashboard}"
    spawn("scheduler", chart.scheduler, [*scheduler_args, "--host", "127.0.0.1"], {})
    worker_args = chart.worker.args({chart.address: address, "$(DASK_WORKER_NAME)": "tls-w0"})
    worker_args[worker_args.index("--dashboard-address") + 1] = str(worker_dashboard)
    worker_args[worker_args.index("--local-directory") + 1] = str(tmp_path / "w0")
    spawn(
        "worker",
        chart.worker,
        [*worker_args, "--host", "127.0.0.1"],
        {
            "SIMMATE_DATABASE_URL": pg_url,
            "DASK_SCHEDULER_ADDRESS": address,
            "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
        },
    )
    client_env = chart.flow_run.env({MOUNT: str(chart.mount(chart.flow_run, tmp_path / "flow"))})
    client_env = {k: v for k, v in client_env.items() if k.startswith("DASK_DISTRIBUTED__COMM")}
    try:
        wait_for_workers(dashboard, 1, timeout=90, logs=logs)
        yield chart, address, dashboard, client_env
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


def api(dashboard: int, path: str, body: dict | None = None):
    """The scheduler's HTTP API, plain HTTP, the way the operator calls it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{dashboard}{path}", data=data, method="POST" if data else "GET"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def wait_for_workers(dashboard, count, timeout, logs):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(api(dashboard, "/api/v1/get_workers")["workers"]) >= count:
                return
        except OSError:
            pass
        time.sleep(0.5)
    text = "\n".join(f"--- {n}\n{p.read_text(errors='replace')[-3000:]}" for n, p in logs.items())
    raise AssertionError(f"no TLS worker registered within {timeout} s\n{text}")


def test_a_batch_over_tls_with_the_chart_certificates(tls_cluster, tls_pg_url, cli_env):
    pg_url = tls_pg_url
    chart, address, dashboard, client_env = tls_cluster
    env = {**cli_env, "SIMMATE_DATABASE_URL": pg_url, **client_env}
    result = run_cli("run", "smoke", "--param", "n=4", "--address", address, "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (outcome,) = json.loads(result.stdout)
    assert outcome["summary"]["completed"] == 4
    rows = result_rows(pg_url)
    assert sorted(row["input_name"] for row in rows) == [f"square-{i}" for i in range(4)]
    (worker,) = {row["worker"] for row in rows}
    assert worker.startswith("tls-w0 (tls://127.0.0.1:")  # the TLS worker computed them
    # and the pod env names what the chart's Job templates mount
    assert set(client_env) >= {*TLS_VARIABLES, "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"}


def test_clients_without_the_certificates_are_refused(tls_cluster, tmp_path, cli_env):

    chart, address, dashboard, client_env = tls_cluster
    port = int(address.rsplit(":", 1)[1])
    ca_file = client_env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"]
    # The CLI: tls:// without certificates is one line naming the variables, nothing runs.
    result = run_cli("run", "smoke", "--address", address, env=cli_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert all(name in result.stderr for name in TLS_VARIABLES)
    unreadable = {**cli_env, **client_env, TLS_VARIABLES[2]: str(tmp_path / "missing.key")}
    result = run_cli("run", "smoke", "--address", address, env=unreadable)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"{TLS_VARIABLES[2]}={tmp_path / 'missing.key'}: cannot read it" in result.stderr
    # The scheduler: plain tcp://, TLS without a client certificate, a certificate of another CA.
    result = run_cli("run", "smoke", "--address", f"tcp://127.0.0.1:{port}", env=cli_env)
    assert result.returncode == 2 and "no Dask scheduler answers" in result.stderr
    assert_tls_scheduler_refuses_strangers(address, port, ca_file)


def test_the_flow_run_executor_connects_with_the_pod_certificates(tls_cluster, monkeypatch):
    """Flow runs started by the agent: ReleaseDaskExecutor with the Job template's env."""
    from simmate_k8s.errors import SettingsError
    from simmate_k8s.flows.library import ReleaseDaskExecutor

    chart, address, dashboard, client_env = tls_cluster
    monkeypatch.setenv("SIMMATE_DASK_ADDRESS", address)
    with (
        pytest.raises(SettingsError, match="needs TLS certificates"),
        ReleaseDaskExecutor().start(),
    ):
        pass
    for name, value in client_env.items():
        monkeypatch.setenv(name, value)
    executor = ReleaseDaskExecutor()
    with executor.start():
        assert executor.client.scheduler.address == address
        assert executor.client.submit(sum, [1, 2], pure=False).result(timeout=60) == 3


def test_the_autoscaler_http_api_works_and_the_rpc_fallback_does_not(tls_cluster):
    """What dask_kubernetes' operator does: GET adaptive_target, POST retire_workers on the
    dashboard port (plain HTTP); its RPC fallback (no certificates) cannot get through."""
    import asyncio

    import aiohttp
    from distributed.core import rpc

    chart, address, dashboard, client_env = tls_cluster
    port = int(address.rsplit(":", 1)[1])

    async def operator_calls():
        async with aiohttp.ClientSession() as session:  # the operator spells it tcp://
            url = f"tcp://127.0.0.1:{dashboard}/api/v1"
            async with session.get(f"{url}/adaptive_target") as response:
                target = (await response.json())["workers"]
            async with session.post(f"{url}/retire_workers", json={"n": 1}) as response:
                retired = await response.json()
        return target, retired

    target, retired = asyncio.run(operator_calls())
    assert target == 0  # idle: scale down
    assert [worker["name"] for worker in retired.values()] == ["tls-w0"]

    async def rpc_fallback():
        async with rpc(f"tcp://127.0.0.1:{port}", timeout=3) as scheduler:
            return await scheduler.adaptive_target()

    with pytest.raises((OSError, TimeoutError)):
        asyncio.run(rpc_fallback())
