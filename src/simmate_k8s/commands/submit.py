"""``simmate-k8s submit``: a batch of a workflow to the cluster, as Prefect Server flow runs or
(``--backend job``) plain Kubernetes Jobs; ``--watch`` follows them to the end.

Only click is imported at module level; the backend (Prefect or the Kubernetes client) is
imported when the command runs.
"""

from __future__ import annotations

import contextlib

import click

from simmate_k8s.commands.options import (
    backend_option,
    batch_options,
    flow_arguments,
    job_submit_options,
    open_backend,
    prefect_options,
)
from simmate_k8s.commands.runs import exit_from_states, follow_runs


@click.command()
@flow_arguments
@batch_options
@click.option("--preset", default=None, metavar="NAME",
              help="Resources of the flow-run Job: a preset of the release's "
                   "agent.jobPresets (default, small, large unless the release defines others).")
@click.option("--run-name", metavar="NAME",
              help="Name the flow run (batches get NAME-1, NAME-2, ...; with --backend job "
                   "it names the Job) [default: the first input's file name].")
@click.option("--watch", is_flag=True,
              help="Follow states and logs to the end; exit 0 on success, 1 otherwise.")
@click.option("--json", "as_json", is_flag=True, help="Print the created runs as JSON.")
@backend_option("Prefect Server flow runs, or plain Kubernetes Jobs.")
@prefect_options
@job_submit_options
def submit(flow_name, inputs, params, batching, preset, run_name, watch, as_json, backend,
           prefect, job):
    """Submit FLOW on every INPUT to the cluster as one batch: one flow run (and one Job).

    INPUT is a POSCAR file, a directory of them, or a quoted glob. Every input is checked
    here first: a bad file creates nothing. On the cluster, items already completed in the
    results database are skipped (--rerun computes them again); --batch-size splits the
    inputs into several flow runs.

    \b
    Examples:
      simmate-k8s submit relaxation_emt POSCAR --watch
      simmate-k8s submit relaxation_emt structures/ --preset large --json
      simmate-k8s submit relaxation_emt 'structures/*.POSCAR' --batch-size 500
      simmate-k8s submit smoke --param n=100 --label gpu
      simmate-k8s submit relaxation_emt structures/ --backend job --watch
    """
    from simmate_k8s.backends import Submission
    from simmate_k8s.commands.output import print_json, print_table
    from simmate_k8s.flows import inputs as batch_inputs
    from simmate_k8s.flows.registry import get_workflow

    runs = open_backend(backend, prefect=prefect, job=job)
    workflow = get_workflow(flow_name)
    # every input checked before anything is created
    batch = batch_inputs.from_arguments(workflow, inputs, params)
    for warning in batch.warnings:
        click.echo(f"warning: {warning}", err=True)
    submission = Submission(batch.split(batching.batch_size), tuple(params), batching.rerun,
                            preset, run_name)
    if job.dry_run:
        _print_objects(runs.dry_run(submission), as_json)
        return
    created = _submit(runs, submission)
    if as_json and not watch:
        print_json([run.record for run in created])
        return
    ids = [run.id for run in created]
    if not as_json:
        print_table(["BATCH", "ITEMS", runs.noun.upper(), runs.where_header],
                    [[run.batch_id, run.items, run.id, run.where] for run in created])
    if not watch:
        click.echo(f"follow: {runs.command('logs', ids)} --follow" if len(ids) == 1 else
                   f"check: {runs.command('status', ids)}", err=True)
        return
    final = follow_runs(runs, ids, names={run.id: run.batch_id[:8] for run in created}
                        if len(created) > 1 else {}, err=as_json)
    if as_json:
        print_json([{**run.record, "state": final[run.id]} for run in created])
    exit_from_states(runs, final)


def _submit(runs, submission):
    """backend.submit with a progress bar for several batches, drawn from the first run
    created on: a check that fails before prints its one line alone."""
    from simmate_k8s.commands.output import progress

    total = len(submission.batches)
    with contextlib.ExitStack() as stack:
        bars = []

        def done(run):
            if not bars:
                bars.append(stack.enter_context(progress(total, f"{runs.noun}s",
                                                         show=total > 1)))
            bars[0].update(1)

        return runs.submit(submission, on_done=done)


def _print_objects(objects: list[dict], as_json: bool) -> None:
    from simmate_k8s import jobs
    from simmate_k8s.commands.output import print_json

    if as_json:
        print_json(objects)
        return
    click.echo("# the ConfigMap gets an ownerReference to the Job once the Job exists")
    click.echo(jobs.to_yaml(objects), nl=False)
