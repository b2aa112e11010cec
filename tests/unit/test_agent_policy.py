"""The agent's allow-list decision (simmate_k8s.agent.check_run_config), case by case."""

import pytest
from prefect.run_configs import KubernetesRun

from simmate_k8s.agent import Policy, RunRefused, check_run_config

MODULE = {"type": "Module", "module": "simmate_k8s.flows.library"}


@pytest.fixture
def policy(tmp_path):
    for preset in ("default", "small"):
        (tmp_path / f"{preset}.yaml").write_text("apiVersion: batch/v1\nkind: Job\n")
    return Policy(
        tmp_path,
        frozenset({"simmate-k8s:0.1.0", "reg.example/simmate-k8s:0.2.0"}),
        frozenset({"regcred"}),
    )


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"image": "simmate-k8s:0.1.0"},
        {"image": "reg.example/simmate-k8s:0.2.0", "image_pull_secrets": ["regcred"]},
        {"job_template_path": "agent://{dir}/small.yaml"},
        {"cpu_request": "1", "memory_limit": "2Gi", "image_pull_policy": "Always"},
    ],
)
def test_what_the_cli_sends_is_allowed(policy, settings):
    settings = {
        k: v.format(dir=policy.templates_dir) if isinstance(v, str) else v
        for k, v in settings.items()
    }
    check_run_config(policy, KubernetesRun(**settings), MODULE)


@pytest.mark.parametrize(
    "settings, storage, reason",
    [
        ({"job_template": {"kind": "Job"}}, MODULE, "brings its own job_template"),
        ({"job_template_path": "s3://bucket/job.yaml"}, MODULE, "not one of the release's"),
        ({"job_template_path": "agent:///etc/passwd"}, MODULE, "not one of the release's"),
        (
            {"job_template_path": "agent://{dir}/../x/default.yaml"},
            MODULE,
            "not one of the release's",
        ),
        ({"job_template_path": "agent://{dir}/Big.yaml"}, MODULE, "not one of the release's"),
        (
            {"job_template_path": "agent://{dir}/gpu.yaml"},
            MODULE,
            "preset 'gpu' is not in this release (presets: default, small)",
        ),
        ({"service_account_name": "default"}, MODULE, "sets service_account_name 'default'"),
        ({"image": "simmate-k8s:0.1.1"}, MODULE, "image 'simmate-k8s:0.1.1' is not allowed"),
        ({"image": "simmate-k8s"}, MODULE, "image 'simmate-k8s' is not allowed"),
        ({"image_pull_secrets": ["regcred", "theirs"]}, MODULE, "image_pull_secrets theirs are"),
        (
            {"env": {"SIMMATE_DASK_ADDRESS": "tcp://evil:8786"}},
            MODULE,
            "sets environment variables (SIMMATE_DASK_ADDRESS)",
        ),
        ({}, {"type": "Module", "module": "os"}, "flow stored as Module 'os'"),
        ({}, {"type": "GitHub", "repo": "x/y"}, "flow stored as GitHub storage"),
        ({}, None, "flow stored as no storage"),
    ],
)
def test_refusals_say_what_and_why_in_one_line(policy, settings, storage, reason):
    settings = {
        k: v.format(dir=policy.templates_dir) if isinstance(v, str) else v
        for k, v in settings.items()
    }
    with pytest.raises(RunRefused) as refused:
        check_run_config(policy, KubernetesRun(**settings), storage)
    message = str(refused.value)
    assert reason in message and "\n" not in message
