"""The project image, for real: scheduler + preload worker containers, PostgreSQL, a flow.

Every container runs the way the chart runs its pods: UID 1000, read-only root filesystem,
no capabilities, /tmp and $HOME as scratch tmpfs.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import sqlalchemy as sa

from simmate_k8s import database, results
from simmate_k8s.flows.registry import get_workflow

pytestmark = pytest.mark.container


def worker_command(scheduler: str) -> list[str]:
    return [
        "dask", "worker", scheduler,
        "--preload", "simmate_k8s.preload",
        "--nworkers", "1", "--nthreads", "2",
        "--host", "127.0.0.1", "--no-dashboard",
    ]  # fmt: skip


def test_image_config(image, containers):
    config = json.loads(containers.podman("image", "inspect", image).stdout)[0]["Config"]
    assert not image.endswith(":latest")
    assert config["User"] == "1000:1000"
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["Labels"]["org.opencontainers.image.title"] == "simmate-k8s"
    assert config["Labels"]["org.opencontainers.image.version"] == image.rsplit(":", 1)[1]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_default_command_runs_under_tini_as_non_root(containers):
    result = containers.run(
        "sh", "-c", "id -u; tr '\\0' ' ' </proc/1/cmdline; echo; simmate-k8s --help"
    )
    assert result.returncode == 0, result.stderr
    uid, pid1, *help_text = result.stdout.splitlines()
    assert uid == "1000"
    assert pid1.split()[0].endswith("tini")
    assert "Usage: simmate-k8s" in "\n".join(help_text)


# The stand-in base carries Debian's Python 3.11.2; the host venv may be another 3.11.x.
@pytest.mark.filterwarnings("ignore:Mismatched versions found")
def test_smoke_batch_results_land_in_postgres(image, containers, scheduler, pg_url):
    from distributed import Client

    env = {"SIMMATE_DATABASE_URL": pg_url, "SIMMATE_IMAGE": image}
    worker = containers.start("worker", *worker_command(scheduler), env=env)
    with Client(scheduler, timeout=30) as client:
        try:
            client.wait_for_workers(1, timeout=120)
        except TimeoutError:
            pytest.fail(f"worker did not register:\n{containers.logs(worker)}")

    # The batch itself, from a third container of the same image (as a flow-run Job does).
    # It reads the results database to skip what is done and to report (the chart's flow-run
    # Jobs get the same URL from the release's Secret); the rows are written by the worker.
    def run_smoke(batch_id):
        return containers.run("simmate-k8s", "run", "smoke", "--param", "n=6", "--address",
                              scheduler, "--batch-id", batch_id, "--json",
                              env={"SIMMATE_DATABASE_URL": pg_url})

    run = run_smoke("smoke-first")
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- worker ---\n" + containers.logs(
        worker
    )
    (outcome,) = json.loads(run.stdout)
    assert outcome["batch_id"] == "smoke-first"
    assert outcome["summary"]["completed"] == 6 and outcome["summary"]["cached"] == 0

    smoke = get_workflow("smoke")
    engine = sa.create_engine(database.parse_url(pg_url))
    try:
        rows = results.load_rows(engine, workflow="smoke")
        report = results.batch_report(engine, "smoke-first")
    finally:
        engine.dispose()
    assert [row["input_name"] for row in rows] == [f"square-{i}" for i in range(6)], (
        f"smoke rows: {rows}\n{run.stdout}\n{containers.logs(worker)}")
    for i, row in enumerate(rows):
        assert (row["workflow"], row["status"], row["error"]) == ("smoke", "completed", None)
        assert row["result"] == {"i": i, "square": i * i}
        assert row["parameters"] == smoke.compute_parameters(smoke.check_parameters({"n": 6}))
        assert row["batch_id"] == "smoke-first" and row["executions"] == 1
        assert row["worker"] and row["finished_at"] >= row["started_at"]
        assert row["provenance"]["simmate-k8s"] and row["provenance"]["image"] == image
    assert [entry["position"] for entry in report] == list(range(6))
    assert "results database" in containers.logs(worker)  # the preload said it was ready

    # The same batch again: found done, nothing computed, no new rows.
    again = run_smoke("smoke-again")
    assert again.returncode == 0, again.stderr
    (outcome,) = json.loads(again.stdout)
    assert outcome["summary"]["cached"] == 6 and outcome["summary"]["completed"] == 0
    engine = sa.create_engine(database.parse_url(pg_url))
    try:
        assert results.row_count(engine) == 6
        assert {row["batch_id"] for row in results.load_rows(engine)} == {"smoke-first"}
    finally:
        engine.dispose()


def test_worker_fails_fast_when_the_database_is_unreachable(containers, scheduler):
    closed_port = containers.free_port()  # nothing listens there
    env = {
        "SIMMATE_DATABASE_URL": f"postgresql://simmate:s3cret@127.0.0.1:{closed_port}/results",
        "SIMMATE_DB_CONNECT_TIMEOUT": "5",
    }
    start = time.monotonic()
    worker = containers.start("worker-nodb", *worker_command(scheduler), env=env)
    try:
        exit_code = int(containers.podman("wait", worker, timeout=90).stdout.strip())
    except subprocess.TimeoutExpired:
        pytest.fail(f"worker still running 90 s after start:\n{containers.logs(worker)}")
    elapsed = time.monotonic() - start
    logs = containers.logs(worker)
    assert exit_code != 0, logs
    assert elapsed < 60, f"took {elapsed:.0f} s to give up\n{logs}"
    assert "cannot reach the results database" in logs
    assert "s3cret" not in logs  # the password is redacted
