"""Every workflow as a Prefect 1 Flow: one flow run is one batch.

    plan ──▶ compute.map(chunks) ──▶ summary
    │         │                        └─ the flow run's state: Failed (naming each failed
    │         │                           input) unless every item completed
    │         └─ per item: claim (skip if already done) → compute → finish, on the workers
    └─ checks the inputs, records the batch and its items, drops what is already done

Prefect's Module storage loads these flows from this module inside the image, so each Flow is
a module attribute. Tasks reach the results database only through the worker's preloaded
pool (:mod:`simmate_k8s.preload`).
"""

from __future__ import annotations

import contextlib
import time
import uuid

import prefect
from prefect import Flow, Parameter, task, unmapped
from prefect.engine.signals import FAIL
from prefect.executors import DaskExecutor
from prefect.triggers import all_finished

from simmate_k8s import results
from simmate_k8s.errors import SimmateError
from simmate_k8s.flows.registry import WORKFLOWS, Workflow, get_workflow

HEARTBEAT_SECONDS = 5.0  # at most one progress write per running item in this time
PRELOAD = "simmate_k8s.preload"


def _logger():
    return prefect.context.get("logger")


def _with_database(action):
    """Run a results-database action, waiting out an outage (``SIMMATE_DB_SAVE_RETRY``)."""
    from simmate_k8s import database, preload

    engine, settings = preload.results_engine(), preload.worker_settings()

    def retry_said(error, attempt):
        if attempt in (1, 10) or attempt % 50 == 0:
            _logger().warning("results database away (%s); retrying for up to %g s",
                              database.reason(error), settings.save_retry)

    return database.retrying(lambda: action(engine), lambda e: database.is_transient(engine, e),
                             settings.save_retry, on_retry=retry_said)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ""
    return f"{error.__class__.__name__}: {line}" if not isinstance(error, SimmateError) else line


# --- tasks ---------------------------------------------------------------------------------------


@task(name="plan", nout=2)
def plan_batch(workflow_name, inputs, parameters, batch_id, rerun, chunk_size):
    """Check the inputs, record the batch, and group what is not done yet into chunks."""
    from simmate_k8s.flows import inputs as batch_inputs

    workflow = get_workflow(workflow_name)
    try:
        batch = batch_inputs.from_flow_parameters(workflow, inputs, parameters)
    except SimmateError as error:
        raise FAIL(str(error)) from None
    flow_run_id = prefect.context.get("flow_run_id")
    batch_id = batch_id or flow_run_id or str(uuid.uuid4())
    _with_database(lambda engine: results.record_batch(
        engine, batch_id=batch_id, workflow=workflow.name, version=workflow.version,
        parameters=batch.parameters, items=batch.items, rerun=bool(rerun),
        flow_run_id=flow_run_id))
    keys = [item["key"] for item in batch.items]
    done = set() if rerun else _with_database(lambda engine: results.completed_keys(engine, keys))
    todo, seen = [], set()
    for item in batch.items:
        if item["key"] not in done and item["key"] not in seen:  # an input given twice: once
            seen.add(item["key"])
            todo.append(item)
    size = max(1, int(chunk_size or 1))
    chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
    _logger().info("batch %s: %d items, %d already done, %d to compute in %d tasks",
                   batch_id, len(batch.items), len(batch.items) - len(todo), len(todo),
                   len(chunks))
    meta = {"batch_id": batch_id, "workflow": workflow.name, "parameters": batch.parameters,
            "rerun": bool(rerun), "flow_run_id": flow_run_id,
            "queued_at": results.now().isoformat()}
    return meta, chunks


@task(name="compute")
def compute_chunk(chunk: list[dict], meta: dict) -> list[dict]:
    """Compute each item of the chunk; an item that fails is recorded and the rest go on."""
    workflow = get_workflow(meta["workflow"])
    worker, provenance = _worker_name(), _provenance()
    outcomes = []
    for item in chunk:
        if not _still_wanted():
            break  # the batch was cancelled: leave the rest unclaimed
        outcomes.append(_compute_item(workflow, item, meta, worker, provenance))
    return outcomes


def _compute_item(workflow: Workflow, item: dict, meta: dict, worker: str,
                  provenance: dict) -> dict:
    from datetime import datetime

    execution_id = uuid.uuid4().hex
    parameters = workflow.compute_parameters(meta["parameters"])
    executions = _with_database(lambda engine: results.claim(
        engine, item, workflow=workflow.name, version=workflow.version,
        parameters=parameters, batch_id=meta["batch_id"],
        flow_run_id=meta["flow_run_id"], execution_id=execution_id, worker=worker,
        queued_at=datetime.fromisoformat(meta["queued_at"]), rerun=meta["rerun"]))
    outcome = {"position": item["position"], "name": item["name"]}
    if executions is None:  # done already (e.g. by this batch, before a worker was lost)
        return {**outcome, "status": results.COMPLETED, "claimed": False}
    if executions > 1:
        _logger().warning("%s: executed again (execution %d in this batch)", item["name"],
                          executions)
    heartbeat = _Heartbeat(item, execution_id)
    started = time.perf_counter()
    try:
        result = results.finite_json(
            workflow.compute(item["data"], **parameters, progress=heartbeat))
        status, error = results.COMPLETED, None
    except Exception as exc:  # one bad item fails alone; the batch goes on
        result, status, error = None, results.FAILED, _first_line(exc)
        _logger().error("%s failed: %s", item["name"], error)
    seconds = time.perf_counter() - started
    _with_database(lambda engine: results.finish(
        engine, item["key"], execution_id, status=status, result=result, error=error,
        compute_seconds=seconds, provenance=provenance))
    return {**outcome, "status": status, "error": error, "executions": executions}


class _Heartbeat:
    """Progress from inside a long computation: logged and written to the item's row, at most
    every HEARTBEAT_SECONDS (best effort: a missed heartbeat loses nothing)."""

    def __init__(self, item: dict, execution_id: str):
        self.item, self.execution_id = item, execution_id
        self.last = time.monotonic()

    def __call__(self, **progress) -> None:
        if time.monotonic() - self.last < HEARTBEAT_SECONDS:
            return
        self.last = time.monotonic()
        from simmate_k8s import preload

        _logger().info("%s: %s", self.item["name"],
                       ", ".join(f"{key} {value}" for key, value in progress.items()))
        with contextlib.suppress(Exception):  # a heartbeat is not worth failing the item for
            results.report_progress(preload.results_engine(), self.item["key"],
                                    self.execution_id, {**progress, "at": time.time()})


@task(name="summary", trigger=all_finished)
def summarize_batch(meta: dict, outcomes) -> dict:
    """The batch's outcome from the results database; fails the flow run if any item failed
    or was not finished, naming them."""
    report = _with_database(lambda engine: results.batch_report(engine, meta["batch_id"]))
    summary = results.summarize(report, meta["batch_id"])
    for name, executions in summary["reexecuted"]:
        _logger().warning("%s was executed %d times (a worker was lost)", name, executions)
    if summary["failed"] or summary["missing"]:
        raise FAIL(results.failure_message(summary), result=summary)
    return summary


# --- where the tasks run -------------------------------------------------------------------------


def _worker_name() -> str:
    import os
    import socket

    try:
        from distributed import get_worker

        worker = get_worker()
        return f"{worker.name} ({worker.address})"
    except ValueError:
        return f"{socket.gethostname()}:{os.getpid()}"


def _still_wanted() -> bool:
    """False once the client that submitted this task released it (a cancelled batch)."""
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
        state = worker.state.tasks.get(key)
        return state is None or state.state not in ("cancelled", "released", "forgotten")
    except Exception:  # not on a Dask worker (Prefect's LocalExecutor)
        return True


def _provenance() -> dict:
    from simmate_k8s import preload

    return preload.provenance()


class ReleaseDaskExecutor(DaskExecutor):
    """The executor of flow runs started by the agent: the scheduler named by
    SIMMATE_DASK_ADDRESS in the flow-run pod (read when the run starts, not at import), or a
    local cluster with the preload when there is none."""

    def __init__(self):
        super().__init__()

    def start(self):
        from simmate_k8s.settings import Settings

        settings = Settings.from_env()
        if settings.dask_address:
            from simmate_k8s.engine import security

            self.address = settings.dask_address
            # the chart's certificates for a tls:// scheduler (Dask's config would find them
            # too; this makes a missing one a clear error)
            self.client_kwargs["security"] = security(self.address, settings)
        else:
            self.cluster_kwargs = {"n_workers": 2, "threads_per_worker": 1,
                                   "preload": [PRELOAD]}
        return super().start()


# --- flows ---------------------------------------------------------------------------------------


def build_flow(workflow: Workflow) -> Flow:
    with Flow(workflow.name, executor=ReleaseDaskExecutor()) as flow:
        parameters = {p.name: Parameter(p.name, default=p.default) for p in workflow.params}
        inputs = Parameter("inputs", default=None)  # smoke: None makes them from n
        meta, chunks = plan_batch(
            workflow.name, inputs, parameters, Parameter("batch_id", default=None),
            Parameter("rerun", default=False), Parameter("chunk_size", default=1))
        outcomes = compute_chunk.map(chunks, meta=unmapped(meta))
        summary = summarize_batch(meta, outcomes)
    flow.set_reference_tasks([summary])
    return flow


FLOWS = {name: build_flow(workflow) for name, workflow in WORKFLOWS.items()}
relaxation_emt = FLOWS["relaxation_emt"]
static_energy_emt = FLOWS["static_energy_emt"]
smoke = FLOWS["smoke"]
