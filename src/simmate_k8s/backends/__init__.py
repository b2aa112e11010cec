"""Where flow runs go: one small interface, two backends.

``submit``, ``status`` and ``logs`` talk only to :class:`Backend`: submit one run per batch,
follow runs to their end, show their state, show their logs. :mod:`.prefect_server` implements
it with Prefect Server v1 flow runs (:mod:`simmate_k8s.server`), :mod:`.kube_job` with plain
Kubernetes Jobs made from the release's own job templates (:mod:`simmate_k8s.jobs`).

Nothing heavy is imported here; :func:`prefect` and :func:`job` import their backend (and with
it Prefect or the Kubernetes client) when a command opens one. Backends raise
:class:`~simmate_k8s.errors.SimmateError` s; the command layer prints them as one line.
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def numbered(value: str | None, index: int, total: int) -> str | None:
    """A run name or idempotency key for one of ``total`` batches: the value itself for one,
    ``value-1``, ``value-2``, ... for several."""
    if value is None or total == 1:
        return value
    return f"{value}-{index + 1}"


@dataclass
class Submission:
    """What any backend is asked to run: one run per batch, in order."""

    batches: list  # flows.inputs.Batch, every input already checked
    params: tuple[str, ...] = ()  # --param KEY=VALUE as given (a Job's `run` checks them again)
    rerun: bool = False
    preset: str | None = None  # None: the registered run config (Prefect), "default" (Job)
    run_name: str | None = None
    batch_ids: list[str] = field(default_factory=list)  # made here unless given

    def __post_init__(self):
        if not self.batches:
            raise ValueError("a submission needs at least one batch")
        if not self.batch_ids:
            self.batch_ids = [str(uuid.uuid4()) for _ in self.batches]
        if len(self.batch_ids) != len(self.batches):
            raise ValueError("one batch id per batch")

    @property
    def workflow(self):
        return self.batches[0].workflow

    def first_input(self, index: int) -> str:
        """The batch's first input as given (or the workflow's name when it makes its own)."""
        batch = self.batches[index]
        return batch.items[0]["name"] if self.workflow.takes_files else self.workflow.name

    def flow_parameters(self, index: int) -> dict[str, Any]:
        """The flow run's parameters for one batch (what ``simmate-k8s run`` would pass)."""
        batch = self.batches[index]
        return {**batch.parameters, "batch_id": self.batch_ids[index], "rerun": self.rerun,
                "chunk_size": 1, "inputs": batch.inputs()}


@dataclass(frozen=True)
class Run:
    """A run a backend created for one batch."""

    id: str  # what `status` and `logs` take: a flow run id, or a Job's name
    batch_id: str
    items: int
    where: str  # the flow run's URL, or the Job's namespace
    record: dict  # what `submit --json` prints for it


@dataclass(frozen=True)
class Event:
    """A state change or a log line of a run."""

    run_id: str
    kind: str  # "state" or "log"
    message: str
    level: str = "INFO"
    timestamp: str | None = None  # None: the line carries its own (a pod's log)


@dataclass(frozen=True)
class RunStatus:
    """One row of `status`."""

    id: str
    label: str  # the flow run's name, or the Job's batch id
    flow: str
    state: str
    started: str | None
    ended: str | None
    message: str
    record: dict  # what `status --json` prints for it


class Backend(abc.ABC):
    """Submit runs, follow them, show their state and their logs."""

    name: str  # the --backend value
    noun: str  # "flow run" or "job", in messages
    where_header: str  # the `submit` table's column for Run.where
    label_header: str  # the `status` table's column for RunStatus.label
    finished_states: frozenset[str]  # a run in one of these has ended
    succeeded_states: frozenset[str]  # final states that count as success (exit 0)

    @abc.abstractmethod
    def check_ids(self, ids: Sequence[str]) -> list[str]:
        """The ids, normalized; an InputError for a malformed one, before any request."""

    @abc.abstractmethod
    def submit(self, submission: Submission,
               on_done: Callable[[Run], None] = lambda run: None) -> list[Run]:
        """Create one run per batch (everything checked first); the runs in batch order."""

    @abc.abstractmethod
    def follow(self, ids: Sequence[str], on_event: Callable[[Event], None]) -> dict[str, str]:
        """Report states and logs as they come until every run ended (or cannot: a Job whose
        pod can never start); {id: last state}."""

    @abc.abstractmethod
    def status(self, ids: Sequence[str]) -> list[RunStatus]:
        """The runs' states, in the given order; an error naming an unknown id."""

    @abc.abstractmethod
    def logs(self, run_id: str) -> list[Event]:
        """The run's logs so far."""

    @abc.abstractmethod
    def command(self, verb: str, ids: Sequence[str]) -> str:
        """The `simmate-k8s status|logs` line that reaches these runs (for hints)."""

    def finished(self, state: str | None) -> bool:
        return state in self.finished_states

    def succeeded(self, state: str | None) -> bool:
        return state in self.succeeded_states


def prefect(*, project: str | None = None, labels: Sequence[str] = (),
            idempotency_key: str | None = None, concurrency: int = 8) -> Backend:
    """Prefect Server v1 (`config set api-url`): flow runs of the registered flows."""
    from simmate_k8s.backends.prefect_server import PrefectBackend

    return PrefectBackend(project=project, labels=labels, idempotency_key=idempotency_key,
                          concurrency=concurrency)


def job(*, namespace: str | None = None, context: str | None = None,
        release: str | None = None, image: str | None = None,
        job_templates: str | None = None) -> Backend:
    """Plain Kubernetes Jobs from the release's job templates (the kube context's cluster)."""
    from simmate_k8s.backends.kube_job import JobBackend

    return JobBackend(namespace=namespace, context=context, release=release, image=image,
                      job_templates=job_templates)
