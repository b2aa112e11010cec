"""The Job backend behind `status`, `logs` and `submit --watch` (`--backend job`): a Job's state
comes from its conditions, its logs from its own pods. The Jobs are the ones `submit --backend
job` makes from the chart's rendered job template, with the fields and status the API server
adds, and the fake API hands them out through the kubernetes client's own deserializer, as the
real client does."""

import copy
import json

import pytest
import yaml
from click.testing import CliRunner

from simmate_k8s import backends, jobs
from simmate_k8s.backends.kube_job import JobBackend, job_status
from simmate_k8s.cli import cli
from simmate_k8s.errors import InputError
from tests.unit.test_jobs import NAMESPACE, POSCARS, RELEASE, SHOW_ONLY, helm_template

NAME = "lab-a-relaxation-emt-x7k2q9"
UID = "6f9e2c1a-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
BATCH = "0c8b2f7e-5d1a-4b6c-9e3f-2a1b0c9d8e7f"
T0, T1, T2 = "2025-05-01T10:00:00Z", "2025-05-01T10:00:07Z", "2025-05-01T10:03:21Z"


# --- Jobs and pods as the API serves them --------------------------------------------------------


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    path = tmp_path_factory.mktemp("release") / "job-templates.yaml"
    path.write_text(helm_template("--show-only", SHOW_ONLY))
    return jobs.release_from_file(str(path), RELEASE, NAMESPACE)


@pytest.fixture(scope="module")
def created(release):
    """The Job `submit --backend job` creates, as the API server stores it."""
    spec = jobs.JobSpec(flow_name="relaxation_emt", inputs=jobs.input_files(
        [(str(POSCARS[0]), POSCARS[0].read_text())]), params=[], release=release, image=None,
        preset="small", name=NAME, batch_id=BATCH, items=1)
    job = jobs.build_job(spec)
    job["metadata"].update(uid=UID, creationTimestamp=T0, resourceVersion="4242", generation=1)
    selector = {"batch.kubernetes.io/controller-uid": UID}
    job["spec"].update(selector={"matchLabels": selector}, completions=1, parallelism=1,
                       completionMode="NonIndexed", suspend=False)
    job["spec"]["template"]["metadata"]["labels"].update(
        {**selector, "batch.kubernetes.io/job-name": NAME, "controller-uid": UID,
         "job-name": NAME})
    return job


def with_status(job, **status):
    return {**copy.deepcopy(job), "status": status}


def condition(kind, reason=None, message=None, at=T2):
    found = {"type": kind, "status": "True", "lastProbeTime": at, "lastTransitionTime": at}
    return {**found, **({"reason": reason} if reason else {}),
            **({"message": message} if message else {})}


RUNNING = {"active": 1, "ready": 1, "startTime": T1, "terminating": 0,
           "uncountedTerminatedPods": {}}
COMPLETE = {"completionTime": T2, "conditions": [condition("Complete")], "ready": 0,
            "startTime": T1, "succeeded": 1, "terminating": 0, "uncountedTerminatedPods": {}}
# Kubernetes 1.31+: SuccessCriteriaMet / FailureTarget come before the terminal condition
COMPLETE_131 = {**COMPLETE, "conditions": [
    condition("SuccessCriteriaMet", "CompletionsReached",
              "Reached expected number of succeeded pods"),
    condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]}
BACKOFF = {"conditions": [
    condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff "
              "limit"),
    condition("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")],
    "failed": 1, "ready": 0, "startTime": T1, "terminating": 0, "uncountedTerminatedPods": {}}
DEADLINE = {"conditions": [condition("Failed", "DeadlineExceeded",
                                     "Job was active longer than specified deadline")],
            "failed": 1, "startTime": T1}


def pod(job, suffix, phase, created_at=T1, waiting=None, exit_code=None, uid=UID):
    """A pod of the Job as the Job controller makes it (its template, its labels)."""
    template = copy.deepcopy(job["spec"]["template"])
    labels = {**template["metadata"]["labels"], "batch.kubernetes.io/controller-uid": uid,
              "controller-uid": uid}
    container = template["spec"]["containers"][0]
    if waiting:
        state = {"waiting": {"reason": waiting, "message": f'Back-off pulling image '
                                                          f'"{container["image"]}"'}}
    elif exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": "Error" if exit_code else
                                "Completed", "startedAt": created_at, "finishedAt": T2}}
    else:
        state = {"running": {"startedAt": created_at}} if phase == "Running" else {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{NAME}-{suffix}", "namespace": NAMESPACE, "labels": labels,
                     "creationTimestamp": created_at, "ownerReferences": [{
                         "apiVersion": "batch/v1", "kind": "Job", "name": NAME, "uid": uid,
                         "controller": True, "blockOwnerDeletion": True}]},
        "spec": {**template["spec"], "nodeName": "node-1"},
        "status": {"phase": phase, "containerStatuses": [{
            "name": container["name"], "image": container["image"], "imageID": "",
            "ready": phase == "Running", "restartCount": 0, "started": phase == "Running",
            "state": state}]},
    }


def model(data, kind):
    """What the kubernetes client returns for this JSON: its own deserializer's objects."""
    from kubernetes import client

    return client.ApiClient().deserialize(json.dumps(data), kind, "application/json")


class FakeKube:
    """The BatchV1/CoreV1 calls the Job backend makes. ``statuses`` and ``pods`` are scripts:
    each read takes the next entry (the last one stays)."""

    def __init__(self, jobs_=(), statuses=None, pods=None, logs=None):
        self.jobs = {job["metadata"]["name"]: job for job in jobs_}
        self.statuses = statuses or {}
        self.pods = pods or [[]]
        self.logs = logs or {}
        self.calls = []

    @staticmethod
    def _next(script):
        return script.pop(0) if len(script) > 1 else script[0]

    def read_namespaced_job(self, name, namespace):
        from kubernetes.client.exceptions import ApiException

        self.calls.append(("read_namespaced_job", name, namespace))
        job = self.jobs.get(name)
        if job is None or job["metadata"]["namespace"] != namespace:
            error = ApiException(status=404, reason="Not Found")
            error.body = json.dumps({"kind": "Status", "status": "Failure", "reason": "NotFound",
                                     "message": f'jobs.batch "{name}" not found', "code": 404})
            raise error
        if name in self.statuses:
            job = with_status(job, **self._next(self.statuses[name]))
        return model(job, "V1Job")

    def list_namespaced_pod(self, namespace, label_selector):
        self.calls.append(("list_namespaced_pod", namespace, label_selector))
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(","))
        items = [p for p in self._next(self.pods) if p["metadata"]["namespace"] == namespace
                 and p["metadata"]["labels"].items() >= wanted.items()]
        return model({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items},
                     "V1PodList")

    def read_namespaced_pod_log(self, name, namespace, container=None, follow=False,
                                _preload_content=True):
        self.calls.append(("read_namespaced_pod_log", name, container, follow))
        text = self.logs[name]
        if follow and not _preload_content:
            return iter(line.encode() for line in text.splitlines(keepends=True))
        return text


@pytest.fixture
def kube(monkeypatch, tmp_path):
    """Install a FakeKube (returned by the fixture's call) behind jobs._api; KUBECONFIG is a
    real file whose current context's namespace is the release's."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab-ctx",
        "clusters": [{"name": "lab", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "lab-ctx", "context": {"cluster": "lab", "user": "me",
                                                     "namespace": NAMESPACE}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))

    def install(fake):
        monkeypatch.setattr(jobs, "_api", lambda context: (fake, fake))
        return fake
    return install


def invoke(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def one_line(result, code=2):
    assert result.exit_code == code, (result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


# --- the state of a Job --------------------------------------------------------------------------


@pytest.mark.parametrize("status, state, message, ended", [
    ({}, "Pending", "", None),  # just created: the controller has not acted yet
    ({"active": 1, "ready": 0, "startTime": T1}, "Pending", "", None),  # its pod is starting
    (RUNNING, "Running", "", None),
    ({"active": 1, "startTime": T1}, "Running", "", None),  # a cluster without status.ready
    ({**RUNNING, "failed": 1}, "Running", "1 pod(s) failed", None),  # retrying
    (COMPLETE, "Complete", "", T2),
    (COMPLETE_131, "Complete", "CompletionsReached: Reached expected number", T2),
    (BACKOFF, "Failed", "BackoffLimitExceeded: Job has reached the specified backoff limit", T2),
    (DEADLINE, "Failed", "DeadlineExceeded: Job was active longer", T2),
    ({"conditions": [condition("FailureTarget", "DeadlineExceeded", "Job was active longer "
                               "than specified deadline")], "active": 1, "startTime": T1},
     "Failing", "Job was active longer", None),
    ({"conditions": [condition("Suspended", "JobSuspended", "Job suspended")]}, "Suspended",
     "Job suspended", None),
    # a condition that is no longer true does not count
    ({**RUNNING, "conditions": [{**condition("Suspended"), "status": "False"}]}, "Running", "",
     None),
])
def test_job_state_comes_from_its_conditions(created, status, state, message, ended):
    found = jobs.job_state(with_status(created, **status))
    assert found.state == state
    assert found.message.startswith(message) and (message or not found.message)
    assert found.ended == ended
    assert found.started == status.get("startTime")
    assert found.finished == (state in ("Complete", "Failed"))


def test_status_row_of_a_real_job(created):
    """The row and JSON from a Job in the client's own model, serialized as the API's JSON."""
    job = jobs._plain(model(with_status(created, **BACKOFF), "V1Job"))
    assert job["status"]["startTime"].startswith("2025-05-01T10:00:07")  # camelCase, RFC 3339
    row = job_status(job)
    assert (row.id, row.label, row.flow, row.state) == (NAME, BATCH, "relaxation_emt", "Failed")
    assert row.message.startswith("BackoffLimitExceeded")
    assert row.record["release"] == RELEASE and row.record["preset"] == "small"
    assert (row.record["failed"], row.record["succeeded"], row.record["active"]) == (1, 0, 0)
    assert [c["type"] for c in row.record["conditions"]] == ["FailureTarget", "Failed"]


# --- status --------------------------------------------------------------------------------------


def test_status_table_and_json(kube, created):
    other = copy.deepcopy(created)
    other["metadata"]["name"] = "nightly-2"
    api = kube(FakeKube([created, other], statuses={NAME: [COMPLETE], "nightly-2": [RUNNING]}))
    result = invoke("status", "--backend", "job", NAME, "nightly-2")  # namespace: the context's
    assert result.exit_code == 0, (result.output, result.exception)
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["JOB", "BATCH", "FLOW", "STATE", "STARTED", "ENDED", "MESSAGE"]
    assert first.split()[:4] == [NAME, BATCH, "relaxation_emt", "Complete"]
    assert "2025-05-01 10:00:07" in first and "2025-05-01 10:03:21" in first
    assert second.split()[:4] == ["nightly-2", BATCH, "relaxation_emt", "Running"]
    assert [call[1:] for call in api.calls] == [(NAME, NAMESPACE), ("nightly-2", NAMESPACE)]
    as_json = json.loads(invoke("status", "--backend", "job", "-n", NAMESPACE, "--json",
                                NAME).stdout)
    assert [(r["job"], r["state"], r["batch_id"], r["namespace"]) for r in as_json] == [
        (NAME, "Complete", BATCH, NAMESPACE)]


def test_status_of_an_unknown_job_is_one_line(kube, created):
    kube(FakeKube([created]))
    error = one_line(invoke("status", "--backend", "job", "-n", NAMESPACE, NAME, "gone-1"))
    assert f"no job/gone-1 in namespace {NAMESPACE}" in error


def test_status_refuses_a_job_of_another_release(kube, created):
    kube(FakeKube([created], statuses={NAME: [RUNNING]}))
    error = one_line(invoke("status", "--backend", "job", "--release", "lab-b", NAME))
    assert f"job/{NAME}" in error and "'lab-b'" in error and f"it is of '{RELEASE}'" in error
    assert invoke("status", "--backend", "job", "--release", RELEASE, NAME).exit_code == 0


@pytest.mark.parametrize("args, fragment", [
    (["Not_A_Job"], "'Not_A_Job' is not a Job name"),
    (["a" * 64], "is not a Job name"),
    (["--release", "Lab_A", NAME], "--release 'Lab_A'"),
    (["-n", "lab.a", NAME], "--namespace 'lab.a'"),
])
def test_bad_names_are_refused_before_any_request(kube, args, fragment):
    api = kube(FakeKube())
    for command in ("status", "logs"):
        assert fragment in one_line(invoke(command, "--backend", "job", *args))
    assert api.calls == []


# --- logs ----------------------------------------------------------------------------------------


def test_logs_are_the_job_s_own_pods(kube, created):
    """Pods are found by the Job's selector: a pod of an earlier Job with the same name (another
    uid) is not shown; a retried Job shows each pod's log under its name, oldest first."""
    stale = pod(created, "old00", "Succeeded", created_at="2025-04-30T09:00:00Z", exit_code=0,
                uid="00000000-0000-0000-0000-000000000000")
    failed = pod(created, "aaaaa", "Failed", created_at=T1, exit_code=1)
    retried = pod(created, "bbbbb", "Running", created_at="2025-05-01T10:01:00Z")
    api = kube(FakeKube([created], statuses={NAME: [RUNNING]},
                        pods=[[retried, stale, failed]],
                        logs={stale["metadata"]["name"]: "old run\n",
                              failed["metadata"]["name"]: "first try\nTraceback: boom\n",
                              retried["metadata"]["name"]: "second try\n"}))
    result = invoke("logs", "--backend", "job", NAME)
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.splitlines() == [
        f"--- pod/{NAME}-aaaaa", "first try", "Traceback: boom",
        f"--- pod/{NAME}-bbbbb", "second try"]
    (_, _, selector), = [c for c in api.calls if c[0] == "list_namespaced_pod"]
    assert selector == f"batch.kubernetes.io/controller-uid={UID}"
    assert {c[2] for c in api.calls if c[0] == "read_namespaced_pod_log"} == {"flow"}


def test_logs_of_one_pod_have_no_header(kube, created):
    done = pod(created, "aaaaa", "Succeeded", exit_code=0)
    kube(FakeKube([created], statuses={NAME: [COMPLETE]}, pods=[[done]],
                  logs={done["metadata"]["name"]: "relaxed 1 of 1\n"}))
    assert invoke("logs", "--backend", "job", NAME).stdout == "relaxed 1 of 1\n"


def test_logs_before_a_pod_started(kube, created):
    waiting = pod(created, "aaaaa", "Pending", waiting="ImagePullBackOff")
    kube(FakeKube([created], statuses={NAME: [{"active": 1, "ready": 0, "startTime": T1}]},
                  pods=[[waiting]]))
    result = invoke("logs", "--backend", "job", NAME)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"job/{NAME} is Pending: no pod has started yet"


# --- following -----------------------------------------------------------------------------------


def running_then(created, final, phase):
    """A Job whose pod starts, runs (its log streams) and ends with the Job ``final``."""
    starting = pod(created, "aaaaa", "Pending")
    running = pod(created, "aaaaa", "Running")
    ended = pod(created, "aaaaa", phase, exit_code=0 if phase == "Succeeded" else 1)
    return FakeKube([created],
                    statuses={NAME: [{"active": 1, "ready": 0, "startTime": T1}, RUNNING, final]},
                    pods=[[starting], [running], [ended]],
                    logs={running["metadata"]["name"]: "10:00:08 | INFO | relaxing\nline two\n"})


@pytest.mark.parametrize("final, phase, code", [(COMPLETE, "Succeeded", 0),
                                               (BACKOFF, "Failed", 1)])
def test_logs_follow_streams_once_and_exits_on_the_job_s_end(kube, created, monkeypatch, final,
                                                             phase, code):
    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: None)
    api = kube(running_then(created, final, phase))
    result = invoke("logs", "--backend", "job", NAME, "--follow")
    assert result.exit_code == code, (result.output, result.exception)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["10:00:08 | INFO | relaxing", "line two"]  # as the pod wrote them
    assert lines[2].startswith(f"job/{NAME} {jobs.job_state(with_status(created, **final)).state}")
    assert len(lines) == 3
    assert [c for c in api.calls if c[0] == "read_namespaced_pod_log"] == [
        ("read_namespaced_pod_log", f"{NAME}-aaaaa", "flow", True)]
    if code:
        assert f"job {NAME} ended Failed" in result.stderr


def test_follow_stops_on_a_pod_that_cannot_start(kube, created, monkeypatch):
    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: None)
    stuck = pod(created, "aaaaa", "Pending", waiting="ImagePullBackOff")
    kube(FakeKube([created], statuses={NAME: [{"active": 1, "ready": 0, "startTime": T1}]},
                  pods=[[stuck]]))
    result = invoke("logs", "--backend", "job", NAME, "-f")
    assert result.exit_code == 1
    assert f"pod/{NAME}-aaaaa cannot start: ImagePullBackOff: Back-off pulling" in result.stdout
    assert f"job {NAME} is ImagePullBackOff" in result.stderr  # not finished: the Job goes on


def test_submit_watch_json_reports_each_job_s_final_state(kube, created, monkeypatch,
                                                          tmp_path):
    """submit --backend job --watch --json: the Jobs are created, followed to their end, and
    the JSON (on stdout, after the stream on stderr) carries each final state."""
    from tests.unit.test_jobs import Cluster, client_configmap, configmap_of

    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: None)
    rendered = tmp_path / "templates.yaml"
    rendered.write_text(helm_template("--show-only", SHOW_ONLY))

    class Both(Cluster, FakeKube):
        """Creates the Jobs (Cluster) and then serves them with a status (FakeKube)."""

        def __init__(self):
            Cluster.__init__(self, [client_configmap(configmap_of(rendered))])
            FakeKube.__init__(self)

        def create_namespaced_job(self, namespace, job):
            made = with_status(job, **COMPLETE)
            made["metadata"]["uid"] = UID
            made["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
            self.jobs[job["metadata"]["name"]] = made
            return Cluster.create_namespaced_job(self, namespace, job)

    api = kube(Both())
    result = invoke("submit", "relaxation_emt", POSCARS[0], "--backend", "job", "--release",
                    RELEASE, "--run-name", "nightly", "--watch", "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    (entry,) = json.loads(result.stdout)
    assert (entry["job"], entry["namespace"], entry["state"]) == ("nightly", NAMESPACE,
                                                                  "Complete")
    assert "job/nightly Complete" in result.stderr
    assert api.created and api.created[0]["metadata"]["name"] == "nightly"


# --- the interface -------------------------------------------------------------------------------


def test_both_backends_implement_the_whole_interface():
    """An abstract method left out makes the class impossible to instantiate."""
    for backend in (backends.prefect(), backends.job(release=RELEASE)):
        assert isinstance(backend, backends.Backend)
        assert backend.succeeded_states <= backend.finished_states
    assert backends.job().noun == "job" and backends.prefect().noun == "flow run"


def test_job_backend_checks_its_options_when_opened():
    with pytest.raises(InputError, match="pin a tag"):
        JobBackend(image="simmate-k8s:latest")
    with pytest.raises(InputError, match="--release 'a-b-'"):
        JobBackend(release="a-b-")


def test_submission_numbers_batches_and_makes_batch_ids():
    from simmate_k8s.flows import inputs
    from simmate_k8s.flows.registry import get_workflow

    batch = inputs.from_arguments(get_workflow("relaxation_emt"), POSCARS[:3], ["fmax=0.02"])
    submission = backends.Submission(batch.split(2), ("fmax=0.02",), rerun=True)
    assert len(submission.batch_ids) == 2 == len(set(submission.batch_ids))
    parameters = submission.flow_parameters(1)
    assert parameters["batch_id"] == submission.batch_ids[1] and parameters["rerun"] is True
    assert [i["name"] for i in parameters["inputs"]] == [str(POSCARS[2])]
    assert submission.first_input(0) == str(POSCARS[0])
    assert [backends.numbered("n", i, 2) for i in range(2)] == ["n-1", "n-2"]
    assert backends.numbered("n", 0, 1) == "n" and backends.numbered(None, 1, 2) is None
