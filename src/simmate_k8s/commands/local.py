"""Commands that need no cluster: run workflows on Dask here, read the results database.

Only click is imported at module level; everything heavy is imported inside the commands.
"""

from __future__ import annotations

import os
import sys

import click

from simmate_k8s.errors import UserError


@click.command()
@click.argument("flow_name", metavar="FLOW")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Set a workflow parameter (see `simmate-k8s flows`); repeatable.")
@click.option("--workers", "-w", type=click.IntRange(1, 512), default=2, show_default=True,
              help="Worker processes of the local Dask cluster.")
@click.option("--address", envvar="SIMMATE_DASK_ADDRESS", metavar="tcp://HOST:PORT",
              help="Use this Dask scheduler instead of a local cluster "
                   "[env SIMMATE_DASK_ADDRESS]. Its workers need the preload.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None,
              help="Flow runs in flight at once [default: 2 x workers + 2].")
@click.option("--json", "as_json", is_flag=True, help="Print outcomes as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show Prefect's task logs.")
def run(flow_name, inputs, params, workers, address, concurrency, as_json, verbose):
    """Run FLOW once per INPUT file on Dask, saving results to the results database.

    \b
    Examples:
      simmate-k8s run relaxation_emt POSCAR
      simmate-k8s run relaxation_emt structures/*.POSCAR --workers 4 --param fmax=0.02
      simmate-k8s run smoke --address tcp://scheduler:8786
    """
    os.environ.setdefault("PREFECT__LOGGING__LEVEL", "INFO" if verbose else "WARNING")
    from simmate_k8s import database, engine
    from simmate_k8s.flows.library import get_workflow

    workflow = get_workflow(flow_name)
    runs = workflow.build_runs(inputs, params)  # every input checked before anything starts
    if address:
        engine.check_scheduler(address)
    else:
        url = database.parse_url(database.configured_url())
        try:  # fail here, with one line, rather than in every worker process
            database.connect_with_retry(database.create_engine(url), database.connect_timeout())
        except ConnectionError as error:
            raise UserError(str(error)) from None

    from simmate_k8s.commands.output import progress

    with engine.dask_scheduler(workers, address) as scheduler_address, \
            progress(len(runs), "flow runs", show=len(runs) > 1 and not as_json) as bar:
        outcomes = engine.run_batch(
            workflow, runs, scheduler_address,
            concurrency or 2 * workers + 2,
            on_done=lambda outcome: bar.update(1),
        )
    _report(outcomes, as_json)
    failed = sum(not outcome.succeeded for outcome in outcomes)
    if failed:
        click.echo(f"{failed} of {len(outcomes)} flow runs failed", err=True)
        sys.exit(1)


def _summarize(records: list[dict]) -> str:
    if len(records) == 1:
        result = records[0]["result"]
        if "energy_ev" in result:
            text = f"{result['energy_ev']:.6f} eV ({result['energy_per_atom_ev']:.6f} eV/atom)"
            if "steps" in result:
                text += f", {result['steps']} steps"
            return text
    return f"{len(records)} results"


def _report(outcomes, as_json: bool) -> None:
    from simmate_k8s.commands.output import print_json, print_table

    if as_json:
        print_json([
            {
                "input": o.label,
                "flow_run_id": o.flow_run_id,
                "succeeded": o.succeeded,
                "message": o.message,
                "results": [r["result"] for r in o.results],
            }
            for o in outcomes
        ])
        return
    print_table(
        ["INPUT", "STATE", "RESULT", "FLOW RUN"],
        [
            [o.label, "Success" if o.succeeded else "Failed",
             _summarize(o.results) if o.succeeded else o.message, o.flow_run_id]
            for o in outcomes
        ],
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def flows(as_json):
    """List the workflows, their inputs and parameters."""
    from simmate_k8s.commands.output import print_json, print_table
    from simmate_k8s.flows.library import WORKFLOWS

    if as_json:
        print_json({
            name: {"summary": w.summary, "input": w.input_parameter,
                   "parameters": w.parameter_defaults()}
            for name, w in sorted(WORKFLOWS.items())
        })
        return
    print_table(
        ["FLOW", "INPUT", "PARAMETERS (defaults)", "WHAT IT DOES"],
        [
            [name, w.input_parameter or "-",
             " ".join(f"{k}={v}" for k, v in w.parameter_defaults().items()) or "-", w.summary]
            for name, w in sorted(WORKFLOWS.items())
        ],
    )


def _connect_existing_database():
    """(url, engine, server version) for the configured URL; engine is None when the SQLite
    file does not exist yet (reading must not create it)."""
    from pathlib import Path

    from simmate_k8s import database

    url = database.parse_url(database.configured_url())
    if url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().exists():
        return url, None, None
    engine = database.create_engine(url)
    try:
        version = database.connect_with_retry(engine, database.connect_timeout(),
                                              create_schema=False)
    except ConnectionError as error:
        raise UserError(str(error)) from None
    return url, engine, version


@click.command()
@click.option("--flow", "flow_name", metavar="FLOW", help="Only rows of this workflow.")
@click.option("--json", "as_json", is_flag=True, help="Print full rows as JSON.")
def results(flow_name, as_json):
    """Show what is in the results database (SIMMATE_DATABASE_URL)."""
    from simmate_k8s import database
    from simmate_k8s.commands.output import print_json, print_table

    url, engine, _ = _connect_existing_database()
    rows = database.load_results(engine, flow_name) if engine is not None else []
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo(f"no results in {database.redact(url)}", err=True)
        return
    print_table(
        ["ID", "FLOW", "STEP", "STATUS", "RESULT", "UPDATED"],
        [
            [row["id"], row["flow_name"], row["task_key"].split("/")[1], row["status"],
             _summarize([{"result": row["result"]}]) if "energy_ev" in row["result"]
             else ", ".join(f"{k}={v}" for k, v in row["result"].items()),
             row["updated_at"].strftime("%Y-%m-%d %H:%M:%S")]
            for row in rows
        ],
    )


@click.group()
def db():
    """Results database commands."""


@db.command()
def check():
    """Connect to the results database and report on it."""
    from simmate_k8s import database

    url, engine, version = _connect_existing_database()
    if engine is None:
        click.echo(f"database: {database.redact(url)}")
        click.echo("status:   not created yet (it is created by the first run)")
        return
    present = database.table_exists(engine)
    count = len(database.load_results(engine)) if present else 0
    click.echo(f"database: {database.redact(url)}")
    click.echo(f"server:   {version}")
    click.echo(f"table:    {database.results_table.name} "
               + (f"present ({count} rows)" if present else "absent (created by the first run)"))
