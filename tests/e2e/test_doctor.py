"""`simmate-k8s doctor --release` on a real cluster with the chart installed (the cluster tier:
`make cluster-test RELEASE=… NAMESPACE=…`, or `make kind-test`)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simmate_k8s import doctor
from tests.e2e.conftest import NAMESPACE, RELEASE

pytestmark = pytest.mark.cluster

CLI = str(Path(sys.executable).with_name("simmate-k8s"))


def cli(*args, env):
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def doctor_env(prefect_env, results_db_url):
    """Prefect Server and the results database through port-forwards, the flows registered;
    no scheduler address (the in-cluster workers' database URL is not the forwarded one)."""
    env = {k: v for k, v in prefect_env.items() if k != "SIMMATE_DASK_ADDRESS"}
    env["SIMMATE_DATABASE_URL"] = results_db_url
    result = cli("register", env=env)
    assert result.returncode == 0, result.stderr
    return env


def test_doctor_passes_on_the_installed_release(doctor_env):
    result = cli("doctor", "--release", RELEASE, "-n", NAMESPACE, "--json", env=doctor_env)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["check"]: row for row in json.loads(result.stdout)}
    for check in [*doctor.KUBERNETES_CHECKS, "results database", "results schema",
                  "Prefect API", "tenant", "flows registered", "agent heartbeat"]:
        assert rows[check]["status"] == "ok", rows[check]


def test_kubernetes_checks_on_the_cluster(cluster):
    api, context = doctor.kube_api()
    rows = {row.check: row for row in doctor.kubernetes_rows(api, context, RELEASE, NAMESPACE)}
    assert {row.status for row in rows.values()} == {"ok"}, rows
    assert rows["scheduler Service"].detail.startswith("svc/")


def test_an_unknown_release_fails_and_skips_what_depends_on_it(cluster):
    api, context = doctor.kube_api()
    rows = {row.check: row for row in doctor.kubernetes_rows(api, context, "no-such-release",
                                                             NAMESPACE)}
    assert rows["Kubernetes API"].status == "ok"
    assert rows["release"].status == "FAIL"
    assert "app.kubernetes.io/instance=no-such-release" in rows["release"].detail
    assert rows["agent Deployment"].status == "skipped"
