"""Secure by default: every pod and container, plus a checkov scan of the rendered manifests."""

import json
import re
import subprocess

import pytest
import yaml

from tests.chart.helpers import RenderError, find_tool, pod_specs, render_chart
from tests.chart.test_kubernetes_schemas import EVERYTHING_ON

# checkov checks skipped for the whole chart, each with the reason.
CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are pinned by tag in values (one version knob); digests would break "
    "`kind load` of locally built images",
    "CKV_K8S_15": "tags are pinned, so IfNotPresent is safe and lets kind/minikube use "
    "loaded images",
    "CKV_K8S_40": "the upstream images have fixed users (postgres 999, nginx 101, project 1000); "
    "a UID above 10000 would not own their files",
    "CKV_K8S_35": "Prefect Server, hasura and the preload read credentials from env by design "
    "(PREFECT_SERVER__*, HASURA_GRAPHQL_*, SIMMATE_DATABASE_URL)",
    "CKV_K8S_21": "the namespace comes from `helm install -n`; rendered objects carry it",
    "CKV_K8S_8": "towel serves no port (liveness = the process); hook Jobs and the test "
    "pod run to their end",
    "CKV_K8S_9": "same as CKV_K8S_8 for readiness",
    "CKV_K8S_38": "only the dask operator (a controller, subchart) and our agent mount a token; "
    "test_only_the_agent_gets_a_token checks our pods",
}


def all_pods(docs):
    """Pods of this chart (the operator subchart is checked by checkov only)."""
    ours = [
        d
        for d in docs
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "simmate"
    ]
    return [pod for doc in ours for pod in pod_specs(doc)]


@pytest.fixture(scope="module")
def docs():
    return render_chart(EVERYTHING_ON)


def test_every_pod_is_non_root_with_seccomp(docs):
    for label, spec in all_pods(docs):
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, label
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, label
        assert spec["automountServiceAccountToken"] is False, label


def test_every_container_is_locked_down(docs):
    for label, spec in all_pods(docs):
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, label
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["capabilities"] == {"drop": ["ALL"]}, label
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, (
                label
            )


def test_writable_paths_are_emptydirs(docs):
    for label, spec in all_pods(docs):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], label


def test_only_the_agent_gets_a_token(docs):
    with_token = [
        label
        for label, spec in all_pods(docs)
        if any("projected" in v for v in spec.get("volumes", []))
    ]
    # The agent creates flow-run Jobs; each hook Job has its own ServiceAccount and a Role (or,
    # for the CRDs, a ClusterRole) limited to the named objects it touches.
    assert sorted(with_token) == [
        "Deployment/rel-simmate-agent",
        "Job/rel-simmate-apollo-restart",
        "Job/rel-simmate-crd-upgrade",
        "Job/rel-simmate-dask-recreate",
    ]


def test_hook_roles_are_limited_to_named_objects(docs):
    """Every Role/ClusterRole of ours (not the operator subchart's) names the objects it allows."""
    ours = [
        d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "simmate"
        and not d["metadata"]["name"].endswith("-agent")
    ]
    assert {d["metadata"]["name"] for d in ours} == {
        "rel-simmate-apollo-restart",
        "rel-simmate-crd-upgrade",
        "rel-simmate-dask-recreate",
    }
    for role in ours:
        for rule in role["rules"]:
            assert rule["resourceNames"], role["metadata"]["name"]
            assert set(rule["verbs"]) <= {"get", "patch", "delete"}, role["metadata"]["name"]
            assert "*" not in rule["resources"] + rule["apiGroups"]


def test_checkov_passes_outside_the_skip_list(tmp_path):
    """One scan over the default and everything-on renders together."""
    docs = [
        d
        for d in render_chart() + render_chart(EVERYTHING_ON)
        if not d["apiVersion"].startswith("kubernetes.dask.org/")
    ]
    (tmp_path / "manifests.yaml").write_text(yaml.safe_dump_all(docs))
    result = subprocess.run(
        [
            find_tool("checkov"),
            "-d",
            str(tmp_path),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--quiet",
            "--compact",
            "--skip-download",
            "--skip-check",
            ",".join(CHECKOV_SKIPS),
        ],
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "\n".join(sorted(set(failed)))

def test_the_dask_operator_manages_only_the_release_namespace():
    docs = render_chart()
    operator_rbac = [d for d in docs if "dask-kubernetes-operator" in d["metadata"]["name"]]
    rbac_kinds = {d["kind"] for d in operator_rbac} & {"Role", "ClusterRole", "RoleBinding",
                                                         "ClusterRoleBinding"}  # fmt: skip
    assert rbac_kinds == {"Role", "RoleBinding"}
    deployment = next(d for d in operator_rbac if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--all-namespaces" not in container["args"]
    assert "--namespace=$(WATCH_NAMESPACE)" in container["args"]
    watch = next(e for e in container["env"] if e["name"] == "WATCH_NAMESPACE")
    assert watch["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"


def test_a_cluster_wide_operator_is_opt_in_with_both_switches():
    wide = {
        "dask-kubernetes-operator": {"rbac": {"cluster": True}, "kopfArgs": ["--all-namespaces"]}
    }
    assert "ClusterRole" in {d["kind"] for d in render_chart(wide)}
    half = {"dask-kubernetes-operator": {"rbac": {"cluster": True}}}
    words = "rbac.cluster and kopfArgs --all-namespaces must agree"
    with pytest.raises(RenderError, match=re.escape(words)):
        render_chart(half)
    from simmate_k8s.values.render import ValuesError, build_values

    with pytest.raises(ValuesError, match=re.escape(words)):
        build_values(None, sets=("dask-kubernetes-operator.rbac.cluster=true",))
