"""``simmate-k8s status`` and ``simmate-k8s logs``: the runs `submit` made, on either backend
(Prefect Server flow runs, or Kubernetes Jobs with ``--backend job``).

Only click is imported at module level; the backend (Prefect or the Kubernetes client) is
imported when the command runs.
"""

from __future__ import annotations

import sys

import click

from simmate_k8s.commands.options import backend_option, job_target_options, open_backend

BACKEND_HELP = ("Where the runs were submitted: Prefect Server flow runs, or Kubernetes Jobs "
                "(`submit --backend job`).")


def show_event(event, names: dict[str, str], err: bool = False) -> None:
    """``HH:MM:SS | LEVEL | message``; a pod's log line as it is (it carries its own time)."""
    prefix = f"{names[event.run_id]} | " if names else ""
    if event.timestamp is None:
        click.echo(f"{prefix}{event.message}", err=err)
    else:
        click.echo(f"{str(event.timestamp)[11:19]} | {event.level:<7} | {prefix}{event.message}",
                   err=err)


def follow_runs(backend, run_ids: list[str], names: dict[str, str] | None = None,
                err: bool = False) -> dict[str, str]:
    """Print states and logs as they come; returns {id: last state}."""
    try:
        return backend.follow(run_ids, lambda event: show_event(event, names or {}, err))
    except KeyboardInterrupt:
        click.echo("stopped following; the runs go on. Check them with "
                   f"`{backend.command('status', run_ids)}`", err=True)
        sys.exit(130)


def exit_from_states(backend, final: dict[str, str]) -> None:
    """Exit 0 when every run succeeded, else 1 naming the others."""
    bad = {run_id: state for run_id, state in final.items() if not backend.succeeded(state)}
    for run_id, state in bad.items():
        verb = "ended" if backend.finished(state) else "is"
        click.echo(f"{backend.noun} {run_id} {verb} {state}", err=True)
    sys.exit(1 if bad else 0)


def _time(value) -> str:
    return str(value)[:19].replace("T", " ") if value else "-"


@click.command()
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN_ID...")
@backend_option(BACKEND_HELP)
@job_target_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(run_ids, backend, job, as_json):
    """Show the state of flow runs (with --backend job: of Jobs, by name).

    \b
    Examples:
      simmate-k8s status 6f1e7c34-0c8b-4d53-9a50-0d4d1d5d5e11
      simmate-k8s status --backend job -n simmate simmate-relaxation-emt-x7k2q9
    """
    from simmate_k8s.commands.output import print_json, print_table

    runs = open_backend(backend, job=job)
    rows = runs.status(run_ids)
    if as_json:
        print_json([row.record for row in rows])
        return
    print_table([runs.noun.upper(), runs.label_header, "FLOW", "STATE", "STARTED", "ENDED",
                 "MESSAGE"],
                [[row.id, row.label, row.flow, row.state, _time(row.started), _time(row.ended),
                  row.message] for row in rows])


@click.command()
@click.argument("run_id", metavar="RUN_ID")
@click.option("--follow", "-f", is_flag=True,
              help="Keep streaming until the run ends; exit 0 on success, 1 otherwise.")
@backend_option(BACKEND_HELP)
@job_target_options
def logs(run_id, follow, backend, job):
    """Show the logs of a flow run (with --backend job: of a Job's pods); with --follow, until
    it ends."""
    runs = open_backend(backend, job=job)
    if not follow:
        for event in runs.logs(run_id):
            show_event(event, {})
        return
    (run_id,) = runs.check_ids([run_id])
    exit_from_states(runs, follow_runs(runs, [run_id]))
