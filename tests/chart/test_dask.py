"""The DaskCluster, its autoscaler, worker groups and the operator subchart."""

import json

import jmespath
import pytest

from tests.chart.helpers import find, job_templates, kinds, pod_specs, render_chart


def test_cluster_and_scheduler_service_names(default_docs):
    cluster = find(default_docs, "DaskCluster", "-dask")
    assert cluster["metadata"]["name"] == "rel-simmate-dask"  # service: rel-simmate-dask-scheduler


def test_scheduler_enables_the_api_route(default_docs):
    scheduler = find(default_docs, "DaskCluster", "-dask")["spec"]["scheduler"]["spec"][
        "containers"
    ][0]
    assert scheduler["args"][:2] == ["dask", "scheduler"]
    routes = {e["name"]: e["value"] for e in scheduler["env"]}[
        "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"
    ]
    import ast

    import dask.config
    import distributed  # noqa: F401  (loads distributed's defaults)

    parsed = ast.literal_eval(routes)
    assert "distributed.http.scheduler.api" in parsed
    assert set(dask.config.get("distributed.scheduler.http.routes")) <= set(parsed)


def test_workers_preload_and_get_the_results_db(default_docs):
    worker = find(default_docs, "DaskCluster", "-dask")["spec"]["worker"]["spec"]["containers"][0]
    assert worker["args"][:5] == [
        "dask", "worker", "tls://rel-simmate-dask-scheduler.sim.svc:8786",
        "--preload", "simmate_k8s.preload",
    ]  # fmt: skip
    assert "$(DASK_WORKER_NAME)" in worker["args"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["SIMMATE_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-simmate-postgresql-writer",
        "key": "password",
    }
    assert env["SIMMATE_DATABASE_URL"]["value"] == (
        "postgresql+psycopg://simmate_writer:$(SIMMATE_DB_PASSWORD)"
        "@rel-simmate-postgresql:5432/simmate_results"
    )
    assert env["SIMMATE_DB_CONNECT_TIMEOUT"]["value"] == "30"


def test_autoscaler_scales_to_zero(default_docs):
    autoscaler = find(default_docs, "DaskAutoscaler", "-dask")
    assert autoscaler["spec"] == {"cluster": "rel-simmate-dask", "minimum": 0, "maximum": 4}
    assert "DaskAutoscaler" not in kinds(render_chart({"dask": {"autoscaler": {"enabled": False}}}))


def test_worker_groups_inherit_and_override():
    docs = render_chart(
        {
            "dask": {
                "worker": {"nthreads": 3},
                "workerGroups": [
                    {
                        "name": "highmem",
                        "replicas": 2,
                        "resources": {
                            "requests": {"cpu": "2", "memory": "24Gi"},
                            "limits": {"cpu": "4", "memory": "28Gi"},
                        },
                        "nodeSelector": {"pool": "highmem"},
                        "tolerations": [
                            {"key": "highmem", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    }
                ],
            }
        }
    )
    group = find(docs, "DaskWorkerGroup", "-highmem")
    assert (
        group["spec"]["cluster"] == "rel-simmate-dask" and group["spec"]["worker"]["replicas"] == 2
    )
    pod = group["spec"]["worker"]["spec"]
    assert pod["nodeSelector"] == {"pool": "highmem"}
    assert pod["tolerations"] == [{"key": "highmem", "operator": "Exists", "effect": "NoSchedule"}]
    args = pod["containers"][0]["args"]
    assert args[args.index("--nthreads") + 1] == "3"  # inherited from dask.worker
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "28Gi"


def test_operator_subchart_is_pinned_and_switchable(default_docs):
    operator = [
        d
        for d in default_docs
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("dask-kubernetes-operator")
    ]
    assert operator and jmespath.search(
        "spec.template.spec.containers[0].image", operator[0]
    ).endswith(":2026.3.0")
    docs = render_chart({"daskOperator": {"enabled": False}})
    assert not [d for d in docs if "operator" in d["metadata"]["name"]]


def test_dask_can_be_switched_off():
    assert not {"DaskCluster", "DaskAutoscaler"} & kinds(render_chart({"dask": {"enabled": False}}))


# --- B: the DaskCluster starts where the autoscaler wants it -----------------------------------


def worker_args(pod_spec):
    args = pod_spec["containers"][0]["args"]
    return args[args.index("--nthreads") + 1], args[args.index("--memory-limit") + 1]


def test_cluster_starts_at_the_autoscaler_minimum(default_docs):
    """replicas 1 with minimum 0 let the operator retire the worker before it registered."""
    cluster = find(default_docs, "DaskCluster", "-dask")
    assert cluster["spec"]["worker"]["replicas"] == 0
    docs = render_chart({"dask": {"autoscaler": {"minimum": 2, "maximum": 5}}}, release="lab-a")
    assert find(docs, "DaskCluster", "-dask")["spec"]["worker"]["replicas"] == 2


def test_replicas_apply_without_the_autoscaler():
    off = {"dask": {"autoscaler": {"enabled": False}}}
    assert find(render_chart(off), "DaskCluster", "-dask")["spec"]["worker"]["replicas"] == 1
    off["dask"]["worker"] = {"replicas": 3}
    assert find(render_chart(off), "DaskCluster", "-dask")["spec"]["worker"]["replicas"] == 3


# --- C: an upgrade that changes the Dask pods replaces them ----------------------------------


def checksum(values=None):
    # Certificates from a fixed Secret: generated ones are new on every offline render (no
    # lookup) and are part of the checksum (tests/chart/test_tls.py).
    values = json.loads(json.dumps(values or {}))
    values.setdefault("dask", {})["tls"] = {"existingSecret": "lab-a-dask-certs"}
    docs = render_chart(values, release="lab-a")
    return find(docs, "DaskCluster", "-dask")["metadata"]["annotations"][
        "simmate-k8s.io/spec-checksum"
    ]


def test_spec_checksum_follows_what_the_operator_does_not_reconcile():
    base = checksum()
    assert checksum({"image": {"tag": "0.1.1"}}) != base
    assert checksum({"dask": {"worker": {"nthreads": 2}}}) != base
    assert checksum({"dask": {"scheduler": {"resources": {"limits": {"cpu": "2"}}}}}) != base
    assert checksum({"dask": {"workerGroups": [{"name": "highmem"}]}}) != base
    # Not the Dask pods, or followed by the operator itself: same checksum, cluster kept.
    assert checksum({"agent": {"resources": {"limits": {"cpu": "2"}}}}) == base
    assert checksum({"agent": {"jobTtlSeconds": 60}}) == base
    assert checksum({"dask": {"autoscaler": {"maximum": 9}}}) == base
    assert checksum({"dask": {"autoscaler": {"minimum": 1, "maximum": 9}}}) == base
    assert checksum({"prefectServer": {"version": "core-1.4.0"}}) == base


def test_recreate_hook_runs_before_upgrades_with_the_same_checksum(default_docs):
    job = find(default_docs, "Job", "-dask-recreate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-upgrade,pre-rollback"
    assert "hook-succeeded" in annotations["helm.sh/hook-delete-policy"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["python", "-c"] and container["args"][3] == (
        "recreate-daskcluster"
    )
    env = {e["name"]: e.get("value") for e in container["env"]}
    cluster = find(default_docs, "DaskCluster", "-dask")
    assert env["DASK_CLUSTER"] == cluster["metadata"]["name"]
    assert env["SPEC_CHECKSUM"] == cluster["metadata"]["annotations"][
        "simmate-k8s.io/spec-checksum"
    ]
    assert container["image"] == cluster["spec"]["worker"]["spec"]["containers"][0]["image"]


def test_recreate_hook_rbac_is_one_daskcluster_get_and_delete(default_docs):
    role = find(default_docs, "Role", "-dask-recreate")
    assert role["rules"] == [
        {
            "apiGroups": ["kubernetes.dask.org"],
            "resources": ["daskclusters"],
            "resourceNames": ["rel-simmate-dask"],
            "verbs": ["get", "delete"],
        }
    ]
    account = find(default_docs, "ServiceAccount", "-dask-recreate")
    binding = find(default_docs, "RoleBinding", "-dask-recreate")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "sim"}
    ]
    # At pre-upgrade the new chart's ordinary objects do not exist yet: RBAC must be hooks too,
    # created before the Job (lower weight).
    for doc in (role, account, binding):
        assert doc["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade,pre-rollback"
        assert int(doc["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            find(default_docs, "Job", "-dask-recreate")["metadata"]["annotations"][
                "helm.sh/hook-weight"
            ]
        )


def test_recreate_hook_can_be_switched_off():
    docs = render_chart({"dask": {"recreateOnUpgrade": False}})
    assert not [d for d in docs if d["metadata"]["name"].endswith("-dask-recreate")]
    docs = render_chart({"dask": {"enabled": False}})
    assert not [d for d in docs if d["metadata"]["name"].endswith("-dask-recreate")]


def test_agent_flow_runs_and_dask_run_one_image():
    """After `helm upgrade --set image.tag=...` nothing may keep the old tag."""
    docs = render_chart({"image": {"tag": "0.1.1"}}, release="lab-a")
    project = {
        label: container["image"]
        for doc in docs
        for label, spec in pod_specs(doc)
        for container in spec["containers"]
        if "simmate-k8s" in container["image"]
    }
    assert set(project.values()) == {"simmate-k8s:0.1.1"}
    for must in ("Deployment/lab-a-simmate-agent", "DaskCluster/lab-a-simmate-dask/worker",
                 "DaskCluster/lab-a-simmate-dask/scheduler"):
        assert must in project
    assert any(label.startswith("ConfigMap/lab-a-simmate-job-templates/") for label in project)


# --- F: worker threads and memory from the container's resources ----------------------------


@pytest.mark.parametrize(
    "limits, expected",
    [
        ({"cpu": "500m", "memory": "1Gi"}, ("1", "1073741824")),
        ({"cpu": "2", "memory": "1500Mi"}, ("2", "1572864000")),
        ({"cpu": "2500m", "memory": "1G"}, ("2", "1000000000")),
        ({"cpu": "1.5", "memory": "1.5Gi"}, ("1", "1610612736")),
        ({"cpu": "4", "memory": "2000000000"}, ("4", "2000000000")),
        ({"cpu": "3", "memory": "512k"}, ("3", "512000")),
    ],
)
def test_nthreads_and_memory_limit_come_from_the_limits(limits, expected):
    """Dask reported 2 CPUs / 512 MiB in a 1 CPU / 1 GiB pod: the chart passes both explicitly."""
    resources = {"limits": limits, "requests": {"cpu": "100m", "memory": "256Mi"}}
    docs = render_chart({"dask": {"worker": {"resources": resources}}})
    pod = find(docs, "DaskCluster", "-dask")["spec"]["worker"]["spec"]
    assert worker_args(pod) == expected


def test_explicit_nthreads_and_memory_limit_win_and_groups_size_themselves():
    docs = render_chart(
        {
            "dask": {
                "worker": {"nthreads": 3, "memoryLimit": "3GiB"},
                "workerGroups": [
                    {
                        "name": "big",
                        "nthreads": "auto",
                        "memoryLimit": "auto",
                        "resources": {
                            "requests": {"cpu": "2", "memory": "8Gi"},
                            "limits": {"cpu": "4", "memory": "16Gi"},
                        },
                    }
                ],
            }
        }
    )
    default = find(docs, "DaskCluster", "-dask")["spec"]["worker"]["spec"]
    assert worker_args(default) == ("3", "3GiB")
    group = find(docs, "DaskWorkerGroup", "-big")["spec"]["worker"]["spec"]
    assert worker_args(group) == ("4", str(16 * 1024**3))


# --- names: what the chart renders agrees with the operator's rules -----------------------


def test_release_s2_in_simmate2_names_agree_everywhere():
    """The bug: Python derived `<release>-dask-scheduler`, the chart `<release>-simmate-...`."""
    from dask_kubernetes.constants import SCHEDULER_NAME_TEMPLATE

    docs = render_chart(
        {"dask": {"workerGroups": [{"name": "highmem"}]}}, release="s2", namespace="simmate2"
    )
    cluster = find(docs, "DaskCluster", "-dask")["metadata"]["name"]
    service = SCHEDULER_NAME_TEMPLATE.format(cluster_name=cluster)  # what the operator creates
    assert service == "s2-simmate-dask-scheduler"
    address = f"tls://{service}.simmate2.svc:8786"
    assert find(docs, "DaskAutoscaler", "-dask")["spec"]["cluster"] == cluster
    assert find(docs, "DaskWorkerGroup", "-highmem")["spec"]["cluster"] == cluster
    config_map = find(docs, "ConfigMap", "-job-templates")
    assert config_map["data"]["scheduler-address"] == address
    for template in job_templates(docs).values():
        env = {e["name"]: e.get("value") for e in
               template["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["SIMMATE_DASK_ADDRESS"] == address
    test_pod = find(docs, "Pod", "-test")["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in test_pod["env"]}["SIMMATE_DASK_ADDRESS"] == address
    assert find(docs, "Role", "-dask-recreate")["rules"][0]["resourceNames"] == [cluster]
    assert all(d["metadata"].get("namespace", "simmate2") == "simmate2" for d in docs
               if d["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "simmate")


def test_a_long_release_name_still_gives_a_valid_cluster_and_address():
    from dask_kubernetes.constants import SCHEDULER_NAME_TEMPLATE, VALID_CLUSTER_NAME

    release = "materials-discovery-group-production-east"  # 41 characters
    docs = render_chart(release=release, namespace="lab")
    cluster = find(docs, "DaskCluster", "")["metadata"]["name"]
    assert VALID_CLUSTER_NAME.match(cluster), cluster
    service = SCHEDULER_NAME_TEMPLATE.format(cluster_name=cluster)
    assert len(service) <= 63
    assert find(docs, "ConfigMap", "-job-templates")["data"]["scheduler-address"] == (
        f"tls://{service}.lab.svc:8786"
    )


def test_scheduler_carries_the_labels_the_cli_selects_by(default_docs):
    """The operator copies spec.scheduler.metadata.labels onto the scheduler Service and pod
    (dask_kubernetes/operator/controller/controller.py: build_scheduler_service_spec)."""
    labels = find(default_docs, "DaskCluster", "-dask")["spec"]["scheduler"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "rel"
    assert labels["app.kubernetes.io/component"] == "dask-scheduler"


# --- PodMonitor -------------------------------------------------------------------------------


def test_pod_monitor_is_optional_and_selects_the_scheduler(default_docs):
    assert "PodMonitor" not in kinds(default_docs)
    docs = render_chart(
        {"dask": {"scheduler": {"podMonitor": {"enabled": True, "interval": "15s",
                                               "labels": {"release": "prom"}}}}},
        release="lab-a",
        namespace="lab",
    )
    monitor = find(docs, "PodMonitor", "")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "simmate",
        "app.kubernetes.io/instance": "lab-a",
        "app.kubernetes.io/component": "dask-scheduler",
    }
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["lab"]}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint == {"port": "http-dashboard", "path": "/metrics", "interval": "15s"}
    scheduler = find(docs, "DaskCluster", "-dask")["spec"]["scheduler"]
    ports = {p["name"] for p in scheduler["spec"]["containers"][0]["ports"]}
    assert "http-dashboard" in ports
    env = {e["name"]: e["value"] for e in scheduler["spec"]["containers"][0]["env"]}
    routes = env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"]
    assert "distributed.http.scheduler.prometheus" in routes
    assert "PodMonitor" not in kinds(
        render_chart({"dask": {"enabled": False, "scheduler": {"podMonitor": {"enabled": True}}}})
    )
