"""End to end on kind: Prefect Server v1 + agent + Dask operator cluster, real flow runs.

One flow run is one batch: its items are mapped task runs on the Dask workers, and each item is
one row in the results database (workflow, input name, parameters, status, batch).

Runs only when asked (`make kind-test`, or `pytest -m kind tests/e2e`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import NAMESPACE, RELEASE, sh

pytestmark = pytest.mark.kind

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "simmate_k8s" / "flows" / "examples"
CLI = str(Path(sys.executable).with_name("simmate-k8s"))
RELAXED = ("Cu_fcc_rattled.POSCAR", "Pt_fcc_vacancy.POSCAR")
BATCH = sorted(EXAMPLES.glob("*.POSCAR"))
SMOKE_N = 20

# what the tests of this module submitted, for the ones that check the results database
submitted: dict[str, str] = {}  # name -> batch id


def cli(*args, env, timeout=1200):
    return subprocess.run([CLI, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def submit_watched(*args, env) -> dict:
    """`submit ... --watch --json` of one batch; returns its entry (batch_id, state, ...)."""
    result = cli("submit", *args, "--watch", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["state"] == "Success", entry
    return entry


def _ase_energy(path, relax=True):
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    if relax:
        BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
    return atoms.get_potential_energy()


@pytest.fixture(scope="module")
def registered(prefect_env):
    result = cli("register", env=prefect_env)
    assert result.returncode == 0, result.stderr
    return prefect_env


def test_smoke_flow_through_prefect_succeeds(registered):
    entry = submit_watched("smoke", "--param", f"n={SMOKE_N}", env=registered)
    assert entry["items"] == SMOKE_N
    submitted["smoke"] = entry["batch_id"]


def test_relaxation_through_prefect_succeeds(registered):
    entry = submit_watched("relaxation_emt", EXAMPLES / RELAXED[0], env=registered)
    assert entry["items"] == 1
    submitted["relaxation"] = entry["batch_id"]


def test_a_batch_is_one_flow_run(registered):
    entry = submit_watched("static_energy_emt", *BATCH, env=registered)
    assert entry["items"] == len(BATCH)
    submitted["static"] = entry["batch_id"]


def test_a_finished_batch_submitted_again_computes_nothing(registered):
    entry = submit_watched("static_energy_emt", *BATCH, env=registered)
    submitted["static-again"] = entry["batch_id"]


def test_relaxation_through_a_kubernetes_job_succeeds(cluster):
    image = f"simmate-k8s:{os.environ['IMAGE_TAG']}" if os.environ.get("IMAGE_TAG") else None
    args = ["submit", "--backend", "job", "relaxation_emt", EXAMPLES / RELAXED[1],
            "--namespace", NAMESPACE, "--release", RELEASE, "--watch"]
    if image:
        args += ["--image", image]
    result = cli(*args, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr


def results_json(env, *args):
    listed = cli("results", "--json", *args, env=env)
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


@pytest.fixture(scope="module")
def results_env(results_db_url):
    return {**os.environ, "SIMMATE_DATABASE_URL": results_db_url}


def test_relaxations_are_in_the_cluster_database(results_env):
    rows = results_json(results_env, "--flow", "relaxation_emt", "--status", "completed")
    by_name = {Path(row["input_name"]).name: row for row in rows
               if row["parameters"] == {"fmax": 0.05, "max_steps": 500}}
    assert set(RELAXED) <= set(by_name)
    for name in RELAXED:
        row = by_name[name]
        assert (row["workflow"], row["status"], row["error"]) == (
            "relaxation_emt", "completed", None)
        assert row["parameters"] == {"fmax": 0.05, "max_steps": 500}
        assert row["result"]["energy_ev"] == pytest.approx(_ase_energy(EXAMPLES / name),
                                                           abs=1e-8)
        assert row["provenance"]["simmate-k8s"] and row["worker"]


def test_a_batch_is_reported_in_input_order(results_env):
    if "static" not in submitted:
        pytest.skip("the batch was not submitted")
    rows = results_json(results_env, "--batch", submitted["static"])
    assert [Path(row["input_name"]).name for row in rows] == [p.name for p in BATCH]
    assert {row["status"] for row in rows} == {"completed"}
    for row, path in zip(rows, BATCH, strict=True):
        assert row["result"]["energy_ev"] == pytest.approx(_ase_energy(path, relax=False),
                                                           abs=1e-8)
    assert {row["executions"] for row in rows} == {1}  # no item ran twice


def test_the_batch_submitted_again_was_answered_from_the_database(results_env):
    if "static-again" not in submitted:
        pytest.skip("the batch was not submitted again")
    rows = results_json(results_env, "--batch", submitted["static-again"])
    assert len(rows) == len(BATCH)
    assert all(row["cached"] and row["status"] == "completed" for row in rows)
    assert submitted["static-again"] not in {row["batch_id"] for row in rows}  # computed before


def test_smoke_saves_one_row_per_item(results_env):
    if "smoke" not in submitted:
        pytest.skip("smoke was not submitted")
    rows = results_json(results_env, "--batch", submitted["smoke"])
    assert [row["input_name"] for row in rows] == [f"square-{i}" for i in range(SMOKE_N)]
    assert [row["result"]["square"] for row in rows] == [i * i for i in range(SMOKE_N)]
    assert {(row["workflow"], row["status"]) for row in rows} == {("smoke", "completed")}


def test_helm_test_hook_passes(cluster):
    sh("helm", "-n", NAMESPACE, "test", RELEASE, "--timeout", "15m", timeout=1200)
