"""The DaskCluster, its autoscaler, worker groups and the operator subchart."""

import jmespath

from tests.chart.helpers import find, kinds, render_chart


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
    assert worker["args"][:4] == ["dask", "worker", "--preload", "simmate_k8s.preload"]
    assert "$(DASK_WORKER_NAME)" in worker["args"]
    env = {e["name"]: e for e in worker["env"]}
    assert env["SIMMATE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-simmate-results-db",
        "key": "url",
    }
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
