"""The Prefect Server v1 backend: a batch is a flow run of the registered flow; states and logs
come from Prefect Server (every GraphQL operation is in :mod:`simmate_k8s.server`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from simmate_k8s import server, server_config
from simmate_k8s.backends import Backend, Event, Run, RunStatus, Submission


class PrefectBackend(Backend):
    name = "prefect"
    noun = "flow run"
    where_header = "URL"
    label_header = "NAME"
    finished_states = frozenset(server.FINISHED)
    succeeded_states = frozenset(server.SUCCEEDED)

    def __init__(self, *, project: str | None = None, labels: Sequence[str] = (),
                 idempotency_key: str | None = None, concurrency: int = 8):
        self.labels = list(labels)
        self.idempotency_key = idempotency_key
        self.concurrency = concurrency
        self._project = project

    @functools.cached_property
    def config(self) -> server_config.ServerConfig:
        return server_config.load()

    @functools.cached_property
    def session(self) -> server.Session:
        """Connected on first use: malformed ids are refused before any request."""
        return server.connect(self.config)

    @property
    def project(self) -> str:
        return self._project or self.config.project

    def check_ids(self, ids):
        return server.check_run_ids(ids)

    def submit(self, submission: Submission,
               on_done: Callable[[Run], None] = lambda run: None) -> list[Run]:
        workflow = submission.workflow
        flow = server.resolve_flow(self.session, workflow.name, self.project)
        labels, run_config = server.run_settings(flow, self.labels, submission.preset)
        indexes = {batch_id: index for index, batch_id in enumerate(submission.batch_ids)}

        def described(created: server.SubmittedRun) -> Run:
            index = indexes[created.parameters["batch_id"]]
            items = len(submission.batches[index].items)
            return Run(created.flow_run_id, submission.batch_ids[index], items, created.url, {
                "batch_id": submission.batch_ids[index], "items": items,
                "first_input": created.label, "flow_run_id": created.flow_run_id,
                "url": created.url, "flow": workflow.name, "flow_version": flow["version"]})

        runs = [(submission.first_input(i), submission.flow_parameters(i))
                for i in range(len(submission.batches))]
        created = server.submit(
            self.session, flow, runs, labels=labels, run_config=run_config,
            run_name=submission.run_name, idempotency_key=self.idempotency_key,
            concurrency=self.concurrency, on_done=lambda run: on_done(described(run)))
        return [described(run) for run in created]

    def follow(self, ids, on_event):
        ids = self.check_ids(ids)
        return server.follow(self.session, ids, lambda event: on_event(_event(event)))

    def status(self, ids):
        ids = self.check_ids(ids)
        return [RunStatus(
            run.id, run.name, f"{run.flow.name} v{run.flow.version}", run.state or "-",
            run.start_time, run.end_time, run.state_message or "",
            {**run.to_dict(), "url": self.session.flow_run_url(run.id)})
            for run in server.flow_runs(self.session, ids)]

    def logs(self, run_id):
        (run_id,) = self.check_ids([run_id])
        server.flow_runs(self.session, [run_id])  # one line for an unknown id
        follower = server.Follower(self.session, run_id, states=False)
        return [_event(event) for event in follower.poll()]

    def command(self, verb, ids):
        return f"simmate-k8s {verb} {' '.join(ids)}"


def _event(event: server.Event) -> Event:
    return Event(event.flow_run_id, event.kind, event.message, event.level,
                 str(event.timestamp))
