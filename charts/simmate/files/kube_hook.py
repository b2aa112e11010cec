"""The chart's Kubernetes-API hook Jobs: a tiny in-cluster client, Python standard library only.

The hook Jobs run it as `python -c "<this file>" COMMAND` in the project image, with the pod's
projected service-account token (each hook has its own ServiceAccount and a Role that allows only
the calls below, on one named object).

  recreate-daskcluster  pre-upgrade/pre-rollback: delete the DaskCluster $DASK_CLUSTER when its
                        annotation simmate-k8s.io/spec-checksum differs from $SPEC_CHECKSUM, in the
                        foreground (scheduler, workers, worker groups and autoscaler go first) and
                        wait until it is gone; Helm then creates it again with the new spec. The
                        dask operator never updates the pods of an existing DaskCluster.
  restart-deployment    post-install/post-upgrade: rolling-restart the Deployment $DEPLOYMENT (as
                        `kubectl rollout restart` does) and wait until the new pods are available.

Env: NAMESPACE, TIMEOUT_SECONDS (default 300). SIMMATE_KUBE_API and SIMMATE_SA_DIR replace the
API URL and the token folder (the chart tests run this file against a fake API server).
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

SA_DIR = os.environ.get("SIMMATE_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
CHECKSUM_KEY = "simmate-k8s.io/spec-checksum"
RESTARTED_KEY = "simmate-k8s.io/restarted-at"


def api_url():
    if os.environ.get("SIMMATE_KUBE_API"):
        return os.environ["SIMMATE_KUBE_API"].rstrip("/")
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def call(method, path, body=None, content_type="application/json"):
    """(HTTP status, parsed body); 404 is an answer, any other error ends the hook."""
    with open(os.path.join(SA_DIR, "token")) as handle:
        token = handle.read().strip()
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api_url() + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", content_type)
    context = None
    if request.full_url.startswith("https://"):
        context = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return 404, None
        detail = error.read().decode(errors="replace")[:500]
        raise SystemExit(f"{method} {path}: HTTP {error.code}: {detail}") from None


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(float(os.environ.get("POLL_SECONDS", "2")))
    raise SystemExit(f"timed out after {timeout} s waiting for {what}")


def recreate_daskcluster(namespace, timeout):
    name, wanted = os.environ["DASK_CLUSTER"], os.environ["SPEC_CHECKSUM"]
    path = f"/apis/kubernetes.dask.org/v1/namespaces/{namespace}/daskclusters/{name}"
    status, cluster = call("GET", path)
    if status == 404:
        print(f"DaskCluster {name}: not there, nothing to replace")
        return
    current = (cluster["metadata"].get("annotations") or {}).get(CHECKSUM_KEY)
    if current == wanted:
        print(f"DaskCluster {name}: spec unchanged ({wanted}), kept")
        return
    print(f"DaskCluster {name}: spec {current or '(none)'} -> {wanted}: re-creating it")
    options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
    call("DELETE", path, options)
    wait_for(lambda: call("GET", path)[0] == 404, timeout,
             f"DaskCluster {name} to go (is the dask operator running? it removes its finalizer)")
    print(f"DaskCluster {name}: deleted")


def restart_deployment(namespace, timeout):
    name = os.environ["DEPLOYMENT"]
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_KEY: now}}}}}
    status, deployment = call("PATCH", path, patch, "application/strategic-merge-patch+json")
    if status == 404:
        raise SystemExit(f"Deployment {name} not found")
    generation = deployment["metadata"].get("generation", 0)
    print(f"Deployment {name}: restarted at {now}")

    def rolled_out():
        _, current = call("GET", path)
        state = current.get("status") or {}
        want = current["spec"].get("replicas", 1)
        return (
            state.get("observedGeneration", 0) >= generation
            and state.get("updatedReplicas", 0) == want
            and state.get("replicas", 0) == want
            and state.get("availableReplicas", 0) >= want
        )

    wait_for(rolled_out, timeout, f"Deployment {name} to roll out")
    print(f"Deployment {name}: available")


COMMANDS = {"recreate-daskcluster": recreate_daskcluster, "restart-deployment": restart_deployment}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise SystemExit(f"usage: kube_hook.py {'|'.join(COMMANDS)}")
    namespace = os.environ.get("NAMESPACE")
    if not namespace:
        with open(os.path.join(SA_DIR, "namespace")) as handle:
            namespace = handle.read().strip()
    COMMANDS[argv[1]](namespace, int(os.environ.get("TIMEOUT_SECONDS", "300")))


if __name__ == "__main__":
    main(sys.argv)
