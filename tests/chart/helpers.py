"""Render the chart with the real helm binary; parsed documents, cached per distinct values."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "simmate"
RELEASE = "rel"
NAMESPACE = "sim"
# The cloud profiles leave image.repository empty on purpose (the cluster pulls from a registry).
REGISTRY_SET = "image.repository=registry.example.com/team/simmate-k8s"
CLOUD_PROFILES = ("gke", "digitalocean")


class RenderError(Exception):
    """helm refused to render; the message is helm's stderr."""


def find_tool(name: str) -> str:
    """Repo-local .tools/bin first, then PATH. Missing tools fail the tests (never skip)."""
    local = ROOT / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/install-chart-tools.sh")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HELM_NO_PLUGINS": "1", "HELM_CACHE_HOME": str(ROOT / ".tools/helm-cache")}
    result = subprocess.run([find_tool("helm"), *args], capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return result


@functools.cache
def ensure_dependencies() -> None:
    """Package the Dask operator chart from the installed dask-kubernetes (offline)."""
    script = ROOT / "scripts" / "package-dask-operator-chart.py"
    subprocess.run([sys.executable, str(script)], check=True, capture_output=True)


@functools.cache
def _render(
    values_json: str, show_only: tuple[str, ...], release: str, namespace: str
) -> tuple[dict, ...]:
    ensure_dependencies()
    args = ["template", release, str(CHART), "--namespace", namespace, "-f", "-"]
    for template in show_only:
        args += ["--show-only", template]
    env = {**os.environ, "HELM_NO_PLUGINS": "1"}
    result = subprocess.run(
        [find_tool("helm"), *args], input=values_json, capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: list[str] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict]:
    """``helm template`` with these values; returns the parsed objects (copies, safe to change)."""
    key = json.dumps(values or {}, sort_keys=True)
    docs = _render(key, tuple(show_only or ()), release, namespace)
    return json.loads(json.dumps(list(docs)))


def profile_values(profile: str) -> dict[str, Any]:
    """`simmate-k8s values --profile P` (plus a registry for the cloud profiles)."""
    from simmate_k8s.values.render import build_values

    return build_values(profile, sets=(REGISTRY_SET,) if profile in CLOUD_PROFILES else ())


def find(docs: list[dict], kind: str, name_suffix: str = "") -> dict:
    """The one object of this kind whose name ends with the suffix."""
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, (
        f"expected one {kind} *{name_suffix}, got {[m['metadata']['name'] for m in matches]}"
    )
    return matches[0]


def kinds(docs: list[dict]) -> set[str]:
    return {doc["kind"] for doc in docs}


def pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """(label, pod spec) for every pod template inside an object, including Dask CRs and the
    flow-run Job templates stored in the agent's ConfigMap."""
    kind = doc["kind"]
    name = f"{kind}/{doc['metadata']['name']}"
    if kind in ("Deployment", "StatefulSet", "Job"):
        return [(name, doc["spec"]["template"]["spec"])]
    if kind == "CronJob":
        return [(name, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(name, doc["spec"])]
    if kind == "DaskCluster":
        return [
            (f"{name}/scheduler", doc["spec"]["scheduler"]["spec"]),
            (f"{name}/worker", doc["spec"]["worker"]["spec"]),
        ]
    if kind == "DaskWorkerGroup":
        return [(f"{name}/worker", doc["spec"]["worker"]["spec"])]
    if kind == "ConfigMap" and name.endswith("job-templates"):
        return [
            (f"{name}/{key}", template["spec"]["template"]["spec"])
            for key, template in job_templates([doc]).items()
        ]
    return []


def pod_templates(doc: dict) -> list[tuple[str, dict, dict]]:
    """(label, pod metadata, pod spec) for every pod template inside an object, as pod_specs."""
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "Job"):
        templates = [doc["spec"]["template"]]
    elif kind == "CronJob":
        templates = [doc["spec"]["jobTemplate"]["spec"]["template"]]
    elif kind == "Pod":
        templates = [doc]
    elif kind == "DaskCluster":
        templates = [doc["spec"]["scheduler"], doc["spec"]["worker"]]
    elif kind == "DaskWorkerGroup":
        templates = [doc["spec"]["worker"]]
    elif kind == "ConfigMap" and doc["metadata"]["name"].endswith("job-templates"):
        templates = [job["spec"]["template"] for job in job_templates([doc]).values()]
    else:
        return []
    names = [name for name, _ in pod_specs(doc)]
    return [
        (name, t.get("metadata", {}), t["spec"]) for name, t in zip(names, templates, strict=True)
    ]


def job_templates(docs: list[dict]) -> dict[str, dict]:
    """`<preset>.yaml` -> parsed Job template (the ConfigMap's other keys are plain values)."""
    config_map = find(docs, "ConfigMap", "-job-templates")
    data = config_map["data"]
    return {key: yaml.safe_load(text) for key, text in data.items() if key.endswith(".yaml")}


def hook(doc: dict) -> str:
    """The helm.sh/hook annotation of an object ('' for ordinary release objects)."""
    return (doc["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
