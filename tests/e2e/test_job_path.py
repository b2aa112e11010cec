"""The Job path on a real cluster: `submit --backend job` makes one Job per batch from the
release's own job template (image, presets, scheduler address, TTL: the release's, read from its
job-templates ConfigMap), and the result lands in the release's results database.

Runs only when asked: `make cluster-test` (E2E=jobs for this path alone)."""

import os

import pytest

from tests.e2e.conftest import NAMESPACE, RELEASE, job_template, sh
from tests.e2e.helpers import EXAMPLES, assert_relaxed_row, cli, results_json

pytestmark = [pytest.mark.cluster, pytest.mark.job_path]

RELAXED = "Pt_fcc_vacancy.POSCAR"


def test_relaxation_through_a_kubernetes_job_succeeds(cluster, results_db_url):
    result = cli("submit", "--backend", "job", "relaxation_emt", EXAMPLES / RELAXED,
                 "--namespace", NAMESPACE, "--release", RELEASE, "--watch",
                 env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    env = {**os.environ, "SIMMATE_DATABASE_URL": results_db_url}
    row = assert_relaxed_row(results_json(env, "--flow", "relaxation_emt"), RELAXED)
    # The Job ran the release's image: the one its template names is what provenance records.
    image = job_template()["spec"]["template"]["spec"]["containers"][0]["image"]
    assert row["provenance"]["image"] == image


def test_the_finished_job_carries_the_release_ttl(cluster):
    ttl = job_template()["spec"]["ttlSecondsAfterFinished"]
    jobs = sh("kubectl", "-n", NAMESPACE, "get", "jobs", "-l",
              f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=flow-run",
              "-o", "jsonpath={.items[*].spec.ttlSecondsAfterFinished}").stdout.split()
    assert jobs and {int(t) for t in jobs} == {ttl}
