"""`simmate-k8s run` end to end: real Prefect flows on real Dask workers with the preload."""

import json

import pytest

from simmate_k8s import database
from tests.conftest import EXAMPLES, count_rows, run_cli
from tests.support.dask import DaskProcesses


def _ase_relaxed_energy(path, fmax=0.05, steps=500):
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=steps)
    return atoms.get_potential_energy()


def test_relaxation_on_postgres_matches_ase_and_is_saved(pg_url, cli_env):
    poscar = EXAMPLES / "AuAg_fcc_alloy.POSCAR"
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    result = run_cli("run", "relaxation_emt", poscar, "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    [outcome] = json.loads(result.stdout)
    expected = _ase_relaxed_energy(poscar)
    assert outcome["succeeded"]
    assert outcome["results"][0]["energy_ev"] == pytest.approx(expected, abs=1e-9)
    [row] = database.load_results(database.create_engine(pg_url))
    assert row["flow_name"] == "relaxation_emt" and row["flow_run_id"] == outcome["flow_run_id"]
    assert row["result"]["energy_ev"] == pytest.approx(expected, abs=1e-9)
    assert row["result"]["energy_per_atom_ev"] == pytest.approx(expected / 32, abs=1e-9)


def test_batch_on_the_embedded_sqlite_default(cli_env, tmp_path):
    inputs = sorted(EXAMPLES.glob("*.POSCAR"))
    result = run_cli("run", "relaxation_emt", *inputs, "--param", "fmax=0.1", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Success") == len(inputs)
    database_file = tmp_path / "data" / "simmate-k8s" / "results.sqlite3"
    assert count_rows(f"sqlite:///{database_file}") == len(inputs)
    listed = run_cli("results", "--json", env=cli_env)
    assert len(json.loads(listed.stdout)) == len(inputs)
    check = run_cli("db", "check", env=cli_env)
    assert f"present ({len(inputs)} rows)" in check.stdout
    # same inputs again: rows are updated, not added
    assert run_cli("run", "relaxation_emt", *inputs, "--param", "fmax=0.1",
                   env=cli_env).returncode == 0
    assert count_rows(f"sqlite:///{database_file}") == len(inputs)


def test_run_on_an_existing_scheduler_with_preloaded_workers(pg_url, cli_env):
    with DaskProcesses(pg_url, workers=2) as cluster:
        result = run_cli("run", "smoke", "--address", cluster.address, "--param", "n=25",
                         env=cli_env)
    assert result.returncode == 0, result.stderr
    assert count_rows(pg_url) == 25


def test_a_failing_run_exits_1_and_saves_nothing(pg_url, cli_env):
    cli_env["SIMMATE_DATABASE_URL"] = pg_url
    result = run_cli("run", "relaxation_emt", EXAMPLES / "Cu_fcc_rattled.POSCAR",
                     "--param", "fmax=-1", env=cli_env)
    assert result.returncode == 1
    assert "fmax must be more than 0" in result.stdout
    assert "1 of 1 flow runs failed" in result.stderr
    assert count_rows(pg_url) == 0
