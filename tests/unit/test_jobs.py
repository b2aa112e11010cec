"""`submit --backend job`: the Job objects, checked against the Kubernetes schemas."""

import json

import kubernetes_validate
import pytest
import yaml

from simmate_k8s import jobs
from tests.conftest import EXAMPLES, run_cli

KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]
POSCARS = sorted(EXAMPLES.glob("*.POSCAR"))


def dry_run(env, *args):
    result = run_cli("submit", "relaxation_emt", *POSCARS[:2], "--backend", "job", "--dry-run",
                     *args, env=env)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


@pytest.fixture
def no_kube(cli_env, tmp_path):
    return {**cli_env, "KUBECONFIG": str(tmp_path / "missing-kubeconfig")}


def test_objects_are_schema_valid(no_kube):
    for obj in dry_run(no_kube, "--preset", "large"):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_job_runs_the_workflow_against_the_release_scheduler(no_kube):
    configmap, job = dry_run(no_kube, "--namespace", "science", "--release", "prod",
                             "--param", "fmax=0.02")
    assert (configmap["kind"], job["kind"]) == ("ConfigMap", "Job")
    assert job["metadata"]["namespace"] == configmap["metadata"]["namespace"] == "science"
    assert job["metadata"]["name"].startswith("prod-relaxation-emt-")
    assert configmap["metadata"]["name"] == job["metadata"]["name"] + "-inputs"
    assert sorted(configmap["data"].values()) == sorted(p.read_text() for p in POSCARS[:2])
    assert configmap["immutable"] is True
    (container,) = job["spec"]["template"]["spec"]["containers"]
    address = "tcp://prod-dask-scheduler.science.svc:8786"
    args = container["args"]
    assert args[:3] == ["simmate-k8s", "run", "relaxation_emt"]
    inputs = [f"/inputs/{key}" for key in configmap["data"]]
    assert [a for a in args if a.startswith("/inputs/")] == inputs
    assert args[args.index("--address") + 1] == address
    assert args[args.index("--param") + 1] == "fmax=0.02"
    assert container["image"] == "simmate-k8s:0.1.0"
    assert {"name": "inputs", "mountPath": "/inputs", "readOnly": True} in container["volumeMounts"]
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "prod"
    assert labels["app.kubernetes.io/component"] == "flow-run"


def test_pod_is_locked_down(no_kube):
    _, job = dry_run(no_kube)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] > 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "HOME", "value": "/tmp/home"} in container["env"]
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_presets_follow_the_chart_defaults(no_kube):
    from simmate_k8s.values.model import default_presets

    for preset in ("default", "small", "large"):
        _, job = dry_run(no_kube, "--preset", preset)
        resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources == default_presets()[preset].resources.model_dump(mode="json")


def test_json_dry_run_and_run_name(no_kube):
    result = run_cli("submit", "smoke", "--backend", "job", "--dry-run", "--json",
                     "--run-name", "smoke-check", env=no_kube)
    configmap, job = json.loads(result.stdout)
    assert job["metadata"]["name"] == "smoke-check" and configmap["data"] == {}


@pytest.mark.parametrize("args", [
    ["relaxation_emt", "--run-name", "Not_A_Name"],
    ["relaxation_emt", "--label", "gpu"],
    ["relaxation_emt", "--idempotency-key", "k"],
])
def test_bad_job_options(no_kube, args):
    result = run_cli("submit", *args[:1], POSCARS[0], *args[1:], "--backend", "job",
                     "--dry-run", env=no_kube)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_inputs_too_large_for_a_configmap(tmp_path):
    big = tmp_path / "big.POSCAR"
    big.write_text("x" * (jobs.MAX_INPUT_BYTES + 1))
    with pytest.raises(jobs.UserError, match="KiB"):
        jobs.input_files([big])


def test_no_kube_context_is_one_line(no_kube):
    result = run_cli("submit", "relaxation_emt", POSCARS[0], "--backend", "job", env=no_kube)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: no Kubernetes context")
    assert len(result.stderr.strip().splitlines()) == 1


class FakeApi:
    """Records what create() does; `fail` names the call that raises."""

    def __init__(self, fail=None):
        self.fail, self.calls = fail, []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append(name)
            if name == self.fail:
                from kubernetes.client.exceptions import ApiException

                raise ApiException(status=403, reason="Forbidden")
            if name == "create_namespaced_job":
                class Created:
                    def to_dict(self):
                        return {"metadata": {"name": args[1]["metadata"]["name"], "uid": "u-1"}}
                return Created()
        return call


def spec():
    return jobs.JobSpec("smoke", {}, [], "simmate", "default", "simmate-k8s:0.1.0", "default",
                        "simmate-smoke-abc123")


def test_create_makes_the_job_own_its_inputs(monkeypatch):
    api = FakeApi()
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    jobs.create(spec())
    assert api.calls == ["create_namespaced_config_map", "create_namespaced_job",
                         "patch_namespaced_config_map"]


def test_create_leaves_nothing_behind_on_failure(monkeypatch):
    api = FakeApi(fail="create_namespaced_job")
    monkeypatch.setattr(jobs, "_api", lambda context: (api, api))
    with pytest.raises(jobs.UserError, match="403 Forbidden"):
        jobs.create(spec())
    assert api.calls[-1] == "delete_namespaced_config_map"


def _pod(phase, waiting=None):
    from types import SimpleNamespace as NS

    state = NS(waiting=NS(reason=waiting, message="tag not found") if waiting else None)
    return NS(metadata=NS(name="job-pod"),
              status=NS(phase=phase, container_statuses=[NS(state=state)]))


class FakeCluster:
    """A Job that runs one pod, printing two log lines, then succeeds (or a stuck pod)."""

    def __init__(self, pods):
        from types import SimpleNamespace as NS

        self.pods = list(pods)
        self.statuses = [NS(succeeded=None, failed=None)] * (len(pods) - 1) + [
            NS(succeeded=1, failed=None)]
        self.index = -1

    def read_namespaced_job_status(self, name, namespace):
        from types import SimpleNamespace as NS

        self.index = min(self.index + 1, len(self.pods) - 1)
        return NS(status=self.statuses[self.index])

    def list_namespaced_pod(self, namespace, label_selector):
        from types import SimpleNamespace as NS

        assert label_selector == "job-name=simmate-smoke-abc123"
        return NS(items=[self.pods[self.index]])

    def read_namespaced_pod_log(self, name, namespace, follow, _preload_content):
        return iter([b"line one\n", b"line two\n"])


def test_watch_streams_the_log_once_and_reports_success(monkeypatch):
    cluster = FakeCluster([_pod("Pending"), _pod("Running"), _pod("Succeeded")])
    monkeypatch.setattr(jobs, "_api", lambda context: (cluster, cluster))
    lines = []
    assert jobs.watch(spec(), echo=lines.append, poll=0) is True
    assert lines == ["line one", "line two"]


def test_watch_stops_on_a_pod_that_cannot_start(monkeypatch):
    cluster = FakeCluster([_pod("Pending", waiting="ImagePullBackOff"), _pod("Pending")])
    monkeypatch.setattr(jobs, "_api", lambda context: (cluster, cluster))
    lines = []
    assert jobs.watch(spec(), echo=lines.append, poll=0) is False
    assert "ImagePullBackOff" in lines[0]
