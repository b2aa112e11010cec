"""``submit --backend job``: a Kubernetes Job that runs ``simmate-k8s run`` against the release's
Dask scheduler, for teams without Prefect Server.

The Job is the release's own flow-run Job: the chart's job template for the preset (read from
the release's job-templates ConfigMap, found by its labels), with only the name, the command
and the inputs filled in — as Prefect's Kubernetes agent does with the same templates. So the
image, resources, scheduler address, results-database Secret, TTL and deadline are the
release's, and no Kubernetes name is derived here.

The input files travel in a ConfigMap (mounted read-only at /inputs) that the Job owns, so
deleting the Job (or its TTL) removes it too. The builders are pure functions returning plain
dicts; only :func:`read_release`, :func:`create`, :func:`read_job`, :func:`pod_logs` and
:func:`follow` talk to the cluster (kubernetes client imported inside them), and what they read
comes back as the API's own JSON (what ``kubectl get -o json`` prints), so :func:`job_state`
and the tests work on that shape. User mistakes are :class:`~simmate_k8s.errors.InputError` s,
cluster problems :class:`~simmate_k8s.errors.KubernetesError` s.
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simmate_k8s.errors import InputError, KubernetesError

INPUT_DIR = "/inputs"
FLOW_CONTAINER = "flow"  # the chart's name for the container of a flow-run Job
TEMPLATES_COMPONENT = "job-templates"
SCHEDULER_KEY = "scheduler-address"
# A ConfigMap holds at most 1 MiB; leave room for the object's metadata.
MAX_INPUT_BYTES = 900 * 1024
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
KEY_CHARS = re.compile(r"[^-._a-zA-Z0-9]")


def check_name(option: str, value: str | None, limit: int = 63) -> str | None:
    """A --release / --namespace value: a DNS label (Helm keeps release names to 53)."""
    if value is not None and (len(value) > limit or not DNS_LABEL.fullmatch(value)):
        raise InputError(f"{option} {value!r}: lowercase letters, digits and '-' "
                         "(a Kubernetes name)")
    return value


def check_job_names(names) -> list[str]:
    """Job names as ``submit --backend job`` prints them, checked before any request."""
    for name in names:
        if len(name) > 63 or not DNS_LABEL.fullmatch(name):
            raise InputError(f"{name!r} is not a Job name (lowercase letters, digits and '-', "
                             "as printed by `simmate-k8s submit --backend job`)")
    return list(names)


def check_pinned(image: str | None) -> str | None:
    """An image given by the user must name a tag or digest, and not latest."""
    if image and (image.endswith(":latest")
                  or ":" not in image.rsplit("/", 1)[-1] and "@" not in image):
        raise InputError(f"--image {image!r}: pin a tag (e.g. simmate-k8s:0.1.0), not latest")
    return image


@dataclass(frozen=True)
class Release:
    """What the CLI reads from an installed release: its job-templates ConfigMap."""

    name: str
    namespace: str
    scheduler_address: str
    templates: dict[str, dict]  # preset -> Job

    @classmethod
    def from_configmap(cls, configmap: dict, release: str, namespace: str) -> Release:
        data = configmap.get("data") or {}
        import yaml

        templates = {}
        for key, text in data.items():
            if not key.endswith(".yaml"):
                continue
            try:
                template = yaml.safe_load(text)
            except yaml.YAMLError:
                template = None
            if not isinstance(template, dict) or "spec" not in template:
                raise KubernetesError(f"the job template {key} of release {release!r} is not a "
                                      "valid Job; upgrade or repair the release")
            templates[key[:-len(".yaml")]] = template
        if SCHEDULER_KEY not in data or not templates:
            raise KubernetesError(f"the job templates of release {release!r} have no "
                                  f"{SCHEDULER_KEY} or no presets; upgrade the release's chart")
        return cls(release, namespace, data[SCHEDULER_KEY], templates)

    def template(self, preset: str) -> dict:
        if preset not in self.templates:
            raise InputError(f"--preset {preset!r}: release {self.name!r} defines "
                             f"{', '.join(sorted(self.templates))}")
        return copy.deepcopy(self.templates[preset])


def templates_selector(release: str) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component={TEMPLATES_COMPONENT}"


def release_from_file(path: str, release: str, namespace: str) -> Release:
    """The job-templates ConfigMap from YAML: what `helm template … --show-only
    templates/agent/job-templates.yaml` or `kubectl get configmap -l … -o yaml` prints."""
    import yaml

    try:
        documents = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise InputError(f"--job-templates {path}: not readable YAML "
                         f"({error.__class__.__name__})") from None
    objects = [item for doc in documents if isinstance(doc, dict)
               for item in (doc.get("items", []) if doc.get("kind") == "List" else [doc])
               if isinstance(item, dict)]
    for obj in objects:
        labels_ = (obj.get("metadata") or {}).get("labels") or {}
        if obj.get("kind") == "ConfigMap" and labels_.get(
                "app.kubernetes.io/component") == TEMPLATES_COMPONENT and labels_.get(
                "app.kubernetes.io/instance") == release:
            return Release.from_configmap(obj, release, namespace)
    raise InputError(f"--job-templates {path}: no job-templates ConfigMap of release {release!r}")


@dataclass
class JobSpec:
    flow_name: str
    inputs: dict[str, str]  # ConfigMap key -> file contents
    params: list[str]  # KEY=VALUE, already checked by the workflow
    release: Release
    image: str | None  # None: the release's image
    preset: str
    name: str
    batch_id: str
    items: int = 0

    @property
    def namespace(self) -> str:
        return self.release.namespace

    @property
    def configmap_name(self) -> str:
        return f"{self.name}-inputs"

    @property
    def scheduler_address(self) -> str:
        return self.release.scheduler_address


def job_name(release: str, flow_name: str, run_name: str | None = None) -> str:
    if run_name is not None:
        if len(run_name) > 52 or not DNS_LABEL.fullmatch(run_name):
            raise InputError(f"--run-name {run_name!r}: with --backend job it names the Job: "
                             "lowercase letters, digits and '-', at most 52 characters")
        return run_name
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(6))
    base = f"{release}-{flow_name}".lower().replace("_", "-")[:45].rstrip("-")
    return f"{base}-{suffix}"


NAMES_KEY = "input-names.json"  # the inputs' names as the user gave them, in order


def input_files(inputs: list[tuple[str, str]]) -> dict[str, str]:
    """ConfigMap keys (index + sanitized file name) -> contents, for (name, text) pairs in
    input order; size-checked."""
    files = {}
    for index, (name, text) in enumerate(inputs):
        key = f"{index:05d}-{KEY_CHARS.sub('_', Path(name).name)}"[:253]
        files[key] = text
    import json

    files[NAMES_KEY] = json.dumps([name for name, _ in inputs])
    size = sum(len(text.encode()) for text in files.values())
    if size > MAX_INPUT_BYTES:
        raise InputError(f"the inputs are {size / 1024:.0f} KiB; a Job carries at most "
                         f"{MAX_INPUT_BYTES // 1024} KiB (one ConfigMap): add --batch-size "
                         "to make several Jobs, or use --backend prefect")
    return files


def labels(spec: JobSpec) -> dict[str, str]:
    from simmate_k8s import __version__

    return {
        "app.kubernetes.io/name": "simmate",
        "app.kubernetes.io/instance": spec.release.name,
        "app.kubernetes.io/component": "flow-run",
        "app.kubernetes.io/managed-by": "simmate-k8s",
        "app.kubernetes.io/version": __version__,
        "app.kubernetes.io/part-of": "simmate",
        "simmate-k8s.io/backend": "job",
        "simmate-k8s.io/flow": spec.flow_name.replace("_", "-"),
        "simmate-k8s.io/preset": spec.preset,
        "simmate-k8s.io/batch": spec.batch_id,
    }


def build_configmap(spec: JobSpec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": spec.configmap_name, "namespace": spec.namespace,
                     "labels": labels(spec)},
        "data": dict(spec.inputs),
        "immutable": True,
    }


def build_job(spec: JobSpec) -> dict:
    """The release's Job template for the preset, with the name, command and inputs filled in."""
    job = spec.release.template(spec.preset)
    names = [key for key in spec.inputs if key != NAMES_KEY]
    command = ["simmate-k8s", "run", spec.flow_name,
               *(f"{INPUT_DIR}/{key}" for key in names),
               *(arg for param in spec.params
                 for arg in ((param,) if param.startswith("--") else ("--param", param))),
               "--batch-id", spec.batch_id, "--address", spec.scheduler_address, "--verbose"]
    if NAMES_KEY in spec.inputs:
        command += ["--input-names", f"{INPUT_DIR}/{NAMES_KEY}"]
    metadata = job.setdefault("metadata", {})
    metadata.update(name=spec.name, namespace=spec.namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels(spec)}
    pod = job["spec"]["template"]
    pod.setdefault("metadata", {})["labels"] = {**(pod["metadata"].get("labels") or {}),
                                                **labels(spec)}
    containers = pod["spec"]["containers"]
    container = next((c for c in containers if c.get("name") == FLOW_CONTAINER), containers[0])
    container["args"] = command  # the image's entrypoint (tini) runs it
    env = [e for e in container.get("env") or [] if not e["name"].startswith("PREFECT__")]
    if spec.image:
        container["image"] = spec.image
        env = [e for e in env if e["name"] != "SIMMATE_IMAGE"]
        env.append({"name": "SIMMATE_IMAGE", "value": spec.image})  # provenance of the results
    env.append({"name": "PYTHONUNBUFFERED", "value": "1"})
    container["env"] = env
    container.setdefault("volumeMounts", []).append(
        {"name": "inputs", "mountPath": INPUT_DIR, "readOnly": True})
    pod["spec"].setdefault("volumes", []).append(
        {"name": "inputs", "configMap": {"name": spec.configmap_name, "defaultMode": 0o444}})
    return job


def owner_reference(job: dict) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
            "uid": job["metadata"]["uid"], "blockOwnerDeletion": False, "controller": False}


def to_yaml(objects: list[dict]) -> str:
    import yaml

    return "---\n".join(yaml.safe_dump(obj, sort_keys=False) for obj in objects)


# --- the cluster -------------------------------------------------------------------------------


def kubeconfig() -> str:
    """KUBECONFIG as it is now, with the client's own default (the client reads the variable
    once, when it is imported)."""
    return os.environ.get("KUBECONFIG", "~/.kube/config")


def kube_context(context: str | None = None) -> tuple[str | None, str]:
    """(context name, its namespace) without connecting; KubernetesError when there is none."""
    from kubernetes import config

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig())
    except (config.ConfigException, OSError) as error:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):  # running in a pod
            namespace_file = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
            ns = namespace_file.read_text().strip() if namespace_file.exists() else "default"
            return None, ns
        raise KubernetesError(f"no Kubernetes context ({_first_line(error)}); set KUBECONFIG or "
                              "run `kubectl config use-context NAME`") from None
    if context is not None:
        matching = [c for c in contexts if c["name"] == context]
        if not matching:
            raise KubernetesError(f"--context {context!r}: no such context in your kubeconfig "
                                  f"(has: {', '.join(c['name'] for c in contexts)})")
        active = matching[0]
    if not active:
        raise KubernetesError("no current Kubernetes context; run "
                              "`kubectl config use-context NAME`")
    return active["name"], active.get("context", {}).get("namespace") or "default"


def read_release(release: str, namespace: str, context: str | None = None) -> Release:
    """The release's job-templates ConfigMap, found in the cluster by its labels."""
    _, core = _api(context)
    with _KubeErrors(f"reading the job templates of release {release!r} in {namespace}"):
        found = core.list_namespaced_config_map(
            namespace, label_selector=templates_selector(release)).items
    if not found:
        raise KubernetesError(f"no release {release!r} with job templates in namespace "
                              f"{namespace} (check --release and --namespace; the chart needs "
                              "agent.enabled)")
    return Release.from_configmap(found[0].to_dict(), release, namespace)


def default_namespace(context: str | None = None) -> str:
    """The current context's namespace, or "default" without a kubeconfig (for --dry-run)."""
    try:
        return kube_context(context)[1]
    except KubernetesError:
        return "default"


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def _api(context: str | None):
    from kubernetes import client, config

    name, _ = kube_context(context)
    try:
        if name is None:
            config.load_incluster_config()
        else:
            config.load_kube_config(config_file=kubeconfig(), context=name)
    except (config.ConfigException, OSError) as error:
        raise KubernetesError(
            f"Kubernetes context {name!r} is not usable: {_first_line(error)}") from None
    api = client.ApiClient()
    return client.BatchV1Api(api), client.CoreV1Api(api)


class _KubeErrors:
    """API failures as one line each; ``missing`` is the line for a 404."""

    def __init__(self, what: str, missing: str | None = None):
        self.what, self.missing = what, missing

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if error is None:
            return False
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if isinstance(error, ApiException):
            if error.status == 404 and self.missing:
                raise KubernetesError(self.missing) from None
            reason = error.reason
            try:
                import json

                reason = json.loads(error.body).get("message", reason)
            except (TypeError, ValueError):
                pass
            raise KubernetesError(f"{self.what}: Kubernetes said {error.status} {reason}") from None
        if isinstance(error, HTTPError | OSError):
            raise KubernetesError(f"{self.what}: cannot reach the Kubernetes API "
                                  f"({_first_line(error)})") from None
        return False


def create(spec: JobSpec, context: str | None = None) -> dict:
    """Create the inputs ConfigMap, then the Job, then make the Job own the ConfigMap.
    Nothing is left behind when a step fails."""
    batch, core = _api(context)
    configmap, job = build_configmap(spec), build_job(spec)
    with _KubeErrors(f"creating configmap/{spec.configmap_name} in {spec.namespace}"):
        core.create_namespaced_config_map(spec.namespace, configmap)
    try:
        with _KubeErrors(f"creating job/{spec.name} in {spec.namespace}"):
            created = batch.create_namespaced_job(spec.namespace, job).to_dict()
        owner = owner_reference({"metadata": created["metadata"]})
        with _KubeErrors(f"adopting configmap/{spec.configmap_name}"):
            core.patch_namespaced_config_map(spec.configmap_name, spec.namespace,
                                             {"metadata": {"ownerReferences": [owner]}})
    except BaseException:
        with _KubeErrors("cleaning up"):
            core.delete_namespaced_config_map(spec.configmap_name, spec.namespace)
        raise
    return created


# --- following a Job -----------------------------------------------------------------------------


def _plain(obj) -> dict:
    """A client object as the API's JSON: camelCase keys, RFC 3339 times (``kubectl -o json``)."""
    from kubernetes.client import ApiClient

    return ApiClient().sanitize_for_serialization(obj)


@dataclass(frozen=True)
class JobState:
    """Where a Job is, from its status: its conditions first, then its pod counts."""

    state: str  # Pending, Running, Suspended, Failing, Completing, Complete, Failed
    message: str = ""
    started: str | None = None
    ended: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


FINISHED = {"Complete", "Failed"}  # the Job controller's terminal conditions
SUCCEEDED = {"Complete"}
# conditions that are not terminal yet (Kubernetes 1.31+ sets them while pods terminate)
_PASSING = {"Suspended": "Suspended", "FailureTarget": "Failing",
            "SuccessCriteriaMet": "Completing"}


def job_state(job: dict) -> JobState:
    """The state of a Job in the API's JSON shape (``kubectl get job -o json``)."""
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []
                  if c.get("status") == "True"}
    started = status.get("startTime")
    for kind in ("Failed", "Complete"):
        if kind in conditions:
            condition = conditions[kind]
            message = ": ".join(part for part in (condition.get("reason"),
                                                  condition.get("message")) if part)
            ended = status.get("completionTime") or condition.get("lastTransitionTime")
            return JobState(kind, message, started, ended)
    failed = status.get("failed") or 0
    message = f"{failed} pod(s) failed" if failed else ""
    for kind, state in _PASSING.items():
        if kind in conditions:
            condition = conditions[kind]
            return JobState(state, condition.get("message") or condition.get("reason")
                            or message, started)
    active, ready = status.get("active") or 0, status.get("ready")
    # active counts pending and running pods; ready (Kubernetes 1.24+) the running ones
    running = active and (ready is None or ready > 0)
    return JobState("Running" if running else "Pending", message, started)


def read_jobs(names: list[str], namespace: str, context: str | None = None) -> list[dict]:
    """The Jobs, in the given order, as the API's JSON."""
    batch, _ = _api(context)
    return [_read_job(batch, name, namespace) for name in names]


def _read_job(batch, name: str, namespace: str) -> dict:
    with _KubeErrors(f"reading job/{name} in {namespace}",
                     missing=f"no job/{name} in namespace {namespace} (check the name and "
                             "--namespace; a finished Job is deleted after the release's TTL)"):
        return _plain(batch.read_namespaced_job(name, namespace))


def _pods(core, job: dict) -> list[dict]:
    """The Job's pods, oldest first, by the Job's own selector (its controller-uid): a later
    Job of the same name does not mix in."""
    selector = ",".join(f"{key}={value}" for key, value in sorted(
        ((job.get("spec") or {}).get("selector") or {}).get("matchLabels", {}).items()))
    name, namespace = job["metadata"]["name"], job["metadata"]["namespace"]
    if not selector:
        selector = f"job-name={name}"
    with _KubeErrors(f"listing the pods of job/{name}"):
        pods = _plain(core.list_namespaced_pod(namespace, label_selector=selector))
    return sorted(pods.get("items") or [],
                  key=lambda pod: pod["metadata"].get("creationTimestamp") or "")


def _log_options(pod: dict) -> dict:
    """The flow container's log (a pod with several containers needs the name)."""
    names = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    return {"container": FLOW_CONTAINER} if FLOW_CONTAINER in names else {}


HAS_LOG = ("Running", "Succeeded", "Failed")  # pod phases whose container has started


def pod_logs(name: str, namespace: str,
             context: str | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """The Job, and (pod name, its log so far) for each of its pods that has started, oldest
    first."""
    batch, core = _api(context)
    job = _read_job(batch, name, namespace)
    logs = []
    for pod in _pods(core, job):
        pod_name = pod["metadata"]["name"]
        if (pod.get("status") or {}).get("phase") not in HAS_LOG:
            continue
        with _KubeErrors(f"reading the log of pod/{pod_name}"):
            logs.append((pod_name, core.read_namespaced_pod_log(pod_name, namespace,
                                                                **_log_options(pod))))
    return job, logs


def follow(name: str, namespace: str, context: str | None = None,
           echo: Callable[[str], None] = print, poll: float = 2.0) -> JobState:
    """Stream the log of each of the Job's pods once, until the Job is Complete or Failed (or a
    pod can never start: then its waiting reason is the state returned)."""
    batch, core = _api(context)
    streamed: set[str] = set()
    while True:
        job, before = _read_job(batch, name, namespace), len(streamed)
        for pod in _pods(core, job):
            pod_name = pod["metadata"]["name"]
            stuck = stuck_reason(pod)
            if stuck:
                echo(f"pod/{pod_name} cannot start: {stuck[1]}")
                return JobState(stuck[0], stuck[1], job_state(job).started)
            if pod_name in streamed or (pod.get("status") or {}).get("phase") not in HAS_LOG:
                continue
            streamed.add(pod_name)
            with _KubeErrors(f"reading the log of pod/{pod_name}"):
                stream = core.read_namespaced_pod_log(pod_name, namespace, follow=True,
                                                      _preload_content=False,
                                                      **_log_options(pod))
                for line in stream:
                    echo(line.decode(errors="replace").rstrip("\n"))
        # a log streams until its container ends: the status read before it is old by then
        state = job_state(_read_job(batch, name, namespace) if len(streamed) > before else job)
        if state.finished:
            return state
        time.sleep(poll)


STUCK = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
         "CreateContainerError"}


def stuck_reason(pod: dict) -> tuple[str, str] | None:
    """(reason, line) when a pending pod will never start (a wrong image tag, a missing
    ConfigMap), else None."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK:
            return waiting["reason"], f"{waiting['reason']}: {waiting.get('message') or ''}".strip()
    return None
