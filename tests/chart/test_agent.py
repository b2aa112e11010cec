"""The Prefect Kubernetes agent, its RBAC and the flow-run Job templates."""

import pytest

from tests.chart.helpers import RenderError, find, job_templates, kinds, render_chart


def test_agent_command_and_api(default_docs):
    agent = find(default_docs, "Deployment", "-agent")["spec"]["template"]["spec"]["containers"][0]
    # The release's agent (src/simmate_k8s/agent.py), not `prefect agent kubernetes start`.
    assert agent["args"][:3] == ["python", "-m", "simmate_k8s.agent"]
    assert option(agent["args"], "--job-template") == ["/etc/simmate/job-templates/default.yaml"]
    assert option(agent["args"], "--templates-dir") == ["/etc/simmate/job-templates"]
    assert option(agent["args"], "--allowed-image") == ["simmate-k8s:0.1.0"]
    assert option(agent["args"], "--allowed-pull-secret") == []
    assert agent["args"][-2:] == ["--label", "simmate"]
    env = {e["name"]: e.get("value") for e in agent["env"]}
    assert env["PREFECT__CLOUD__API"] == "http://rel-simmate-apollo.sim.svc:4200/graphql"
    assert env["PREFECT__BACKEND"] == "server"
    assert agent["livenessProbe"]["httpGet"]["path"] == "/api/health"


def option(args, name):
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]


def test_agent_allows_the_release_image_extra_images_and_pull_secrets():
    docs = render_chart({
        "image": {"repository": "reg.example/simmate-k8s", "tag": "0.2.0"},
        "imagePullSecrets": ["regcred"],
        "agent": {"allowedImages": ["reg.example/simmate-k8s:0.1.9",
                                    "reg.example/simmate-k8s@sha256:" + "a" * 64]},
    })
    args = find(docs, "Deployment", "-agent")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert option(args, "--allowed-image") == [
        "reg.example/simmate-k8s:0.2.0", "reg.example/simmate-k8s:0.1.9",
        "reg.example/simmate-k8s@sha256:" + "a" * 64]
    assert option(args, "--allowed-pull-secret") == ["regcred"]
    # The Jobs' image is the first one the agent allows.
    job = job_templates(docs)["default.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert job["image"] == "reg.example/simmate-k8s:0.2.0"


@pytest.mark.parametrize("image", ["simmate-k8s:latest", "simmate-k8s", "reg:5000/simmate-k8s",
                                   "a b:1", "x:1\nkind: Secret"])
def test_allowed_images_must_be_pinned(image):
    with pytest.raises(RenderError) as error:
        render_chart({"agent": {"allowedImages": [image]}})
    assert "allowedImages" in str(error.value)


def test_the_entry_point_takes_the_chart_s_arguments(default_docs):
    """What the Deployment passes is what `python -m simmate_k8s.agent` parses into its policy."""
    from pathlib import Path

    from simmate_k8s.agent import parse_args

    agent = find(default_docs, "Deployment", "-agent")["spec"]["template"]["spec"]["containers"][0]
    args = parse_args(agent["args"][3:])
    assert args.policy.templates_dir == Path("/etc/simmate/job-templates")
    assert args.policy.images == {"simmate-k8s:0.1.0"} and not args.policy.pull_secrets
    assert args.namespace == "$(NAMESPACE)" and args.labels == ["simmate"]
    assert args.agent_address == "http://0.0.0.0:8080"


def test_role_holds_only_what_the_agent_needs(default_docs):
    role = find(default_docs, "Role", "-agent")
    resources = sorted(r for rule in role["rules"] for r in rule["resources"])
    assert resources == ["events", "jobs", "pods", "pods/log"]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert "*" not in verbs and not {"update", "patch", "escalate", "bind"} & verbs
    binding = find(default_docs, "RoleBinding", "-agent")
    assert (
        binding["subjects"][0]["name"]
        == find(default_docs, "ServiceAccount", "-agent")["metadata"]["name"]
    )
    assert "ClusterRole" not in kinds(render_chart({"daskOperator": {"enabled": False}}))


def test_one_job_template_per_preset(default_docs):
    templates = job_templates(default_docs)
    assert set(templates) == {"default.yaml", "small.yaml", "large.yaml"}
    large = templates["large.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert large["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}
    env = {e["name"]: e for e in large["env"]}
    assert env["SIMMATE_DASK_ADDRESS"]["value"] == "tls://rel-simmate-dask-scheduler.sim.svc:8786"
    # the results database as its writer role (tests/chart/test_database_roles.py)
    assert env["SIMMATE_DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == (
        "rel-simmate-postgresql-writer"
    )
    assert env["SIMMATE_DATABASE_URL"]["value"].startswith("postgresql+psycopg://simmate_writer:")
    assert large["image"] == "simmate-k8s:0.1.0"


def test_custom_preset_with_placement():
    docs = render_chart(
        {
            "agent": {
                "jobPresets": {
                    "gpu": {
                        "resources": {
                            "requests": {"cpu": "1", "memory": "1Gi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                        "nodeSelector": {"gpu": "yes"},
                    }
                }
            }
        }
    )
    pod = job_templates(docs)["gpu.yaml"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "yes"}


def test_helm_test_pod_submits_the_smoke_flow(default_docs):
    pod = find(default_docs, "Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # argv, no shell: a value can only ever be the flow's name (it was `sh -c "... {{ flow }}"`)
    assert [c["args"] for c in pod["spec"]["initContainers"]] == [["simmate-k8s", "register"]]
    argv = ["simmate-k8s", "submit", "--watch", "--", "smoke"]
    assert pod["spec"]["containers"][0]["args"] == argv
    other = find(render_chart({"tests": {"flow": "relaxation_emt"}}), "Pod", "-test")
    assert other["spec"]["containers"][0]["args"][-1] == "relaxation_emt"
    assert "Pod" not in kinds(render_chart({"tests": {"enabled": False}}))


def test_agent_can_be_switched_off():
    docs = render_chart({"agent": {"enabled": False}})
    assert not [d for d in docs if d["metadata"]["name"].endswith(("-agent", "-job-templates"))]


def test_project_image_is_pinned_never_latest():
    docs = render_chart(
        {"image": {"repository": "registry.example.com/simmate-k8s", "tag": "0.1.1"}}
    )
    agent = find(docs, "Deployment", "-agent")["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"] == "registry.example.com/simmate-k8s:0.1.1"


def test_job_templates_get_ttl_and_deadline_from_one_place():
    docs = render_chart(
        {
            "agent": {
                "jobTtlSeconds": 120,
                "jobActiveDeadlineSeconds": 7200,
                "jobPresets": {"large": {"activeDeadlineSeconds": 172800}},
            }
        },
        release="lab-a",
    )
    templates = job_templates(docs)
    assert {name: t["spec"]["ttlSecondsAfterFinished"] for name, t in templates.items()} == {
        "default.yaml": 120, "small.yaml": 120, "large.yaml": 120,
    }
    assert templates["default.yaml"]["spec"]["activeDeadlineSeconds"] == 7200
    assert templates["large.yaml"]["spec"]["activeDeadlineSeconds"] == 172800


def test_default_ttl_and_deadline(default_docs):
    spec = job_templates(default_docs)["default.yaml"]["spec"]
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["activeDeadlineSeconds"] == 86400


def test_presets_may_have_any_dns_label_name():
    resources = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    names = ["gpu-a100", "xl", "nightly-2"]
    docs = render_chart(
        {"agent": {"jobPresets": {name: {"resources": resources} for name in names}}},
        release="lab-a",
    )
    templates = job_templates(docs)
    assert set(templates) == {"default.yaml", "small.yaml", "large.yaml"} | {
        f"{name}.yaml" for name in names
    }
    for name in names:
        template = templates[f"{name}.yaml"]
        assert template["kind"] == "Job"
        assert template["metadata"]["labels"]["simmate-k8s.io/preset"] == name
        container = template["spec"]["template"]["spec"]["containers"][0]
        assert {e["name"]: e.get("value") for e in container["env"]}["SIMMATE_JOB_PRESET"] == name
    # every preset is validated against the Kubernetes Job schema by test_kubernetes_schemas


def test_job_templates_config_map_is_found_by_labels_and_holds_the_address():
    """What the CLI reads from a release (docs/chart.md)."""
    docs = render_chart(release="lab-a", namespace="lab")
    selected = [
        d for d in docs
        if d["kind"] == "ConfigMap"
        and d["metadata"]["labels"].get("app.kubernetes.io/instance") == "lab-a"
        and d["metadata"]["labels"].get("app.kubernetes.io/component") == "job-templates"
    ]
    assert len(selected) == 1
    data = selected[0]["data"]
    assert data["scheduler-address"] == "tls://lab-a-simmate-dask-scheduler.lab.svc:8786"
    assert {key for key in data if not key.endswith(".yaml")} == {"scheduler-address"}
