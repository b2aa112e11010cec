"""The hook Jobs' own code (files/kube_hook.py, exactly as rendered into the Jobs) against a small
fake Kubernetes API: what it reads, what it deletes or patches, and when it gives up."""

import json
import os
import subprocess
import sys

import pytest

from tests.chart.helpers import find, render_chart
from tests.support.http import JsonHandler, StandIn

CLUSTER = "/apis/kubernetes.dask.org/v1/namespaces/lab/daskclusters/lab-a-simmate-dask"
APOLLO = "/apis/apps/v1/namespaces/lab/deployments/lab-a-simmate-apollo"


class FakeApi(StandIn):
    """Objects by path; DELETE marks one as terminating for `linger` more GETs, then gone."""

    def __init__(self, objects, linger=2):
        self.objects, self.linger, self.calls = objects, linger, []
        self.terminating = {}
        api = self

        class Handler(JsonHandler):
            def _send(self, status, body=None):
                self.reply(status, body or {"kind": "Status", "code": status})

            def _body(self):
                body = self.body()
                return json.loads(body) if body else None

            def do_GET(self):
                api.calls.append(("GET", self.path, None, self.headers.get("Authorization")))
                if self.path in api.terminating:
                    api.terminating[self.path] -= 1
                    if api.terminating[self.path] < 0:
                        del api.terminating[self.path]
                        api.objects.pop(self.path, None)
                if self.path not in api.objects:
                    return self._send(404)
                self._send(200, api.objects[self.path])

            def do_DELETE(self):
                api.calls.append(("DELETE", self.path, self._body(), None))
                if self.path not in api.objects:
                    return self._send(404)
                api.terminating[self.path] = api.linger
                self._send(200, api.objects[self.path])

            def do_PATCH(self):
                body = self._body()
                api.calls.append(("PATCH", self.path, body, self.headers.get("Content-Type")))
                obj = api.objects.get(self.path)
                if obj is None:
                    return self._send(404)
                obj["metadata"]["generation"] += 1
                template = obj["spec"]["template"].setdefault("metadata", {})
                template.setdefault("annotations", {}).update(
                    body["spec"]["template"]["metadata"]["annotations"]
                )
                self._send(200, obj)

        super().__init__(Handler)


@pytest.fixture
def sa_dir(tmp_path):
    (tmp_path / "token").write_text("secret-token\n")
    return tmp_path


def hook_job(suffix, values=None):
    docs = render_chart(values, release="lab-a", namespace="lab")
    return find(docs, "Job", suffix)["spec"]["template"]["spec"]["containers"][0]


def run_hook(container, api, sa_dir, timeout=5):
    """Run the container's args with its env (values only), against the fake API."""
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(NAMESPACE="lab", TIMEOUT_SECONDS=str(timeout), POLL_SECONDS="0.05",
               SIMMATE_KUBE_API=api.url, SIMMATE_SA_DIR=str(sa_dir),
               PATH=os.environ["PATH"])
    args = container["args"]
    assert args[:2] == ["python", "-c"]
    return subprocess.run([sys.executable, "-c", *args[2:]], env=env, capture_output=True,
                          text=True, timeout=60)


def cluster_object(checksum):
    annotations = {} if checksum is None else {"simmate-k8s.io/spec-checksum": checksum}
    return {"metadata": {"name": "lab-a-simmate-dask", "annotations": annotations}}


def test_unchanged_spec_keeps_the_cluster(sa_dir):
    container = hook_job("-dask-recreate")
    wanted = {e["name"]: e.get("value") for e in container["env"]}["SPEC_CHECKSUM"]
    api = FakeApi({CLUSTER: cluster_object(wanted)})
    try:
        result = run_hook(container, api, sa_dir)
    finally:
        api.close()
    assert result.returncode == 0, result.stderr
    assert [c[0] for c in api.calls] == ["GET"]
    assert api.calls[0][3] == "Bearer secret-token"
    assert "unchanged" in result.stdout


@pytest.mark.parametrize("stored", ["0123456789abcdef", None])
def test_changed_or_unknown_spec_deletes_in_the_foreground_and_waits(sa_dir, stored):
    container = hook_job("-dask-recreate", {"image": {"tag": "0.1.1"}})
    api = FakeApi({CLUSTER: cluster_object(stored)}, linger=3)
    try:
        result = run_hook(container, api, sa_dir)
    finally:
        api.close()
    assert result.returncode == 0, result.stderr
    methods = [c[0] for c in api.calls]
    assert methods[:2] == ["GET", "DELETE"] and methods.count("GET") >= 4  # waited until gone
    assert api.calls[1][2]["propagationPolicy"] == "Foreground"
    assert CLUSTER not in api.objects and "deleted" in result.stdout


def test_missing_cluster_is_fine(sa_dir):
    api = FakeApi({})
    try:
        result = run_hook(hook_job("-dask-recreate"), api, sa_dir)
    finally:
        api.close()
    assert result.returncode == 0 and [c[0] for c in api.calls] == ["GET"]


def test_a_cluster_that_never_goes_fails_the_upgrade_with_a_hint(sa_dir):
    api = FakeApi({CLUSTER: cluster_object("old")}, linger=10**6)
    try:
        result = run_hook(hook_job("-dask-recreate"), api, sa_dir, timeout=1)
    finally:
        api.close()
    assert result.returncode != 0 and "dask operator running" in result.stderr


def test_apollo_restart_patches_the_template_and_waits_for_the_rollout(sa_dir):
    deployment = {
        "metadata": {"name": "lab-a-simmate-apollo", "generation": 4},
        "spec": {"replicas": 1, "template": {"metadata": {}}},
        "status": {"observedGeneration": 4, "replicas": 1, "updatedReplicas": 1,
                   "availableReplicas": 1},
    }
    api = FakeApi({APOLLO: deployment})
    container = hook_job("-apollo-restart")
    original_get = api.server.RequestHandlerClass.do_GET
    gets = {"n": 0}

    def rolling_get(handler):
        # The new pod becomes available on the third look, as a rollout would.
        gets["n"] += 1
        if gets["n"] >= 3:
            deployment["status"]["observedGeneration"] = deployment["metadata"]["generation"]
        original_get(handler)

    api.server.RequestHandlerClass.do_GET = rolling_get
    try:
        result = run_hook(container, api, sa_dir)
    finally:
        api.close()
    assert result.returncode == 0, result.stderr
    method, path, body, content_type = api.calls[0]
    assert (method, path) == ("PATCH", APOLLO)
    assert content_type == "application/strategic-merge-patch+json"
    assert "simmate-k8s.io/restarted-at" in body["spec"]["template"]["metadata"]["annotations"]
    assert gets["n"] >= 3 and "available" in result.stdout
