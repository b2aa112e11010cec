"""Optional operations blocks: the Dask CRD upgrade hook (the PodMonitor is in test_dask.py, the
retention CronJob in test_retention.py)."""

import json
from pathlib import Path

import yaml

from tests.chart.helpers import CHART, find, hook, kinds, render_chart

WHEEL_CRDS = "operator/deployment/helm/dask-kubernetes-operator/crds"


def test_crd_copies_equal_the_wheels_crds():
    """files/dask-crds/ is what the hook applies: it must be the pinned operator's CRDs."""
    import dask_kubernetes

    source = Path(dask_kubernetes.__file__).parent / WHEEL_CRDS
    wheel = {p.stem: yaml.safe_load(p.read_text()) for p in source.glob("*.yaml")}
    copies = {
        p.stem: json.loads(p.read_text()) for p in (CHART / "files" / "dask-crds").glob("*.json")
    }
    assert copies == wheel, "stale copies: run scripts/package-dask-operator-chart.py"


def test_crd_upgrade_is_off_by_default(default_docs):
    assert not [d for d in default_docs if d["metadata"]["name"].endswith("-crd-upgrade")]


def test_crd_upgrade_hook_applies_every_crd_with_least_privilege():
    docs = render_chart(
        {"daskOperator": {"upgradeCRDs": True,
                          "crdUpgrade": {"image": {"repository": "example/kubectl",
                                                   "tag": "v1.31.2"}}}},
        release="lab-a",
    )
    ours = [d for d in docs if d["metadata"]["name"].endswith("-crd-upgrade")]
    assert {d["kind"] for d in ours} == {
        "ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Job"
    }
    assert all(hook(d) == "pre-upgrade" for d in ours)
    weight = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in ours}
    assert max(w for k, w in weight.items() if k != "Job") < weight["Job"]

    config_map = find(docs, "ConfigMap", "-crd-upgrade")
    names = {json.loads(text)["metadata"]["name"] for text in config_map["data"].values()}
    assert names == {
        "daskclusters.kubernetes.dask.org", "daskworkergroups.kubernetes.dask.org",
        "daskautoscalers.kubernetes.dask.org", "daskjobs.kubernetes.dask.org",
    }
    size = sum(len(text.encode()) for text in config_map["data"].values())
    assert size < 1024 * 1024 * 0.9, f"{size} bytes: too close to the 1 MiB ConfigMap limit"

    [rule] = find(docs, "ClusterRole", "-crd-upgrade")["rules"]
    assert rule["apiGroups"] == ["apiextensions.k8s.io"]
    assert rule["resources"] == ["customresourcedefinitions"]
    assert sorted(rule["resourceNames"]) == sorted(names)
    assert rule["verbs"] == ["get", "patch"]

    spec = find(docs, "Job", "-crd-upgrade")["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert container["image"] == "example/kubectl:v1.31.2"
    command = container["command"]
    assert command[:4] == ["kubectl", "apply", "--server-side", "--force-conflicts"]
    files = [command[i + 1] for i, arg in enumerate(command) if arg == "-f"]
    assert sorted(files) == sorted(f"/crds/{key}" for key in config_map["data"])
    assert spec["securityContext"]["runAsUser"] == 65532
    assert "ClusterRole" in kinds(docs)
