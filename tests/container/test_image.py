"""The project image, for real: scheduler + preload worker containers, PostgreSQL, the flows;
its size, and what it leaves out.

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
from tests.conftest import EXAMPLES
from tests.support.image import MAX_IMAGE_MB, image_size_mb

pytestmark = pytest.mark.container


def worker_command(scheduler: str) -> list[str]:
    return [
        "dask", "worker", scheduler,
        "--preload", "simmate_k8s.preload",
        "--nworkers", "1", "--nthreads", "2",
        "--host", "127.0.0.1", "--no-dashboard",
    ]  # fmt: skip


def start_worker(containers, scheduler: str, env: dict[str, str]) -> str:
    """A preloaded worker container, registered with the scheduler."""
    from distributed import Client

    worker = containers.start("worker", *worker_command(scheduler), env=env)
    with Client(scheduler, timeout=30) as client:
        try:
            client.wait_for_workers(1, timeout=120)
        except TimeoutError:
            pytest.fail(f"worker did not register:\n{containers.logs(worker)}")
    return worker


def test_image_size_is_within_the_target(image):
    size = image_size_mb(image)
    assert size <= MAX_IMAGE_MB, (
        f"{image} is {size:.0f} MB, over the {MAX_IMAGE_MB} MB target; "
        "python bench/image_size.py shows what fills it")


# Installed in a checkout, never in the image: no pod of a release imports them (Dockerfile).
LEFT_OUT = ("pip", "setuptools", "matplotlib", "aiohttp", "kubernetes.aio", "dask_kubernetes",
            "kubernetes_asyncio", "kopf", "dask_jobqueue")


def test_what_no_pod_needs_is_not_in_the_image(containers):
    found = containers.run("python", "-c", "import importlib.util as u, sys; "
                           "print(' '.join(m for m in sys.argv[1:] if u.find_spec(m)))",
                           *LEFT_OUT)
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == []


def test_the_left_out_extras_say_what_to_install(containers):
    hpc = containers.run("simmate-k8s", "workers", "slurm", "--dry-run")
    assert (hpc.returncode, hpc.stdout) == (2, ""), hpc.stderr
    assert hpc.stderr == ("Error: SLURM workers need dask-jobqueue, which is not installed: "
                          "pip install 'simmate-k8s[hpc]'\n")
    # doctor's CRD row needs the CRDs of the pinned dask-kubernetes: skipped, with the fix
    row = containers.run("python", "-c", "import json; from simmate_k8s import doctor; "
                         "print(json.dumps(doctor.crd_row(None).as_dict()))")
    assert row.returncode == 0, row.stderr
    assert json.loads(row.stdout) == {
        "check": "Dask CRDs", "status": "skipped",
        "detail": "dask-kubernetes is not installed: its CRDs are what the cluster's are "
                  "compared with",
        "fix": "pip install 'simmate-k8s[chart]'"}


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
    worker = start_worker(containers, scheduler, {"SIMMATE_DATABASE_URL": pg_url,
                                                  "SIMMATE_IMAGE": image})

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


# The stand-in base carries Debian's Python 3.11.2; the host venv may be another 3.11.x.
@pytest.mark.filterwarnings("ignore:Mismatched versions found")
def test_relaxations_on_the_preloaded_worker_then_exported(containers, scheduler, pg_url):
    """ASE's EMT and BFGS (numpy, scipy) on the image's worker give the energies this
    checkout computes; the image's CLI exports them with ASE (extended XYZ and ASE database)."""
    from simmate_k8s.flows import emt

    db = {"SIMMATE_DATABASE_URL": pg_url}
    worker = start_worker(containers, scheduler, db)
    inputs = ("--volume", f"{EXAMPLES}:/inputs:ro")
    run = containers.run("simmate-k8s", "run", "relaxation_emt", "/inputs", "--address",
                         scheduler, "--json", env=db, options=inputs)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- worker ---\n" + (
        containers.logs(worker))
    (outcome,) = json.loads(run.stdout)
    examples = sorted(EXAMPLES.glob("*.POSCAR"))
    assert outcome["summary"]["completed"] == len(examples)

    engine = sa.create_engine(database.parse_url(pg_url))
    try:
        rows = {row["input_name"]: row for row in results.load_rows(engine)}
    finally:
        engine.dispose()
    assert set(rows) == {f"/inputs/{path.name}" for path in examples}
    for path in examples:
        here = emt.relax(path.read_text())
        there = rows[f"/inputs/{path.name}"]["result"]
        assert there["converged"] and there["steps"] == here["steps"], path.name
        assert there["energy_ev"] == pytest.approx(here["energy_ev"], abs=1e-6), path.name

    export = containers.run("sh", "-c", "simmate-k8s results --export /tmp/relaxed.extxyz && "
                            "simmate-k8s results --export /tmp/relaxed.db && "
                            "grep -c Lattice= /tmp/relaxed.extxyz", env=db)
    assert export.returncode == 0, export.stderr
    assert export.stdout.strip() == str(len(examples))  # one frame per structure
    assert export.stderr.count(f"wrote {len(examples)} structures to /tmp/relaxed.") == 2


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
