"""The image's Prefect agent, run as the chart's agent Deployment runs it
(`python -m simmate_k8s.agent`, the release's job templates mounted), against the Prefect
Server v1 stand-in of the contract tests and a Kubernetes batch API stand-in. The flows are
registered and a run is submitted with the image's own CLI; the agent must turn the run into a
Job from the release's template. This is Prefect's KubernetesAgent on the synchronous
`kubernetes` client, in an image without aiohttp or kubernetes.aio."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from tests.chart.helpers import render_chart
from tests.contract.prefect_server_api import PrefectServerEndpoint
from tests.support.kubernetes_api import KubernetesBatchApi

pytestmark = pytest.mark.container

RELEASE_IMAGE = "simmate-k8s:0.1.0"  # the chart's default project image (values.yaml)


def test_the_images_agent_turns_a_submitted_run_into_a_job(containers, tmp_path):
    templates = tmp_path / "job-templates"
    templates.mkdir()
    (configmap,) = render_chart(show_only=["templates/agent/job-templates.yaml"])
    for name, text in configmap["data"].items():
        if name.endswith(".yaml"):
            (templates / name).write_text(text)
    kube = KubernetesBatchApi()
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "config").write_text(yaml.safe_dump(kube.kubeconfig()))
    try:
        with PrefectServerEndpoint() as prefect_api:
            env = {"PREFECT__CLOUD__API": prefect_api.url, "PREFECT__BACKEND": "server"}
            register = containers.run("simmate-k8s", "register", "--image", RELEASE_IMAGE,
                                      "--label", "simmate", env=env)
            assert register.returncode == 0, register.stderr
            submit = containers.run("simmate-k8s", "submit", "smoke", "--preset", "small",
                                    "--json", env=env)
            assert submit.returncode == 0, submit.stderr
            (run,) = json.loads(submit.stdout)

            agent = containers.start(
                "agent", "python", "-m", "simmate_k8s.agent", "--namespace", "sim",
                "--label", "simmate", "--allowed-image", RELEASE_IMAGE,
                env={**env, "KUBECONFIG": "/kube/config"},
                options=("--volume", f"{tmp_path / 'kube'}:/kube:ro",
                         "--volume", f"{templates}:/etc/simmate/job-templates:ro"),
            )  # fmt: skip
            deadline = time.monotonic() + 90
            while not kube.jobs and time.monotonic() < deadline:
                time.sleep(0.5)
            assert kube.jobs, f"no Job after 90 s:\n{containers.logs(agent)}"
            deadline = time.monotonic() + 30  # the agent marks the run after creating its Job
            while (prefect_api.state.flow_runs[run["flow_run_id"]]["state"] != "Submitted"
                   and time.monotonic() < deadline):
                time.sleep(0.2)
            assert prefect_api.state.flow_runs[run["flow_run_id"]]["state"] == "Submitted", (
                containers.logs(agent))
            containers.remove_all()  # stop polling before the stand-ins go away
        assert not prefect_api.unexpected, "\n\n".join(prefect_api.unexpected)
    finally:
        kube.close()
    assert not kube.unexpected, kube.unexpected
    (job,) = kube.jobs
    assert job["metadata"]["labels"]["prefect.io/flow_run_id"] == run["flow_run_id"]
    assert job["metadata"]["labels"]["simmate-k8s.io/preset"] == "small"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == RELEASE_IMAGE
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
