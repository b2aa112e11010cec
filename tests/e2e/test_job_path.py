"""The Job path on a real cluster: `submit --backend job` makes one Job per batch from the
release's own job template (image, presets, scheduler address, TTL: the release's, read from its
job-templates ConfigMap), and the result lands in the release's results database.

Runs only when asked: `make cluster-test` (E2E=jobs for this path alone)."""

import json
import os

import pytest

from tests.e2e.conftest import NAMESPACE, RELEASE, job_template, sh
from tests.e2e.helpers import EXAMPLES, assert_relaxed_row, cli, results_json

pytestmark = [pytest.mark.cluster, pytest.mark.job_path]

RELAXED = "Pt_fcc_vacancy.POSCAR"
TARGET = ["--backend", "job", "--namespace", NAMESPACE, "--release", RELEASE]

submitted: dict[str, dict] = {}  # what this module submitted: name -> `submit --json` entry


def test_relaxation_through_a_kubernetes_job_succeeds(cluster, results_db_url):
    result = cli("submit", "relaxation_emt", EXAMPLES / RELAXED, *TARGET, "--watch", "--json",
                 env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["state"] == "Complete" and entry["namespace"] == NAMESPACE, entry
    submitted["relaxation"] = entry
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


def test_status_and_logs_of_the_job(cluster):
    """`status` and `logs` with --backend job reach the Job `submit` made: its conditions and
    its pod's log, found by the Job's own selector."""
    if "relaxation" not in submitted:
        pytest.skip("the relaxation Job was not submitted")
    entry = submitted["relaxation"]
    status = cli("status", entry["job"], *TARGET, "--json", env=os.environ.copy())
    assert status.returncode == 0, status.stderr
    (row,) = json.loads(status.stdout)
    assert (row["job"], row["state"], row["batch_id"]) == (entry["job"], "Complete",
                                                           entry["batch_id"])
    assert row["succeeded"] == 1 and row["release"] == RELEASE
    logs = cli("logs", entry["job"], *TARGET, env=os.environ.copy())
    assert logs.returncode == 0, logs.stderr
    assert entry["batch_id"] in logs.stdout, logs.stdout  # `run` names its batch
    follow = cli("logs", entry["job"], *TARGET, "--follow", env=os.environ.copy(), timeout=120)
    assert follow.returncode == 0, follow.stderr  # already Complete: the log once, then exit 0
    assert f"job/{entry['job']} Complete" in follow.stdout
