"""The cluster tier: any real Kubernetes cluster (current KUBECONFIG context) with the chart
installed as release $RELEASE in namespace $NAMESPACE.

`make cluster-test` runs it (E2E=prefect or E2E=jobs selects one flow-run path); `make kind-test`
creates a kind cluster, loads the image and installs the chart around it. Every object is found
by its labels (app.kubernetes.io/instance + component), never by a name rule. On any failure the
cluster's state is dumped (objects, events, logs).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.postgres import free_port

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = os.environ.get("NAMESPACE", "simmate")
RELEASE = os.environ.get("RELEASE", "lab")


def sh(*args, check=True, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def by_label(kind: str, component: str) -> str:
    """`kind/name` of the release's one object of this component, asked from the cluster."""
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
    names = sh("kubectl", "-n", NAMESPACE, "get", kind, "-l", selector, "-o", "name").stdout.split()
    assert len(names) == 1, f"expected one {kind} with {selector}, found {names}"
    return names[0]


def job_template(preset: str = "default") -> dict:
    """The flow-run Job template the release's agent uses (its job-templates ConfigMap)."""
    import yaml

    configmap = by_label("configmap", "job-templates")
    text = sh("kubectl", "-n", NAMESPACE, "get", configmap, "-o",
              f"jsonpath={{.data.{preset}\\.yaml}}").stdout
    return yaml.safe_load(text)


@contextlib.contextmanager
def port_forward(target: str, remote_port: int):
    local = free_port()
    process = subprocess.Popen(
        ["kubectl", "-n", NAMESPACE, "port-forward", target, f"{local}:{remote_port}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", local), 1):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"port-forward to {target} did not open")
        yield local
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def dump_cluster_state() -> str:
    commands = [
        ["kubectl", "get", "all,daskclusters,daskworkergroups,daskautoscalers,pvc", "-A", "-o",
         "wide"],
        ["kubectl", "get", "events", "-A", "--sort-by=.lastTimestamp"],
        ["kubectl", "-n", NAMESPACE, "logs", "-l", f"app.kubernetes.io/instance={RELEASE}",
         "--all-containers", "--prefix", "--tail=200", "--max-log-requests=30"],
        ["helm", "-n", NAMESPACE, "status", RELEASE],
    ]
    parts = []
    for command in commands:
        result = sh(*command, check=False, timeout=120)
        parts.append(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    return "\n".join(parts)


@pytest.fixture(autouse=True)
def _dump_on_failure(request):
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print("\n===== cluster state after failure =====\n" + dump_cluster_state())


@pytest.fixture(scope="session")
def cluster():
    """The installed release, rolled out (no kind needed: any cluster in KUBECONFIG)."""
    missing = [tool for tool in ("kubectl", "helm") if not shutil.which(tool)]
    if missing:
        pytest.fail(f"the cluster tier needs {', '.join(missing)} on PATH (README, 'cluster')")
    try:
        status = sh("helm", "-n", NAMESPACE, "status", RELEASE, check=False)
        if status.returncode != 0:
            pytest.fail(f"no release {RELEASE!r} in namespace {NAMESPACE!r}: install the chart "
                        f"(`make kind-install RELEASE={RELEASE}` or helm install), or set RELEASE "
                        f"and NAMESPACE")
        for kind in ("deployment", "statefulset"):
            names = sh("kubectl", "-n", NAMESPACE, "get", kind, "-l",
                       f"app.kubernetes.io/instance={RELEASE}", "-o", "name").stdout.split()
            for name in names:
                sh("kubectl", "-n", NAMESPACE, "rollout", "status", name, "--timeout=600s")
        sh("kubectl", "-n", NAMESPACE, "wait", "pod", "-l",
           f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=dask-scheduler",
           "--for=condition=Ready", "--timeout=300s")
    except AssertionError:
        print(dump_cluster_state())
        raise
    return {"namespace": NAMESPACE, "release": RELEASE}


@pytest.fixture(scope="session")
def prefect_env(cluster, tmp_path_factory):
    """Environment for simmate-k8s pointing at Prefect Server through a port-forward."""
    with port_forward(by_label("service", "apollo"), 4200) as port:
        api = f"http://127.0.0.1:{port}/graphql"
        _wait_for_prefect_schema(api)
        env = {**os.environ, "PREFECT__CLOUD__API": api,
               "HOME": str(tmp_path_factory.mktemp("home"))}
        yield env


def _wait_for_prefect_schema(api: str, timeout: float = 600) -> None:
    """Apollo reads the schema once at start; until the migration hook has run and apollo has been
    restarted by its liveness probe, Prefect's tables are missing from its API."""
    import requests

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            answer = requests.post(api, json={"query": "{ flow_run(limit: 0) { id } }"},
                                   timeout=10)
            if answer.ok and not answer.json().get("errors"):
                return
            last = answer.text[:300]
        except requests.RequestException as error:
            last = str(error)
        time.sleep(5)
    raise AssertionError(f"Prefect API at {api} not ready after {timeout:g} s: {last}")


def secret_value(ref: dict) -> str:
    encoded = sh("kubectl", "-n", NAMESPACE, "get", "secret", ref["name"],
                 "-o", f"jsonpath={{.data.{ref['key']}}}").stdout
    return base64.b64decode(encoded).decode()


def resolved_env(container: dict, name: str) -> str:
    """A variable as the pod sees it: from its Secret, or its value with the $(VAR) references
    to earlier Secret-backed variables expanded, as Kubernetes does (the chart's URLs)."""
    env = {e["name"]: e for e in container["env"]}

    def value(variable: dict) -> str:
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            return secret_value(ref)
        return re.sub(r"\$\((\w+)\)", lambda m: value(env[m.group(1)]), variable["value"])

    return value(env[name])


@pytest.fixture(scope="session")
def results_db_url(cluster):
    """The results-DB URL the flow-run pods get (the writer role's, from the job template),
    reached through a port-forward to the release's PostgreSQL Service."""
    container = job_template()["spec"]["template"]["spec"]["containers"][0]
    url = resolved_env(container, "SIMMATE_DATABASE_URL")
    with port_forward(by_label("service", "postgresql"), 5432) as port:
        from sqlalchemy.engine import make_url

        yield make_url(url).set(host="127.0.0.1", port=port).render_as_string(
            hide_password=False)
