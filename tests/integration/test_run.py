"""`simmate-k8s run` end to end: real Prefect batch flows on real Dask workers with the preload,
results traced back to their inputs, resumed, filtered and exported."""

import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import CLI, EXAMPLES, count_rows, result_rows, run_cli
from tests.support.dask import DaskProcesses

POSCARS = sorted(EXAMPLES.glob("*.POSCAR"))


def _ase_relaxed_energy(path, fmax=0.05, steps=500):
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return atoms.get_potential_energy()


def test_a_batch_is_one_flow_run_traced_to_its_inputs_on_postgres(pg_url, cli_env):
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    result = run_cli("run", "relaxation_emt", EXAMPLES, "--param", "fmax=0.04", "--json",
                     env=cli_env)
    assert result.returncode == 0, result.stderr
    [batch] = json.loads(result.stdout)  # four inputs, one batch, one flow run
    assert [item["input"] for item in batch["items"]] == [str(p) for p in POSCARS]
    assert batch["summary"]["completed"] == 4 and batch["parameters"]["fmax"] == 0.04
    rows = {row["input_name"]: row for row in result_rows(pg_url)}
    assert set(rows) == {str(p) for p in POSCARS}
    row = rows[str(EXAMPLES / "AuAg_fcc_alloy.POSCAR")]
    expected = _ase_relaxed_energy(EXAMPLES / "AuAg_fcc_alloy.POSCAR", fmax=0.04)
    assert row["result"]["energy_ev"] == pytest.approx(expected, abs=1e-9)
    assert row["parameters"] == {"fmax": 0.04, "max_steps": 500}
    assert (row["workflow"], row["workflow_version"], row["status"]) == (
        "relaxation_emt", "1", "completed")
    assert row["batch_id"] == batch["batch_id"] and row["flow_run_id"] == batch["flow_run_id"]
    assert row["queued_at"] <= row["started_at"] <= row["finished_at"]
    assert 0 < row["compute_seconds"] < 60 and row["executions"] == 1 and row["worker"]
    assert {"simmate-k8s", "ase", "prefect", "distributed", "python"} <= set(row["provenance"])


def test_resubmitting_computes_nothing_and_new_parameters_are_new_work(cli_env, tmp_path):
    database_file = tmp_path / "data" / "simmate-k8s" / "results.sqlite3"  # the default
    first = run_cli("run", "static_energy_emt", *POSCARS, env=cli_env)
    assert first.returncode == 0, first.stderr
    before = {r["key"]: r["finished_at"] for r in result_rows(f"sqlite:///{database_file}")}
    again = run_cli("run", "static_energy_emt", *POSCARS, "--json", env=cli_env)
    assert again.returncode == 0, again.stderr
    [batch] = json.loads(again.stdout)
    assert batch["summary"]["cached"] == 4 and batch["summary"]["completed"] == 0
    assert batch["flow_run_id"] is None, "nothing to compute: no flow run, no Dask"
    after = {r["key"]: r["finished_at"] for r in result_rows(f"sqlite:///{database_file}")}
    assert after == before
    # --rerun computes again; new parameters are different work (a new row each)
    assert run_cli("run", "static_energy_emt", *POSCARS, "--rerun", env=cli_env).returncode == 0
    assert count_rows(f"sqlite:///{database_file}") == 4
    relax = run_cli("run", "relaxation_emt", POSCARS[0], "-p", "fmax=0.1", env=cli_env)
    relax_tighter = run_cli("run", "relaxation_emt", POSCARS[0], "-p", "fmax=0.05", env=cli_env)
    assert relax.returncode == relax_tighter.returncode == 0
    assert count_rows(f"sqlite:///{database_file}") == 6


def test_results_filters_json_csv_and_export(cli_env, tmp_path):
    assert run_cli("run", "relaxation_emt", *POSCARS[:2], "--batch-id", "b1",
                   env=cli_env).returncode == 0
    assert run_cli("run", "smoke", "-p", "n=3", "--batch-id", "b2", env=cli_env).returncode == 0
    listed = json.loads(run_cli("results", "--batch", "b1", "--json", env=cli_env).stdout)
    assert [row["input_name"] for row in listed] == [str(p) for p in POSCARS[:2]]
    smoke = json.loads(run_cli("results", "--flow", "smoke", "--json", env=cli_env).stdout)
    assert [row["input_name"] for row in smoke] == ["square-0", "square-1", "square-2"]
    assert json.loads(run_cli("results", "--status", "failed", "--json",
                              env=cli_env).stdout) == []
    table = list(csv.DictReader(io.StringIO(
        run_cli("results", "--batch", "b1", "--csv", env=cli_env).stdout)))
    assert [row["input_name"] for row in table] == [str(p) for p in POSCARS[:2]]
    assert all(float(row["energy_ev"]) and row["status"] == "completed" for row in table)
    out = tmp_path / "relaxed.extxyz"
    exported = run_cli("results", "--batch", "b1", "--export", out, env=cli_env)
    assert exported.returncode == 0, exported.stderr
    import ase.io

    structures = ase.io.read(out, ":")
    energies = [float(row["energy_ev"]) for row in table]
    assert [a.get_potential_energy() for a in structures] == pytest.approx(energies, abs=1e-9)
    assert [a.info["input_name"] for a in structures] == [str(p) for p in POSCARS[:2]]


def test_a_failing_item_fails_alone_and_is_named(pg_url, cli_env):
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    result = run_cli("run", "smoke", "-p", "n=10", "-p", "fail_every=5", env=cli_env)
    assert result.returncode == 1
    assert "2 of 10 items failed: square-4 (RuntimeError: item 4 fails on purpose" in result.stderr
    assert "square-9 (RuntimeError: item 9 fails on purpose" in result.stderr
    assert "Traceback" not in result.stderr
    rows = {row["input_name"]: row for row in result_rows(pg_url)}
    assert sorted(name for name, row in rows.items() if row["status"] == "failed") == [
        "square-4", "square-9"]
    assert sum(row["status"] == "completed" for row in rows.values()) == 8
    assert rows["square-4"]["error"].startswith("RuntimeError: item 4 fails on purpose")
    again = run_cli("run", "smoke", "-p", "n=10", "-p", "fail_every=5", "--json", env=cli_env)
    assert again.returncode == 1
    [batch] = json.loads(again.stdout)
    assert batch["summary"]["cached"] == 8, "only the failed items are computed again"
    assert [f["input"] for f in batch["summary"]["failed"]] == ["square-4", "square-9"]


def test_run_on_an_existing_scheduler_with_preloaded_workers(pg_url, cli_env):
    with DaskProcesses(pg_url, workers=2) as cluster:
        elsewhere = run_cli("run", "smoke", "--address", cluster.address, env=cli_env)
        cli_env["SIMMATE_DATABASE_URL"] = pg_url
        result = run_cli("run", "smoke", "--address", cluster.address, "--param", "n=25",
                         env=cli_env)
    # this shell's default SQLite is not where the workers save: refused before any work
    assert elsewhere.returncode == 2 and "set SIMMATE_DATABASE_URL to the workers'" in \
        elsewhere.stderr and len(elsewhere.stderr.strip().splitlines()) == 1
    assert result.returncode == 0, result.stderr
    assert count_rows(pg_url) == 25


def _group_alive(pgid, within):
    """Whether a process of the group is still running (zombies waiting for init excepted)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                alive.append(pid)
        if not alive:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_two_concurrent_runs_on_one_new_database(backend, pg_url, cli_env, tmp_path):
    url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    cli_env["SIMMATE_DATABASE_URL"] = url
    runs = [subprocess.Popen([*CLI, "run", "smoke", "-p", "n=60", "-p", "delay=0.01",
                              "-w", "1", "--json"], env=cli_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [run.communicate(timeout=240) + (run.returncode,) for run in runs]
    assert [code for _, _, code in outcomes] == [0, 0], [err for _, err, _ in outcomes]
    rows = result_rows(url)
    assert len(rows) == 60 and all(row["status"] == "completed" for row in rows)
    summaries = [json.loads(out)[0]["summary"] for out, _, _ in outcomes]
    # each item was computed by one run, or found done by the other
    assert all(s["completed"] + s["cached"] == 60 for s in summaries)


def test_ctrl_c_stops_within_5_s_keeps_what_finished_and_resumes(pg_url, cli_env):
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    command = [*CLI, "run", "smoke", "-p", "n=60", "-p", "delay=0.2", "--batch-id", "first"]
    process = subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while sum(r["status"] == "completed" for r in result_rows(pg_url)) < 10 \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    interrupted = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    out, err = process.communicate(timeout=30)
    stopped_in = time.monotonic() - interrupted
    assert process.returncode == 130, err
    assert stopped_in < 5, f"took {stopped_in:.1f} s to stop"
    assert "Traceback" not in err and "CommClosedError" not in err, err
    assert "interrupted:" in err and "Run the same command again" in err
    assert not _group_alive(process.pid, within=10), "a worker process was left behind"
    done = sum(row["status"] == "completed" for row in result_rows(pg_url))
    assert 10 <= done < 60
    resumed = run_cli("run", "smoke", "-p", "n=60", "-p", "delay=0.2", "--batch-id", "second",
                      "--json", "-w", "2", env=cli_env)
    assert resumed.returncode == 0, resumed.stderr
    [batch] = json.loads(resumed.stdout)
    assert batch["summary"]["cached"] == done and batch["summary"]["completed"] == 60 - done
