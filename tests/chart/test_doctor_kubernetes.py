"""`simmate-k8s doctor`'s Kubernetes checks on what an installed release really contains.

No cluster runs here, so a small HTTP stand-in answers the six read-only API paths the checks
use, with the objects of a real install: the chart as `helm template` renders it (release `t2`
in namespace `ns2`), the CRDs `helm show crds` gives for the bundled operator chart, and the
scheduler Service built by the dask-kubernetes operator's own code from the rendered
DaskCluster. Rolled-out Deployments get the status Kubernetes reports. The real cluster is the
e2e tier (tests/e2e/test_doctor.py).
"""

from __future__ import annotations

import copy
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from simmate_k8s import doctor
from simmate_k8s.doctor import FAIL, OK, SKIPPED
from simmate_k8s.values.model import DASK_KUBERNETES_VERSION
from tests.chart.helpers import CHART, helm, render_chart
from tests.support.http import JsonHandler, StandIn

RELEASE, NAMESPACE = "t2", "ns2"


def matches(obj: dict, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    pairs = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in pairs)


class KubeApi(StandIn):
    """GET-only answers for version, Deployments, ConfigMaps, Services, Endpoints and CRDs."""

    def __init__(self, objects: list[dict], crds: list[dict]):
        self.objects = objects
        self.crds = {crd["metadata"]["name"]: crd for crd in crds}
        self.endpoints: dict[str, dict] = {}
        self.unexpected: list[str] = []
        super().__init__(self.handler())

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def answer(self, path: str, query: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")
        selector = query.get("labelSelector", [""])[0]
        if parts == ["version"]:
            return 200, {"major": "1", "minor": "28", "gitVersion": "v1.28.15",
                         "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2024-01-01",
                         "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"}
        lists = {("apis", "apps", "v1"): {"deployments": "Deployment"},
                 ("api", "v1"): {"configmaps": "ConfigMap", "services": "Service"}}
        for prefix, kinds in lists.items():
            n = len(prefix)
            if tuple(parts[:n]) == prefix and len(parts) == n + 3 and parts[n] == "namespaces" \
                    and parts[n + 2] in kinds:
                items = [obj for obj in self.of_kind(kinds[parts[n + 2]])
                         if obj["metadata"]["namespace"] == parts[n + 1] and
                         matches(obj, selector)]
                return 200, {"apiVersion": "v1", "kind": "List", "metadata": {},
                             "items": items}
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 6 and \
                parts[4] == "endpoints":
            found = self.endpoints.get(parts[5])
            return (200, found) if found else self.not_found(path)
        if parts[:4] == ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"]:
            found = self.crds.get(parts[4])
            return (200, found) if found else self.not_found(path)
        self.unexpected.append(path)
        return self.not_found(path)

    @staticmethod
    def not_found(path):
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "message": f"{path} not found", "reason": "NotFound", "code": 404}

    def handler(self):
        api = self

        class Handler(JsonHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                self.reply(*api.answer(parts.path, parse_qs(parts.query)))

        return Handler


def installed(values: dict | None = None) -> tuple[list[dict], list[dict]]:
    """(objects, CRDs) of `helm install t2 charts/simmate -n ns2` once it is rolled out."""
    from dask_kubernetes.operator.controller import controller

    docs = [d for d in render_chart(values or {}, release=RELEASE, namespace=NAMESPACE)
            if d and "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]
    for doc in docs:
        doc["metadata"].setdefault("namespace", NAMESPACE)
        if doc["kind"] == "Deployment":
            replicas = doc["spec"].setdefault("replicas", 1)  # the API server's default
            doc["status"] = {"replicas": replicas, "readyReplicas": replicas,
                             "availableReplicas": replicas}
    (cluster,) = [d for d in docs if d["kind"] == "DaskCluster"]
    scheduler = cluster["spec"]["scheduler"]
    labels = {**cluster["metadata"]["labels"], **scheduler["metadata"]["labels"]}
    service = controller.build_scheduler_service_spec(
        cluster["metadata"]["name"], scheduler["service"], {}, labels)
    service["metadata"]["namespace"] = NAMESPACE
    charts = sorted((CHART / "charts").glob("dask-kubernetes-operator-*.tgz"))
    crds = [d for d in yaml.safe_load_all(helm("show", "crds", str(charts[-1])).stdout) if d]
    return [*docs, service], crds


@pytest.fixture(scope="module")
def release():
    return installed()


@pytest.fixture
def kube(release):
    objects, crds = copy.deepcopy(release)
    api = KubeApi(objects, crds)
    (service,) = [o for o in objects if o["kind"] == "Service" and matches(
        o, doctor.instance(RELEASE, "dask-scheduler"))]
    name = service["metadata"]["name"]
    api.endpoints[name] = {"apiVersion": "v1", "kind": "Endpoints",
                           "metadata": {"name": name, "namespace": NAMESPACE},
                           "subsets": [{"addresses": [{"ip": "10.244.0.7"}],
                                        "ports": [{"name": "tcp-comm", "port": 8786}]}]}
    yield api
    api.close()
    assert not api.unexpected, api.unexpected


def client_for(url: str):
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = url
    return client.ApiClient(configuration)


def check(kube, release=RELEASE) -> dict:
    rows = doctor.kubernetes_rows(client_for(kube.url), "test", release, NAMESPACE)
    assert [row.check for row in rows] == doctor.KUBERNETES_CHECKS
    return {row.check: row for row in rows}


def test_a_rolled_out_release_is_all_green(kube):
    rows = check(kube)
    assert {check: row.status for check, row in rows.items()} == dict.fromkeys(
        doctor.KUBERNETES_CHECKS, OK)
    assert rows["Kubernetes API"].detail == "context 'test', server v1.28.15"
    assert rows["Dask operator version"].detail == DASK_KUBERNETES_VERSION
    # found by labels: the chart's fullname for release t2, which no rule here spells out
    assert rows["scheduler Service"].detail.startswith("svc/t2-simmate-dask-scheduler, 1 ready")
    assert "flow runs use tls://t2-simmate-dask-scheduler.ns2.svc:8786" in \
        rows["scheduler Service"].detail


def test_the_crds_of_the_wheel_are_the_ones_the_chart_applies():
    """What doctor compares with is what the CRD upgrade hook applies (files/dask-crds)."""
    version, crds = doctor.wheel_crds()
    assert version == DASK_KUBERNETES_VERSION
    copies = {json.loads(p.read_text())["metadata"]["name"]: json.loads(p.read_text())
              for p in (CHART / "files" / "dask-crds").glob("*.json")}
    assert set(copies) == set(crds) and len(crds) == 4
    for name, crd in crds.items():
        assert doctor._crd_versions(copies[name]) == doctor._crd_versions(crd), name


def test_an_unknown_release(kube):
    rows = check(kube, release="other")
    assert rows["release"].status == FAIL
    assert "nothing labelled app.kubernetes.io/instance=other in namespace ns2" in \
        rows["release"].detail
    assert rows["release"].fix.startswith("helm -n ns2 list")
    assert {rows[c].status for c in doctor.KUBERNETES_CHECKS[3:]} == {SKIPPED}


def test_an_older_crd_is_named(kube):
    crd = kube.crds["daskclusters.kubernetes.dask.org"]
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["idleTimeout"]  # a field an older dask-kubernetes did not have
    row = check(kube)["Dask CRDs"]
    assert row.status == FAIL
    assert row.detail == (f"daskclusters.kubernetes.dask.org differ from dask-kubernetes "
                          f"{DASK_KUBERNETES_VERSION}'s (Helm never upgrades CRDs)")
    assert "kubectl apply --server-side" in row.fix


def test_a_missing_crd(kube):
    del kube.crds["daskautoscalers.kubernetes.dask.org"]
    row = check(kube)["Dask CRDs"]
    assert (row.status, row.detail) == (FAIL, "not installed: daskautoscalers.kubernetes.dask.org")


def test_another_operator_version():
    objects, crds = installed({"dask-kubernetes-operator": {"image": {"tag": "2024.9.0"}}})
    api = KubeApi(objects, crds)
    try:
        row = check(api)["Dask operator version"]
    finally:
        api.close()
    assert row.status == FAIL
    assert row.detail == ("operator image ghcr.io/dask/dask-kubernetes-operator:2024.9.0; the "
                          f"chart pins dask-kubernetes {DASK_KUBERNETES_VERSION}")


def test_operator_and_agent_not_ready(kube):
    for deployment in kube.of_kind("Deployment"):
        deployment["status"] = {"replicas": 1}
    rows = check(kube)
    assert rows["Dask operator ready"].status == FAIL
    assert rows["Dask operator ready"].detail == "0 of 1 replicas available"
    assert rows["agent Deployment"].status == FAIL
    assert rows["agent Deployment"].fix == ("kubectl -n ns2 logs -l app.kubernetes.io/"
                                            "instance=t2,app.kubernetes.io/component=agent "
                                            "--tail 50")


def test_scheduler_without_a_ready_pod(kube):
    kube.endpoints.clear()
    row = check(kube)["scheduler Service"]
    assert (row.status, row.detail) == (FAIL, "svc/t2-simmate-dask-scheduler has no ready "
                                              "scheduler pod")


def test_job_templates_pointing_elsewhere_are_caught(kube):
    """Issue 9's bug A: an address made by a name rule, not the Service the operator made."""
    (templates,) = [o for o in kube.of_kind("ConfigMap") if matches(
        o, doctor.instance(RELEASE, "job-templates"))]
    templates["data"]["scheduler-address"] = "tcp://t2-dask-scheduler.ns2.svc:8786"
    row = check(kube)["scheduler Service"]
    assert row.status == FAIL
    assert row.detail == ("the job templates use tcp://t2-dask-scheduler.ns2.svc:8786, but "
                          "the scheduler Service is svc/t2-simmate-dask-scheduler")


def test_no_kubernetes_api():
    from tests.support.postgres import free_port

    rows = doctor.kubernetes_rows(client_for(f"http://127.0.0.1:{free_port()}"), "gone",
                                  RELEASE, NAMESPACE)
    assert rows[0].status == FAIL
    assert rows[0].detail.startswith("context 'gone': cannot reach the Kubernetes API")
    assert {row.status for row in rows[1:]} == {SKIPPED}
