"""The Job backend: a batch is a Kubernetes Job made from the release's own job template
(:mod:`simmate_k8s.jobs`); its state is the Job's conditions, its logs its pods' logs."""

from __future__ import annotations

import functools
from collections.abc import Callable

from simmate_k8s import jobs
from simmate_k8s.backends import Backend, Event, Run, RunStatus, Submission, numbered
from simmate_k8s.errors import InputError, KubernetesError

INSTANCE = "app.kubernetes.io/instance"


class JobBackend(Backend):
    name = "job"
    noun = "job"
    where_header = "NAMESPACE"
    label_header = "BATCH"
    finished_states = frozenset(jobs.FINISHED)
    succeeded_states = frozenset(jobs.SUCCEEDED)

    def __init__(self, *, namespace: str | None = None, context: str | None = None,
                 release: str | None = None, image: str | None = None,
                 job_templates: str | None = None):
        # every option checked before the kubeconfig is read
        self.release = jobs.check_name("--release", release, limit=53)
        self._namespace = jobs.check_name("--namespace", namespace)
        self.image = jobs.check_pinned(image)
        self.context = context
        self.job_templates = job_templates

    @functools.cached_property
    def namespace(self) -> str:
        if self._namespace:
            return self._namespace
        if self.job_templates:  # --dry-run from a file needs no kubeconfig
            return jobs.default_namespace(self.context)
        return jobs.kube_context(self.context)[1]

    def check_ids(self, ids):
        return jobs.check_job_names(ids)

    # --- submit ---------------------------------------------------------------------------------

    def specs(self, submission: Submission) -> list[jobs.JobSpec]:
        """One JobSpec per batch, from the release's template for the preset."""
        workflow, batches = submission.workflow, submission.batches
        if not workflow.takes_files and len(batches) > 1:
            raise InputError(f"--batch-size: {workflow.name} makes its own items; with "
                             "--backend job submit it once per batch")
        if self.release is None:
            raise InputError("--release: the Helm release whose job templates make the Job")
        if self.job_templates:
            release = jobs.release_from_file(self.job_templates, self.release, self.namespace)
        else:
            release = jobs.read_release(self.release, self.namespace, self.context)
        preset = submission.preset or "default"
        release.template(preset)  # an unknown preset: one line, before anything is made
        params = [*submission.params, *(["--rerun"] if submission.rerun else [])]
        specs = []
        for index, batch in enumerate(batches):
            name = jobs.job_name(self.release, workflow.name,
                                 numbered(submission.run_name, index, len(batches)))
            specs.append(jobs.JobSpec(
                flow_name=workflow.name,
                inputs=jobs.input_files([(item["name"], item["data"]) for item in batch.items])
                if workflow.takes_files else {},
                params=params, release=release, image=self.image, preset=preset, name=name,
                batch_id=submission.batch_ids[index], items=len(batch.items)))
        return specs

    def dry_run(self, submission: Submission) -> list[dict]:
        """What submit would create: each batch's ConfigMap and Job."""
        return [obj for spec in self.specs(submission)
                for obj in (jobs.build_configmap(spec), jobs.build_job(spec))]

    def submit(self, submission: Submission,
               on_done: Callable[[Run], None] = lambda run: None) -> list[Run]:
        runs = []
        for spec in self.specs(submission):
            jobs.create(spec, self.context)
            run = Run(spec.name, spec.batch_id, spec.items, spec.namespace, {
                "job": spec.name, "configmap": spec.configmap_name, "namespace": spec.namespace,
                "scheduler": spec.scheduler_address, "batch_id": spec.batch_id,
                "items": spec.items})
            on_done(run)
            runs.append(run)
        return runs

    # --- following, status, logs ----------------------------------------------------------------

    def _check_release(self, job: dict) -> dict:
        """With --release, a Job of another release is refused (its name may be reused)."""
        metadata = job.get("metadata") or {}
        found = (metadata.get("labels") or {}).get(INSTANCE)
        if self.release is not None and found != self.release:
            raise KubernetesError(f"job/{metadata.get('name')} in namespace {self.namespace} "
                                  f"is not of release {self.release!r}"
                                  + (f" (it is of {found!r})" if found else ""))
        return job

    def follow(self, ids, on_event):
        ids = self.check_ids(ids)
        if self.release is not None:
            for job in jobs.read_jobs(ids, self.namespace, self.context):
                self._check_release(job)
        from simmate_k8s.settings import Settings

        poll = Settings.from_env().poll_interval
        final = {}
        for name in ids:  # one after the other: a finished pod's log stays readable
            state = jobs.follow(name, self.namespace, self.context, poll=poll,
                                echo=lambda line, name=name: on_event(Event(name, "log", line)))
            ok = self.succeeded(state.state)
            on_event(Event(name, "state", f"job/{name} {state.state}"
                           + (f": {state.message}" if state.message else ""),
                           "INFO" if ok else "ERROR"))
            final[name] = state.state
        return final

    def status(self, ids):
        ids = self.check_ids(ids)
        rows = []
        for job in jobs.read_jobs(ids, self.namespace, self.context):
            self._check_release(job)
            rows.append(job_status(job))
        return rows

    def logs(self, run_id):
        (name,) = self.check_ids([run_id])
        job, logs = jobs.pod_logs(name, self.namespace, self.context)
        self._check_release(job)
        if not logs:
            state = jobs.job_state(job)
            return [Event(name, "state", f"job/{name} is {state.state}: no pod has started yet"
                          + (f" ({state.message})" if state.message else ""))]
        events = []
        for pod, text in logs:
            if len(logs) > 1:  # the Job retried: each pod's log under its name
                events.append(Event(name, "state", f"--- pod/{pod}"))
            events += [Event(name, "log", line) for line in text.splitlines()]
        return events

    def command(self, verb, ids):
        context = f" --context {self.context}" if self.context else ""
        return (f"simmate-k8s {verb} --backend job -n {self.namespace}{context} "
                f"{' '.join(ids)}")


def job_status(job: dict) -> RunStatus:
    """A row of `status` from a Job as the API serves it (``kubectl get job -o json``)."""
    metadata, state = job.get("metadata") or {}, jobs.job_state(job)
    labels = metadata.get("labels") or {}
    status = job.get("status") or {}
    flow = _flow_name(job) or labels.get("simmate-k8s.io/flow") or "-"
    batch_id = labels.get("simmate-k8s.io/batch") or "-"
    return RunStatus(metadata.get("name", "-"), batch_id, flow, state.state, state.started,
                     state.ended, state.message, {
                         "job": metadata.get("name"), "namespace": metadata.get("namespace"),
                         "release": labels.get(INSTANCE), "flow": flow, "batch_id": batch_id,
                         "preset": labels.get("simmate-k8s.io/preset"), "state": state.state,
                         "message": state.message, "start_time": state.started,
                         "end_time": state.ended,
                         **{key: status.get(key) or 0 for key in ("active", "succeeded",
                                                                  "failed")},
                         "conditions": status.get("conditions") or []})


def _flow_name(job: dict) -> str | None:
    """The workflow the Job runs: `simmate-k8s run FLOW ...` in its flow container."""
    pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in pod.get("containers") or []:
        args = container.get("args") or []
        if container.get("name") == jobs.FLOW_CONTAINER and args[:2] == ["simmate-k8s", "run"]:
            return args[2] if len(args) > 2 else None
    return None

