"""The pod/container helpers (templates/_pods.tpl): the securityContext and probe cascades
(component keys, then the chart-wide ones, then the chart's defaults) and what stays fixed."""

from tests.chart.helpers import find, pod_templates, render_chart

FIXED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}


def pods(docs) -> dict[str, dict]:
    """"Kind/component" -> pod spec, for every pod template of this chart (not the operator's)."""
    return {
        label.replace("rel-simmate-", ""): spec
        for doc in docs for label, _, spec in pod_templates(doc)
        if "dask-kubernetes-operator" not in label
    }


def deployment_container(docs, suffix: str) -> dict:
    return find(docs, "Deployment", suffix)["spec"]["template"]["spec"]["containers"][0]


def test_defaults_are_each_images_own_user():
    by_pod = pods(render_chart())
    users = {label: spec["securityContext"]["runAsUser"] for label, spec in by_pod.items()}
    assert users["Deployment/hasura"] == 1001
    assert users["Deployment/ui"] == 101
    assert users["StatefulSet/postgresql"] == 999
    assert users["Deployment/agent"] == 1000


def test_component_keys_win_over_chart_wide_ones_which_win_over_the_image_user():
    docs = render_chart({
        "securityContext": {"runAsUser": 5000, "fsGroup": 6000, "supplementalGroups": [7000]},
        "prefectServer": {"graphql": {"securityContext": {"runAsUser": 5100}}},
    })
    by_pod = pods(docs)
    graphql = by_pod["Deployment/graphql"]["securityContext"]
    assert (graphql["runAsUser"], graphql["fsGroup"], graphql["supplementalGroups"]) == (
        5100, 6000, [7000])
    agent = by_pod["Deployment/agent"]["securityContext"]
    assert (agent["runAsUser"], agent["runAsGroup"]) == (5000, 1000)  # runAsGroup: not set
    # hasura's own default (its image's user) is a component value: it still wins
    assert by_pod["Deployment/hasura"]["securityContext"]["runAsUser"] == 1001
    for label, spec in by_pod.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, label
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, label
        for container in spec["containers"] + spec.get("initContainers", []):
            assert container["securityContext"] == FIXED_CONTAINER, (label, container["name"])


def test_probe_timings_cascade_key_by_key():
    docs = render_chart({
        "probes": {"liveness": {"periodSeconds": 45}},
        "prefectServer": {"ui": {"probes": {"liveness": {"initialDelaySeconds": 0}}}},
    })
    ui = deployment_container(docs, "-ui")["livenessProbe"]
    assert (ui["initialDelaySeconds"], ui["periodSeconds"], ui["failureThreshold"]) == (0, 45, 6)
    assert ui["httpGet"] == {"path": "/", "port": "http"}
    hasura = deployment_container(docs, "-hasura")["livenessProbe"]
    assert (hasura["initialDelaySeconds"], hasura["periodSeconds"]) == (30, 45)
    worker = find(docs, "DaskCluster")["spec"]["worker"]["spec"]["containers"][0]
    assert worker["livenessProbe"]["periodSeconds"] == 45
    assert worker["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": "http-dashboard"},
        "periodSeconds": 10, "timeoutSeconds": 5}


def test_every_long_running_container_has_both_probes():
    for label, spec in pods(render_chart()).items():
        # towel only runs loops against the API: no port, nothing to probe
        long_running = label.startswith(("Deployment/", "StatefulSet/", "DaskCluster/"))
        if long_running and label != "Deployment/towel":
            for container in spec["containers"]:
                probes = {key for key in container if key.endswith("Probe")}
                assert probes == {"readinessProbe", "livenessProbe"}, (label, container["name"])


def test_hook_jobs_share_one_shape():
    docs = render_chart({"daskOperator": {"upgradeCRDs": True}})
    hooks = [d for d in docs if d["kind"] == "Job"]
    assert len(hooks) >= 4
    for job in hooks:
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        assert job["spec"]["ttlSecondsAfterFinished"] == 86400
        volumes = {v["name"] for v in job["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"] for c in job["spec"]["template"]["spec"]["containers"]
                  for m in c["volumeMounts"]}
        assert "tmp" in volumes and mounts <= volumes, job["metadata"]["name"]
        api = "kube-api-access" in volumes
        assert api == ("serviceAccountName" in job["spec"]["template"]["spec"]), job["metadata"]
