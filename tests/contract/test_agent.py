"""The release's agent (simmate_k8s.agent) against the Prefect Server v1 contract.

The real agent class (Prefect 1's KubernetesAgent underneath) polls the Prefect Server stand-in
and creates Jobs through the real ``kubernetes`` client, which talks HTTP to a local stand-in of
the Kubernetes batch API that records every Job POSTed. The job templates are the chart's own,
rendered by helm. A refused run config must end Failed with a one-line reason and no Job."""

from __future__ import annotations

import pytest
import yaml

from simmate_k8s.agent import Policy, build_agent
from tests.chart.helpers import render_chart
from tests.support.kubernetes_api import KubernetesBatchApi

RELEASE_IMAGE = "simmate-k8s:0.1.0"  # the chart's default project image (values.yaml)
LABELS = ["simmate"]


@pytest.fixture
def kube_api(tmp_path, monkeypatch):
    api = KubernetesBatchApi()
    config = api.kubeconfig()
    # The kubernetes package reads KUBECONFIG when imported; ~/.kube/config is read at load.
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / ".kube" / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # not in-cluster
    yield api
    api.close()
    assert not api.unexpected, api.unexpected


@pytest.fixture(scope="module")
def templates_dir(tmp_path_factory):
    """The release's job templates, as the chart mounts them into the agent."""
    directory = tmp_path_factory.mktemp("job-templates")
    (configmap,) = render_chart(show_only=["templates/agent/job-templates.yaml"])
    for name, text in configmap["data"].items():
        if name.endswith(".yaml"):
            (directory / name).write_text(text)
    return directory


@pytest.fixture
def prefect_in_process(registered):
    import prefect

    for config in (prefect.config, prefect.context.config):
        config.backend, config.cloud.api = "server", registered.url
    return registered


def create_run(api, flow_id, **run_config):
    import prefect
    from prefect.run_configs import KubernetesRun

    client = prefect.Client(api_server=api.url)
    return client.create_flow_run(
        flow_id=flow_id, labels=LABELS, run_config=KubernetesRun(labels=LABELS, **run_config)
    )


def flow_id(api, name="smoke"):
    return next(
        f["id"] for f in api.state.flows.values() if f["name"] == name and not f["archived"]
    )


def run_agent(templates_dir, **policy):
    agent = build_agent(
        Policy(templates_dir, frozenset({RELEASE_IMAGE}), **policy),
        namespace="sim",
        labels=LABELS,
        max_polls=1,
    )
    agent.heartbeat_period = 3600  # one clean-up pass at start, none after the test
    agent.start()  # one poll; returns when every deployment it started has finished


def final(api, run_id) -> tuple[str, str]:
    run = api.state.flow_runs[run_id]
    return run["state"], run["state_message"]


JOB_TEMPLATE = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "flow", "volumeMounts": [{"name": "s", "mountPath": "/s"}]}
                ],
                "volumes": [{"name": "s", "secret": {"secretName": "rel-simmate-postgresql"}}],
            }
        }
    },
}

REFUSED = {
    "job-template": ({"job_template": JOB_TEMPLATE}, "run config brings its own job_template"),
    "template-path": (
        {"job_template_path": "https://attacker.example/job.yaml"},
        "is not one of the release's job templates",
    ),
    "template-escape": (
        {"job_template_path": "agent://{dir}/../../../etc/passwd.yaml"},
        "is not one of the release's job templates",
    ),
    "service-account": (
        {"service_account_name": "default"},
        "run config sets service_account_name 'default'",
    ),
    "foreign-image": (
        {"image": "attacker/tools:1.0"},
        "run config image 'attacker/tools:1.0' is not allowed by the release",
    ),
    "env": (
        {"env": {"PYTHONWARNINGS": "ignore::antigravity.x", "BROWSER": "sh -c id"}},
        "run config sets environment variables (BROWSER, PYTHONWARNINGS)",
    ),
    "pull-secret": (
        {"image_pull_secrets": ["other-team-registry"]},
        "image_pull_secrets other-team-registry are not the release's",
    ),
}


def test_refused_run_configs_end_failed_and_create_no_job(
    prefect_in_process, kube_api, templates_dir
):
    api = prefect_in_process
    runs = {}
    for case, (settings, _) in REFUSED.items():
        if "job_template_path" in settings:
            settings = {
                "job_template_path": settings["job_template_path"].format(dir=templates_dir)
            }
        runs[case] = create_run(api, flow_id(api), **settings)
    run_agent(templates_dir)
    assert kube_api.jobs == []
    for case, (_, reason) in REFUSED.items():
        state, message = final(api, runs[case])
        assert state == "Failed", (case, message)
        assert reason in message and "\n" not in message, (case, message)


def test_an_allowed_run_becomes_a_job_from_the_release_template(
    prefect_in_process, kube_api, templates_dir
):
    api = prefect_in_process
    small = create_run(api, flow_id(api), job_template_path=f"agent://{templates_dir}/small.yaml")
    pinned = create_run(api, flow_id(api), image=RELEASE_IMAGE)
    run_agent(templates_dir)
    assert final(api, small)[0] == final(api, pinned)[0] == "Submitted"
    jobs = {job["metadata"]["labels"]["prefect.io/flow_run_id"]: job for job in kube_api.jobs}
    assert set(jobs) == {small, pinned}
    template = yaml.safe_load((templates_dir / "small.yaml").read_text())
    pod = jobs[small]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == RELEASE_IMAGE
    assert (
        pod["containers"][0]["resources"]
        == template["spec"]["template"]["spec"]["containers"][0]["resources"]
    )
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert jobs[small]["metadata"]["labels"]["simmate-k8s.io/preset"] == "small"
    # No job_template_path: the agent's default, the release's `default` preset.
    assert jobs[pinned]["metadata"]["labels"]["simmate-k8s.io/preset"] == "default"


def test_a_flow_not_stored_in_the_image_is_refused(prefect_in_process, kube_api, templates_dir):
    """A flow registered with storage that fetches code (Webhook, GitHub, ...) would run that
    code in a pod holding the results-DB secret: only the image's module is allowed."""
    import prefect
    from prefect import Flow, task
    from prefect.storage import Webhook

    @task
    def hello():
        return 1

    with Flow(
        "fetched",
        storage=Webhook(
            build_request_kwargs={"url": "http://x"},
            build_request_http_method="POST",
            get_flow_request_kwargs={"url": "http://x"},
            get_flow_request_http_method="GET",
        ),
    ) as flow:
        hello()
    client = prefect.Client(api_server=prefect_in_process.url)
    fetched = client.register(
        flow, project_name="simmate", build=False, no_url=True, set_schedule_active=False
    )
    run = create_run(prefect_in_process, fetched)
    run_agent(templates_dir)
    assert kube_api.jobs == []
    state, message = final(prefect_in_process, run)
    assert state == "Failed" and "flow stored as Webhook storage" in message, message
