"""`simmate-k8s workers slurm` on a real single-node SLURM: batches complete on SLURM-launched
workers with the preload, retiring workers are replaced, jobs never outlive the command, and the
database password never reaches SLURM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter

import pytest

from simmate_k8s import hpc
from tests.conftest import EXAMPLES, result_rows, run_cli
from tests.support.poscars import write_poscars

WORKER = re.compile(r"^(simmate-worker-[0-9a-f]{4}-\d+) \((tcp://[^)]+)\)$")


def _workers_of(rows):
    """(worker name, worker address) of every row; names are those the command gave."""
    found = [WORKER.match(row["worker"] or "") for row in rows]
    assert all(found), [row["worker"] for row in rows]
    return [match.groups() for match in found]


def test_batch_of_relaxations_on_two_slurm_workers(start_workers, slurm, slurm_env, pg_url,
                                                    tmp_path):
    env = dict(slurm_env, SIMMATE_DATABASE_URL=pg_url)
    workers = start_workers("--jobs", 2, "--interface", "lo", "--walltime", "00:30:00", env=env)
    address = workers.address
    workers.wait_connected(2)
    assert len(slurm.job_ids()) == 2
    url_file = re.search(r"URL passed to the jobs in (\S+),", workers.output).group(1)
    assert oct(os.stat(url_file).st_mode & 0o777) == "0o600"

    inputs = tmp_path / "structures"
    write_poscars(inputs, 4)
    for example in sorted(EXAMPLES.glob("*.POSCAR")):
        (inputs / example.name).write_text(example.read_text())
    result = run_cli("run", "relaxation_emt", inputs, "--address", address, "--json",
                     env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    rows = result_rows(pg_url)
    assert len(rows) == 8
    assert Counter(row["status"] for row in rows) == {"completed": 8}
    assert len({row["key"] for row in rows}) == 8
    assert all(row["result"]["energy_ev"] is not None for row in rows)
    names = {name for name, _ in _workers_of(rows)}
    assert names <= {line.split()[2] for line in workers.connected()}  # "... worker NAME ..."

    assert workers.stop(signal.SIGTERM) == 0
    _assert_all_cancelled(slurm)
    assert "all jobs cancelled" in workers.output
    assert not os.path.exists(url_file)  # the 0600 copy goes with the session


def test_database_password_never_reaches_slurm(start_workers, slurm, slurm_env, pg_url,
                                               postgres):
    """Not in the job script, `scontrol show job`, the stored environment or any file of
    slurmctld's state directory; and Ctrl-C cancels running and pending jobs alike."""
    password = postgres.password
    assert password in pg_url
    env = dict(slurm_env, SIMMATE_DATABASE_URL=pg_url)
    # 3 jobs of 1 CPU on a 2-CPU node: two run, one waits
    workers = start_workers("--jobs", 3, "--interface", "lo", env=env)
    workers.wait_for(lambda lines: sorted(job["state"] for job in slurm.jobs()) == [
        "PENDING", "RUNNING", "RUNNING"], 60, "2 running jobs and 1 pending")
    jobs = slurm.jobs()

    for job in jobs:
        script = slurm.run("scontrol", "write", "batch_script", job["id"], "-").stdout
        assert "--preload simmate_k8s.preload" in script  # the real script was read
        assert "export SIMMATE_DATABASE_URL_FILE=" in script
        assert password not in script and "postgresql://" not in script
        shown = slurm.run("scontrol", "show", "job", "-dd", job["id"]).stdout
        assert job["id"] in shown and password not in shown

    stored = 0
    for path in slurm.state_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data, path
            stored += b"SIMMATE_DATABASE_URL_FILE" in data
    assert stored >= 3  # each job's stored script/environment was searched

    assert workers.stop(signal.SIGINT) == 0
    _assert_all_cancelled(slurm)
    assert password not in workers.output


@pytest.fixture
def own_scheduler():
    """A Dask scheduler (no workers) in this process: what `--scheduler` joins."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=False, protocol="tcp://", host="127.0.0.1",
                      scheduler_port=0,
                      dashboard_address=":0") as cluster:
        yield cluster


def test_retiring_workers_are_replaced_mid_batch(start_workers, slurm, slurm_env, pg_url,
                                                 own_scheduler):
    """Workers live 8 s +/- 2 s (as if the walltime were near): a batch of 16 items of 1 s on 2
    workers outlives them, their jobs are replaced, and every item is saved exactly once."""
    env = dict(slurm_env, SIMMATE_DATABASE_URL=pg_url)
    address = own_scheduler.scheduler_address
    workers = start_workers("--jobs", 2, "--scheduler", address, "--interface", "lo",
                            "--walltime", "00:10:00", "--lifetime", "8s",
                            "--lifetime-stagger", "2s", env=env)
    assert workers.address == address
    workers.wait_connected(2)
    # another cluster manager subscribes to the same scheduler's worker status (the scheduler
    # keeps one such stream, so ours goes quiet): the session must keep replacing its jobs
    watcher = own_scheduler.sync(_subscribe_worker_status, address)

    result = run_cli("run", "smoke", "--param", "n=16", "--param", "delay=1", "--address",
                     address, env=env, timeout=150)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    rows = result_rows(pg_url)
    assert len(rows) == 16  # none lost
    assert len({row["key"] for row in rows}) == 16  # none twice
    assert Counter(row["status"] for row in rows) == {"completed": 16}
    addresses = {address for _, address in _workers_of(rows)}
    assert len(addresses) > 2, addresses  # rows from replacement workers too
    replaced = [line for line in workers.lines if "submitting a replacement" in line]
    assert replaced, workers.output
    assert len(set(workers.job_ids())) >= 2 + len(replaced)

    assert workers.stop(signal.SIGINT) == 0
    _assert_all_cancelled(slurm)
    # the scheduler we joined is still there (only our jobs went)
    assert own_scheduler.scheduler.status.name == "running"
    own_scheduler.sync(watcher.close)


async def _subscribe_worker_status(address):
    from distributed.comm import connect

    comm = await connect(address)
    await comm.write({"op": "subscribe_worker_status"})
    await comm.read()
    return comm


def test_job_cluster_api(slurm, tmp_path, monkeypatch):
    """What `run --cluster slurm` uses: the scheduler in this process, workers as SLURM jobs."""
    from distributed import Client

    env = dict(os.environ, SIMMATE_DATABASE_URL=f"sqlite:///{tmp_path / 'r.sqlite3'}",
               XDG_DATA_HOME=str(tmp_path / "data"))
    options = hpc.HpcOptions(jobs=2, interface="lo")
    with hpc.job_cluster("slurm", options, env=env) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        with Client(cluster.scheduler_address) as client:
            client.wait_for_workers(2, timeout=120)
            preloaded = client.run(lambda dask_worker: "simmate-results-db" in
                                   dask_worker.plugins)
        assert list(preloaded.values()) == [True, True]
        assert len(slurm.job_ids()) == 2
        assert {job["name"] for job in slurm.jobs()} == {"simmate-worker"}
    _assert_all_cancelled(slurm)


@pytest.mark.parametrize(("args", "message"), [
    (["--queue", "nosuch"], "--queue nosuch: no such SLURM partition (have: debug)"),
    (["--walltime", "1h30"], "--walltime '1h30': expected HH:MM:SS"),
    (["--memory", "4"], "--memory '4': expected a size with a unit"),
    (["--jobs", "0"], "--jobs 0: at least 1"),
    (["--adapt", "3:1"], "--adapt 3:1: expected MIN:MAX"),
    (["--jobs", "x"], "Invalid value for '--jobs'"),
    (["--job-mem", "500GB"], "sbatch refused the job: sbatch: error: Memory specification"),
    (["--scheduler", "tcp://127.0.0.1:9"], "--scheduler tcp://127.0.0.1:9: no Dask scheduler"),
])
def test_bad_options_exit_2_and_submit_nothing(args, message, slurm, slurm_env):
    before = slurm.run("squeue", "--noheader", "--states=all", "--format=%i").stdout.split()
    result = subprocess.run([*_cli(), "workers", "slurm", "--interface", "lo", *args],
                            env=slurm_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert slurm.job_ids() == []  # nothing queued or running
    after = slurm.run("squeue", "--noheader", "--states=all", "--format=%i").stdout.split()
    if "sbatch refused" not in message:  # (a refused sbatch leaves a FAILED record behind)
        assert set(after) <= set(before)  # not even a job that ended at once


def _assert_all_cancelled(slurm):
    """Right after the command ends no job is pending or running (a cancelled one may still be
    completing for a moment), and soon none is left at all."""
    assert {job["state"] for job in slurm.jobs()} <= {"COMPLETING"}, slurm.jobs()
    slurm.wait_for_queue_empty(30)


def _cli():
    from tests.conftest import CLI

    return CLI


def test_job_that_never_connects_stops_the_command(start_workers, slurm):
    """A broken job script (here: no such Python on the node) is reported with its log, not
    resubmitted forever."""
    workers = start_workers("--jobs", 1, "--python", "/nonexistent/bin/python3")
    assert workers.stop_when_done(timeout=60) == 1
    message = workers.errors[-1]
    assert message.startswith("Error: SLURM job "), workers.output
    assert "ended before its Dask worker connected" in message
    assert "/nonexistent/bin/python3" in message  # the last line of the job's log
    assert len(workers.job_ids()) == 1  # not resubmitted
    _assert_all_cancelled(slurm)
