"""``simmate-k8s run``: a batch of a workflow on Dask here (a local cluster, an existing
scheduler, or HPC batch jobs), its results saved to the results database.

Only click is imported at module level; everything heavy is imported inside the command. A
batch whose items are all done is answered from the results database without starting Dask.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass

import click

from simmate_k8s.commands.options import (
    BatchOptions,
    ComputeTarget,
    compute_target_options,
    flow_arguments,
    output_options,
    run_batch_options,
)
from simmate_k8s.errors import UserError

BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TABLE_ROWS = 50  # a larger batch prints its failures and a summary; `results` has the rest


@click.command()
@flow_arguments
@run_batch_options
@compute_target_options
@click.option("--input-names", "names_file", hidden=True, type=click.File(),
              help="JSON list: the inputs' names as the submitter gave them (Job backend).")
@output_options
def run(flow_name, inputs, params, batching, target, names_file, output):
    """Run FLOW on every INPUT as one batch on Dask, saving results to the results database.

    INPUT is a POSCAR file, a directory of them, or a quoted glob. Every input is checked
    first; items already completed (same workflow version, input content and parameters)
    are skipped, so running a finished or interrupted batch again computes only what is
    missing. Exit code 0 when every item completed, 1 when any failed, 2 for bad input,
    130 when interrupted.

    \b
    Examples:
      simmate-k8s run relaxation_emt POSCAR
      simmate-k8s run relaxation_emt structures/ --workers 4 --param fmax=0.02
      simmate-k8s run relaxation_emt 'structures/*.POSCAR' --batch-size 200
      simmate-k8s run smoke --param n=100 --address tcp://scheduler:8786
      simmate-k8s run relaxation_emt structures/ --cluster slurm --jobs 4 --walltime 02:00:00
    """
    os.environ.setdefault("PREFECT__LOGGING__LEVEL", "INFO" if output.verbose else "WARNING")
    from simmate_k8s.flows import inputs as batch_inputs
    from simmate_k8s.flows.registry import get_workflow
    from simmate_k8s.settings import Settings

    started = time.monotonic()
    settings = Settings.from_env()
    _check_batch_id(batching.batch_id)
    workflow = get_workflow(flow_name)
    batch = batch_inputs.from_arguments(workflow, inputs, params)  # all checked: nothing runs yet
    if names_file is not None:
        batch.rename(_names(names_file, len(batch.items)))
    for warning in batch.warnings:
        click.echo(f"warning: {warning}", err=True)
    security = _check_target(target, settings)
    from simmate_k8s import results

    engine, _ = results.open_results_database(settings)
    parts = batch.split(batching.batch_size)
    done = set() if batching.rerun else results.completed_keys(
        engine, (item["key"] for item in batch.items))
    plan = _Plan(engine, parts, _batch_ids(batching.batch_id, len(parts)), frozenset(done),
                 batching, target, security, show_progress=not output.as_json)
    if all(item["key"] in done for item in batch.items):
        runs = _record_cached(plan)  # nothing to compute: no Dask at all
    else:
        runs = _compute(plan)
    _report(engine, runs, output.as_json, time.monotonic() - started)


@dataclass(frozen=True)
class _Plan:
    """What one `run` computes, and where: its batches with their ids (None: a new UUID), the
    keys already completed, and the scheduler's TLS security (an existing tls:// one)."""

    engine: object
    parts: list
    ids: list[str | None]
    done: frozenset
    batching: BatchOptions
    target: ComputeTarget
    security: object = None
    show_progress: bool = True


def _check_batch_id(value: str | None) -> None:
    if value is not None and not BATCH_ID.fullmatch(value):
        raise UserError(f"--batch-id {value!r}: letters, digits, '.', '_' and '-', "
                        "at most 64 characters")


def _batch_ids(batch_id: str | None, count: int) -> list[str | None]:
    """--batch-id names the one batch, or ID-1, ID-2, ... when --batch-size splits it."""
    if not batch_id:
        return [None] * count
    return [batch_id] if count == 1 else [f"{batch_id}-{index + 1}" for index in range(count)]


def _check_target(target: ComputeTarget, settings):
    """Refuse a bad --address / --cluster / HPC option before anything runs; the TLS security
    of a tls:// scheduler (None otherwise)."""
    if target.address and "://" not in target.address:
        raise UserError(f"--address {target.address!r}: expected tcp://HOST:PORT or "
                        "tls://HOST:PORT")
    if target.address and target.cluster_system != "local":
        raise UserError("--address and --cluster: choose one (an existing scheduler, or one "
                        "this command starts for its jobs)")
    if target.cluster_system != "local":
        from simmate_k8s import hpc as hpc_jobs

        hpc_jobs.validate(target.cluster_system, target.hpc)  # one line, nothing submitted
    if not target.address:
        return None
    from simmate_k8s import engine as batch_engine

    return batch_engine.security(target.address, settings)  # certificates checked here


def _names(handle, count: int) -> list[str]:
    import json

    try:
        names = json.load(handle)
    except ValueError:
        names = None
    if not isinstance(names, list) or len(names) != count:
        raise UserError(f"--input-names {handle.name}: expected a JSON list of {count} names")
    return [str(name) for name in names]


def _record_cached(plan: _Plan):
    import uuid

    from simmate_k8s import results
    from simmate_k8s.flows.inputs import BatchRun

    runs = []
    for part, batch_id in zip(plan.parts, plan.ids, strict=True):
        run = BatchRun(part, batch_id or str(uuid.uuid4()), flow_run_id="")
        results.record_batch(plan.engine, batch_id=run.batch_id, workflow=part.workflow.name,
                             version=part.workflow.version, parameters=part.parameters,
                             items=part.items, rerun=plan.batching.rerun, flow_run_id=None)
        runs.append(run)
    return runs


def _connect(stack, target: ComputeTarget, security):
    """(cluster or None, client) for the target, closed with ``stack``."""
    from simmate_k8s import engine as batch_engine

    if target.address:
        return None, stack.enter_context(batch_engine.connect(target.address,
                                                              security=security))
    if target.cluster_system != "local":
        from simmate_k8s import hpc as hpc_jobs

        cluster = stack.enter_context(hpc_jobs.job_cluster(
            target.cluster_system, target.hpc, on_event=lambda line: click.echo(line, err=True)))
        return cluster, stack.enter_context(batch_engine.connect(
            cluster.scheduler_address, security=getattr(cluster, "security", None)))
    cluster = stack.enter_context(batch_engine.local_cluster(target.workers))
    return cluster, stack.enter_context(batch_engine.connect(cluster.scheduler_address))


def _compute(plan: _Plan):
    import contextlib
    import uuid

    from simmate_k8s import engine as batch_engine
    from simmate_k8s.commands.output import BatchProgress
    from simmate_k8s.flows.inputs import BatchRun

    parts, done, engine = plan.parts, plan.done, plan.engine
    runs = [BatchRun(part, batch_id or str(uuid.uuid4()))
            for part, batch_id in zip(parts, plan.ids, strict=True)]
    total = sum(len(part.items) for part in parts)
    with contextlib.ExitStack() as stack:
        cluster, client = _connect(stack, plan.target, plan.security)
        workers = max(1, batch_engine.check_workers(client, engine.url))
        todo = max(sum(item["key"] not in done for item in part.items) for part in parts)
        chunk = plan.batching.chunk_size or batch_engine.chunk_size(todo, workers)
        bar = stack.enter_context(BatchProgress(
            engine, [run.batch_id for run in runs], total,
            already_done=sum(item["key"] in done for part in parts for item in part.items),
            show=plan.show_progress))
        try:
            batch_engine.run_batches(runs, client, rerun=plan.batching.rerun, chunk=chunk,
                                     on_poll=bar.poll)
        except KeyboardInterrupt:
            batch_engine.stop_quietly(client, cluster)
            _interrupted(engine, runs)
    return runs


def _interrupted(engine, runs) -> None:
    """Ctrl-C: say what is saved and how to resume, then leave at once (exit 130)."""
    from simmate_k8s import results

    summaries = [results.summarize(results.batch_report(engine, run.batch_id), run.batch_id)
                 for run in runs]
    completed = sum(s["completed"] + s["cached"] for s in summaries)
    total = sum(s["total"] for s in summaries)
    failed = sum(len(s["failed"]) for s in summaries)
    click.echo(f"\ninterrupted: {completed} of {total} items completed, {failed} failed, "
               f"{total - completed - failed} not finished (all saved work is kept). "
               "Run the same command again to compute only what is missing.", err=True)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(130)  # the flow threads are blocked on a closed client: do not wait for them


def _report(engine, runs, as_json: bool, seconds: float) -> None:
    from simmate_k8s import results
    from simmate_k8s.commands.output import describe_result, print_json, print_table, row_state

    outcome = []
    for run in runs:
        report = results.batch_report(engine, run.batch_id)
        outcome.append((run, report, results.summarize(report, run.batch_id)))
    failed = sum(len(s["failed"]) + len(s["missing"]) for _, _, s in outcome)
    if as_json:
        print_json([{
            "batch_id": run.batch_id, "flow_run_id": run.flow_run_id or None,
            "workflow": run.batch.workflow.name, "parameters": run.batch.parameters,
            "summary": {key: summary[key] for key in ("total", "completed", "cached")}
            | {"failed": [{"input": n, "error": e} for n, e in summary["failed"]],
               "missing": summary["missing"],
               "reexecuted": [{"input": n, "executions": c} for n, c in summary["reexecuted"]]},
            "items": [{"input": row["input_name"], "status": row_state(row),
                       "error": row["error"], "result": row["result"],
                       "executions": row["executions"]} for row in report],
        } for run, report, summary in outcome])
    else:
        rows = [row for _, report, _ in outcome for row in report]
        shown = rows if len(rows) <= TABLE_ROWS else [r for r in rows if r["status"] != "completed"]
        if shown:
            print_table(["INPUT", "STATUS", "RESULT"], [
                [row["input_name"], row_state(row),
                 row["error"] if row["status"] == "failed" else describe_result(row["result"])]
                for row in shown])
        for run, _, summary in outcome:
            notes = [f"{summary['completed']} completed", f"{summary['cached']} already done",
                     f"{len(summary['failed'])} failed"]
            if summary["missing"]:
                notes.append(f"{len(summary['missing'])} not finished")
            if summary["reexecuted"]:
                notes.append(f"{len(summary['reexecuted'])} executed more than once "
                             "(a worker was lost)")
            click.echo(f"batch {run.batch_id}: {summary['total']} items: {', '.join(notes)}"
                       f"  [simmate-k8s results --batch {run.batch_id}]", err=True)
            if run.error and not summary["total"]:
                click.echo(f"flow run failed: {run.error}", err=True)
        click.echo(f"{seconds:.1f} s", err=True)
    for _, _, summary in outcome:
        if summary["failed"] or summary["missing"]:
            click.echo(results.failure_message(summary), err=True)
    if failed or any(not s["total"] for _, _, s in outcome):
        sys.exit(1)
