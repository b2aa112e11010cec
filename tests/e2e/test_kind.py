"""End to end on kind: Prefect Server v1 + agent + Dask operator cluster, real flow runs.

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


def cli(*args, env, timeout=1200):
    return subprocess.run([CLI, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def _ase_energy(path):
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path, format="vasp")
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
    return atoms.get_potential_energy()


@pytest.fixture(scope="module")
def registered(prefect_env):
    result = cli("register", env=prefect_env)
    assert result.returncode == 0, result.stderr
    return prefect_env


def test_smoke_flow_through_prefect_succeeds(registered):
    result = cli("submit", "smoke", "--param", "n=20", "--watch", env=registered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_relaxation_through_prefect_succeeds(registered):
    result = cli("submit", "relaxation_emt", EXAMPLES / "Cu_fcc_rattled.POSCAR", "--watch",
                 env=registered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_relaxation_through_a_kubernetes_job_succeeds(cluster):
    image = f"simmate-k8s:{os.environ['IMAGE_TAG']}" if os.environ.get("IMAGE_TAG") else None
    args = ["submit", "--backend", "job", "relaxation_emt", EXAMPLES / "Pt_fcc_vacancy.POSCAR",
            "--namespace", NAMESPACE, "--release", RELEASE, "--watch"]
    if image:
        args += ["--image", image]
    result = cli(*args, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr


def test_results_are_in_the_cluster_database(results_db_url):
    env = {**os.environ, "SIMMATE_DATABASE_URL": results_db_url}
    listed = cli("results", "--json", "--flow", "relaxation_emt", env=env)
    assert listed.returncode == 0, listed.stderr
    energies = sorted(row["result"]["energy_ev"] for row in json.loads(listed.stdout))
    expected = sorted(_ase_energy(EXAMPLES / name)
                      for name in ("Cu_fcc_rattled.POSCAR", "Pt_fcc_vacancy.POSCAR"))
    assert energies == pytest.approx(expected, abs=1e-8)
    smoke = json.loads(cli("results", "--json", "--flow", "smoke", env=env).stdout)
    assert len(smoke) >= 20


def test_helm_test_hook_passes(cluster):
    sh("helm", "-n", NAMESPACE, "test", RELEASE, "--timeout", "15m", timeout=1200)
