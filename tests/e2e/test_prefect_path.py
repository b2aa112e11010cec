"""The Prefect path on a real cluster: Prefect Server v1 + agent + the operator's Dask cluster.

One flow run is one batch: its items are mapped task runs on the Dask workers, and each item is
one row in the results database (workflow, input name, parameters, status, batch).

Runs only when asked: `make cluster-test` (E2E=prefect for this path alone)."""

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import NAMESPACE, RELEASE, sh
from tests.e2e.helpers import EXAMPLES, ase_energy, assert_relaxed_row, cli, results_json

pytestmark = [pytest.mark.cluster, pytest.mark.prefect_path]

RELAXED = "Cu_fcc_rattled.POSCAR"
BATCH = sorted(EXAMPLES.glob("*.POSCAR"))
SMOKE_N = 20

# what the tests of this module submitted, for the ones that check the results database
submitted: dict[str, str] = {}  # name -> batch id


def submit_watched(*args, env) -> dict:
    """`submit ... --watch --json` of one batch; returns its entry (batch_id, state, ...)."""
    import json

    result = cli("submit", *args, "--watch", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["state"] == "Success", entry
    return entry


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
    entry = submit_watched("relaxation_emt", EXAMPLES / RELAXED, env=registered)
    assert entry["items"] == 1
    submitted["relaxation"] = entry["batch_id"]


def test_a_batch_is_one_flow_run(registered):
    entry = submit_watched("static_energy_emt", *BATCH, env=registered)
    assert entry["items"] == len(BATCH)
    submitted["static"] = entry["batch_id"]


def test_a_finished_batch_submitted_again_computes_nothing(registered):
    entry = submit_watched("static_energy_emt", *BATCH, env=registered)
    submitted["static-again"] = entry["batch_id"]


@pytest.fixture(scope="module")
def results_env(results_db_url):
    return {**os.environ, "SIMMATE_DATABASE_URL": results_db_url}


def test_the_relaxation_is_in_the_cluster_database(results_env):
    if "relaxation" not in submitted:
        pytest.skip("the relaxation was not submitted")
    assert_relaxed_row(results_json(results_env, "--batch", submitted["relaxation"]), RELAXED)


def test_a_batch_is_reported_in_input_order(results_env):
    if "static" not in submitted:
        pytest.skip("the batch was not submitted")
    rows = results_json(results_env, "--batch", submitted["static"])
    assert [Path(row["input_name"]).name for row in rows] == [p.name for p in BATCH]
    assert {row["status"] for row in rows} == {"completed"}
    for row, path in zip(rows, BATCH, strict=True):
        assert row["result"]["energy_ev"] == pytest.approx(ase_energy(path, relax=False),
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
