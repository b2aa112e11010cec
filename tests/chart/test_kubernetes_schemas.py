"""Every rendered object is valid for two Kubernetes versions and the Dask CRD schemas."""

import functools
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from simmate_k8s.values.render import PROFILES
from tests.chart.helpers import job_templates, profile_values, render_chart

KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]

# Every optional block switched on at once, so one render covers them all.
EVERYTHING_ON = {
    "prefectServer": {
        "ingress": {
            "enabled": True,
            "host": "prefect.example.com",
            "className": "nginx",
            "annotations": {"a": "b"},
            "tls": [{"secretName": "tls", "hosts": ["h"]}],
            "basicAuth": {"enabled": True, "existingSecret": "auth"},
        },
        "apollo": {"service": {"type": "NodePort", "nodePort": 30420, "allowExternal": True}},
        "hasura": {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]},
    },
    "dask": {
        "workerGroups": [
            {
                "name": "highmem",
                "nodeSelector": {"pool": "big"},
                "tolerations": [{"key": "big", "operator": "Equal", "value": "1"}],
            }
        ],
        "scheduler": {"podMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    },
    "daskOperator": {"upgradeCRDs": True},
    "agent": {
        "jobPresets": {
            "gpu-a100": {
                "resources": {
                    "requests": {"cpu": "1", "memory": "1Gi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
                "activeDeadlineSeconds": 600,
            }
        }
    },
    "imagePullSecrets": ["regcred"],
    "commonLabels": {"team": "materials"},
}
EVERYTHING_ON["prefectServer"]["retention"] = {"enabled": True}

VALUE_SETS = {
    "defaults": {},
    "everything-on": EVERYTHING_ON,
    **{profile: profile_values(profile) for profile in PROFILES},
}

# Removed or deprecated API versions this chart must never use.
DEPRECATED = {
    "extensions/v1beta1",
    "apps/v1beta1",
    "apps/v1beta2",
    "batch/v1beta1",
    "networking.k8s.io/v1beta1",
    "policy/v1beta1",
    "rbac.authorization.k8s.io/v1beta1",
    "autoscaling/v2beta1",
    "autoscaling/v2beta2",
    "apiextensions.k8s.io/v1beta1",
}


# Schemas of other CRDs the chart may render, kept next to the tests (no network at test time).
LOCAL_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): Path(__file__).parent / "schemas/podmonitor.json",
}


@functools.cache
def dask_crd_schemas() -> dict[str, dict]:
    import dask_kubernetes

    crds = (
        Path(dask_kubernetes.__file__).parent
        / "operator/deployment/helm/dask-kubernetes-operator/crds"
    )
    schemas = {}
    for path in crds.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            api = f"{crd['spec']['group']}/{version['name']}"
            schemas[(api, crd["spec"]["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def all_objects(docs):
    """The rendered objects plus the flow-run Job templates kept in the agent's ConfigMap."""
    objects = list(docs)
    if any(
        d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("job-templates") for d in docs
    ):
        for template in job_templates(docs).values():
            objects.append({**template, "metadata": {"name": "flow-run", **template["metadata"]}})
    return objects


@pytest.mark.parametrize("name", VALUE_SETS)
def test_objects_validate(name):
    problems = []
    for doc in all_objects(render_chart(VALUE_SETS[name])):
        label = f"{doc['kind']}/{doc['metadata']['name']}"
        crd_schema = dask_crd_schemas().get((doc["apiVersion"], doc["kind"]))
        local = LOCAL_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if local:
            try:
                jsonschema.validate(doc, json.loads(local.read_text()))
            except jsonschema.ValidationError as error:
                problems.append(f"{label}: {error.message}")
            continue
        if doc["apiVersion"].startswith("kubernetes.dask.org/"):
            assert crd_schema, f"no Dask CRD schema for {label}"
            try:
                jsonschema.validate({k: v for k, v in doc.items() if k != "metadata"}, crd_schema)
            except jsonschema.ValidationError as error:
                problems.append(f"{label}: {error.message}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(f"{label} (k8s {version}): {error.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_no_deprecated_api_versions(name):
    used = {doc["apiVersion"] for doc in all_objects(render_chart(VALUE_SETS[name]))}
    assert not used & DEPRECATED
