"""Commands that need no cluster: run batches on Dask here, read and export the results.

Only click is imported at module level; everything heavy is imported inside the commands. A
batch whose items are all done is answered from the results database without starting Dask.
"""

from __future__ import annotations

import os
import re
import sys
import time

import click

from simmate_k8s.errors import UserError
from simmate_k8s.hpc import hpc_options

BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TABLE_ROWS = 50  # a larger batch prints its failures and a summary; `results` has the rest
STATUSES = ("completed", "failed", "running", "missing")


def batch_options(function):
    """What splits and resumes a batch: shared by `run` and `submit`."""
    for option in reversed([
        click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=None,
                     help="At most this many inputs per flow run (one batch each) "
                          "[default: all inputs in one flow run]."),
        click.option("--rerun", is_flag=True,
                     help="Compute again even what is already completed."),
    ]):
        function = option(function)
    return function


def _batch_id(value: str | None) -> str | None:
    if value is not None and not BATCH_ID.fullmatch(value):
        raise UserError(f"--batch-id {value!r}: letters, digits, '.', '_' and '-', "
                        "at most 64 characters")
    return value


@click.command()
@click.argument("flow_name", metavar="FLOW")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Set a workflow parameter (see `simmate-k8s flows`); repeatable.")
@click.option("--workers", "-w", type=click.IntRange(1, 512), default=2, show_default=True,
              help="Worker processes of the local Dask cluster.")
@click.option("--address", envvar="SIMMATE_DASK_ADDRESS", metavar="tcp://HOST:PORT",
              help="Use this Dask scheduler instead of a local cluster "
                   "[env SIMMATE_DASK_ADDRESS]. Its workers need the preload. A tls:// "
                   "scheduler needs DASK_DISTRIBUTED__COMM__TLS__CA_FILE, "
                   "..._TLS__CLIENT__CERT and ..._TLS__CLIENT__KEY.")
@batch_options
@click.option("--chunk-size", type=click.IntRange(1, 100_000), default=None,
              help="Items per Prefect task [default: 1, more when there are over "
                   "50 items per worker].")
@click.option("--batch-id", metavar="ID", help="Name the batch (one flow run) "
              "[default: a new UUID].")
@click.option("--cluster", "cluster_system", default="local", show_default=True,
              type=click.Choice(["local", "slurm", "pbs", "sge", "lsf", "htcondor"]),
              help="Where the workers run: a local cluster, or batch jobs of a queue system "
                   "(the scheduler lives in this process; options below as for "
                   "`simmate-k8s workers`).")
@hpc_options(system=None, join=False, dry_run=False, pass_as="hpc")
@click.option("--input-names", "names_file", hidden=True, type=click.File(),
              help="JSON list: the inputs' names as the submitter gave them (Job backend).")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="Show Prefect's task logs.")
def run(flow_name, inputs, params, workers, address, batch_size, rerun, chunk_size, batch_id,
        cluster_system, hpc, names_file, as_json, verbose):
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
    os.environ.setdefault("PREFECT__LOGGING__LEVEL", "INFO" if verbose else "WARNING")
    from simmate_k8s.flows import inputs as batch_inputs
    from simmate_k8s.flows.registry import get_workflow
    from simmate_k8s.settings import Settings

    started = time.monotonic()
    settings = Settings.from_env()
    batch_id = _batch_id(batch_id)
    workflow = get_workflow(flow_name)
    batch = batch_inputs.from_arguments(workflow, inputs, params)  # all checked: nothing runs yet
    if names_file is not None:
        batch.rename(_names(names_file, len(batch.items)))
    for warning in batch.warnings:
        click.echo(f"warning: {warning}", err=True)
    if address and "://" not in address:
        raise UserError(f"--address {address!r}: expected tcp://HOST:PORT or tls://HOST:PORT")
    if address and cluster_system != "local":
        raise UserError("--address and --cluster: choose one (an existing scheduler, or one "
                        "this command starts for its jobs)")
    if cluster_system != "local":
        from simmate_k8s import hpc as hpc_jobs

        hpc_jobs.validate(cluster_system, hpc)  # bad HPC options: one line, nothing submitted
    security = None
    if address:  # certificates for a tls:// scheduler: checked before anything runs
        from simmate_k8s import engine as batch_engine

        security = batch_engine.security(address, settings)
    from simmate_k8s import results

    engine, _ = results.open_results_database(settings)
    parts = batch.split(batch_size)
    ids = [batch_id if len(parts) == 1 and batch_id else
           f"{batch_id}-{index + 1}" if batch_id else None for index in range(len(parts))]
    done = set() if rerun else results.completed_keys(engine, (i["key"] for i in batch.items))
    if all(item["key"] in done for item in batch.items):
        runs = _record_cached(engine, parts, ids, rerun)  # nothing to compute: no Dask at all
    else:
        runs = _compute(engine, parts, ids, done, workers, address, rerun, chunk_size, as_json,
                        cluster_system, hpc, security)
    _report(engine, runs, as_json, time.monotonic() - started)


def _names(handle, count: int) -> list[str]:
    import json

    try:
        names = json.load(handle)
    except ValueError:
        names = None
    if not isinstance(names, list) or len(names) != count:
        raise UserError(f"--input-names {handle.name}: expected a JSON list of {count} names")
    return [str(name) for name in names]


def _record_cached(engine, parts, ids, rerun):
    import uuid

    from simmate_k8s import results
    from simmate_k8s.flows.inputs import BatchRun

    runs = []
    for part, batch_id in zip(parts, ids, strict=True):
        run = BatchRun(part, batch_id or str(uuid.uuid4()), flow_run_id="")
        results.record_batch(engine, batch_id=run.batch_id, workflow=part.workflow.name,
                             version=part.workflow.version, parameters=part.parameters,
                             items=part.items, rerun=rerun, flow_run_id=None)
        runs.append(run)
    return runs


def _compute(engine, parts, ids, done, workers, address, rerun, chunk_size, as_json,
             cluster_system="local", hpc=None, security=None):
    import contextlib
    import uuid

    from simmate_k8s import engine as batch_engine
    from simmate_k8s.commands.output import BatchProgress
    from simmate_k8s.flows.inputs import BatchRun

    runs = [BatchRun(part, batch_id or str(uuid.uuid4()))
            for part, batch_id in zip(parts, ids, strict=True)]
    total = sum(len(part.items) for part in parts)
    with contextlib.ExitStack() as stack:
        cluster = None
        if address:
            client = stack.enter_context(batch_engine.connect(address, security=security))
        elif cluster_system != "local":
            from simmate_k8s import hpc as hpc_jobs

            cluster = stack.enter_context(hpc_jobs.job_cluster(
                cluster_system, hpc, on_event=lambda line: click.echo(line, err=True)))
            client = stack.enter_context(batch_engine.connect(
                cluster.scheduler_address, security=getattr(cluster, "security", None)))
        else:
            cluster = stack.enter_context(batch_engine.local_cluster(workers))
            client = stack.enter_context(batch_engine.connect(cluster.scheduler_address))
        workers = max(1, batch_engine.check_workers(client, engine.url))
        todo = max(sum(item["key"] not in done for item in part.items) for part in parts)
        chunk = chunk_size or batch_engine.chunk_size(todo, workers)
        bar = stack.enter_context(BatchProgress(
            engine, [run.batch_id for run in runs], total,
            already_done=sum(item["key"] in done for part in parts for item in part.items),
            show=not as_json))
        try:
            batch_engine.run_batches(runs, client, rerun=rerun, chunk=chunk, on_poll=bar.poll)
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


def _summarize_result(result: dict | None) -> str:
    if not result:
        return ""
    if "energy_ev" in result:
        text = f"{result['energy_ev']:.6f} eV ({result['energy_per_atom_ev']:.6f} eV/atom)"
        if "steps" in result:
            text += f", {result['steps']} steps" + ("" if result.get("converged", True)
                                                     else " (not converged)")
        return text
    return ", ".join(f"{key}={value}" for key, value in result.items())


def _row_state(row: dict) -> str:
    return "cached" if row.get("cached") else row["status"]


def _report(engine, runs, as_json: bool, seconds: float) -> None:
    from simmate_k8s import results
    from simmate_k8s.commands.output import print_json, print_table

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
            "items": [{"input": row["input_name"], "status": _row_state(row),
                       "error": row["error"], "result": row["result"],
                       "executions": row["executions"]} for row in report],
        } for run, report, summary in outcome])
    else:
        rows = [row for _, report, _ in outcome for row in report]
        shown = rows if len(rows) <= TABLE_ROWS else [r for r in rows if r["status"] != "completed"]
        if shown:
            print_table(["INPUT", "STATUS", "RESULT"], [
                [row["input_name"], _row_state(row),
                 row["error"] if row["status"] == "failed" else _summarize_result(row["result"])]
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


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def flows(as_json):
    """List the workflows, their inputs and parameters (with the ranges they must lie in)."""
    from simmate_k8s.commands.output import print_json, print_table
    from simmate_k8s.flows.registry import WORKFLOWS

    if as_json:
        print_json({
            name: {"summary": w.summary, "version": w.version,
                   "input": "files" if w.takes_files else None,
                   "parameters": {p.name: {"default": p.default, "expected": p._expected(),
                                           "help": p.help} for p in w.params}}
            for name, w in sorted(WORKFLOWS.items())
        })
        return
    print_table(
        ["FLOW", "INPUT", "PARAMETERS (defaults)", "WHAT IT DOES"],
        [
            [name, "files" if w.takes_files else "-",
             " ".join(f"{k}={v}" for k, v in w.parameter_defaults().items()) or "-", w.summary]
            for name, w in sorted(WORKFLOWS.items())
        ],
    )


def _existing_database():
    """(url, engine or None, server version) for the configured URL. Reading never creates a
    SQLite file, nor tables."""
    from pathlib import Path

    from simmate_k8s import database
    from simmate_k8s.settings import Settings

    settings = Settings.from_env()
    url = database.parse_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database).expanduser().exists():
        return url, None, None
    engine = database.create_engine(url)
    version = database.connect_with_retry(engine, settings.connect_timeout)
    return url, engine, version


CSV_COLUMNS = ("input_name", "workflow", "status", "energy_ev", "energy_per_atom_ev",
               "max_force_ev_per_a", "converged", "steps", "error", "batch_id", "flow_run_id",
               "executions", "queued_at", "started_at", "finished_at", "compute_seconds",
               "worker", "key")


@click.command()
@click.option("--flow", "--workflow", "flow_name", metavar="FLOW", help="Only this workflow.")
@click.option("--batch", "batch_id", metavar="ID", help="Only this batch, in input order "
              "(items found already done included).")
@click.option("--status", type=click.Choice(STATUSES), help="Only rows with this status.")
@click.option("--json", "as_json", is_flag=True, help="Print full rows as strict JSON.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV line per row.")
@click.option("--export", "export_path", metavar="FILE",
              type=click.Path(dir_okay=False, writable=True),
              help="Write the relaxed (or given) structures with their energies to FILE: "
                   ".extxyz/.xyz (extended XYZ) or .db (ASE database).")
def results(flow_name, batch_id, status, as_json, as_csv, export_path):
    """Show what is in the results database (SIMMATE_DATABASE_URL).

    \b
    Examples:
      simmate-k8s results --batch 3f2c...            # one batch, in input order
      simmate-k8s results --flow relaxation_emt --status failed
      simmate-k8s results --flow relaxation_emt --csv > energies.csv
      simmate-k8s results --flow relaxation_emt --export relaxed.extxyz
    """
    from simmate_k8s import database
    from simmate_k8s import results as store
    from simmate_k8s.commands.output import print_csv, print_json, print_table

    if sum(map(bool, (as_json, as_csv, export_path))) > 1:
        raise UserError("choose one of --json, --csv and --export")
    url, engine, _ = _existing_database()
    if engine is not None:
        _check_schema(engine)
    rows = [] if engine is None or not store.has_tables(engine) else store.load_rows(
        engine, workflow=flow_name, batch_id=batch_id, status=status)
    if export_path:
        from simmate_k8s.export import write_structures

        count = write_structures(rows, export_path)
        click.echo(f"wrote {count} structures to {export_path}", err=True)
        return
    if as_json:
        print_json(rows)
        return
    if as_csv:
        print_csv(CSV_COLUMNS, [{**(row.get("result") or {}), **row} for row in rows])
        return
    if not rows:
        click.echo(f"no results in {database.redact(url)}", err=True)
        return
    print_table(
        ["INPUT", "FLOW", "STATUS", "RESULT", "BATCH", "FINISHED"],
        [[row["input_name"], row.get("workflow") or "-", _row_state(row),
          row["error"] if row["status"] == "failed" else _summarize_result(row.get("result")),
          (row.get("batch_id") or "-")[:8],
          row["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if row.get("finished_at") else "-"]
         for row in rows],
    )


def _check_schema(engine) -> None:
    from simmate_k8s import migrations

    revision = migrations.current_revision(engine)
    if revision is not None and revision != migrations.HEAD:
        migrations.ensure_current(engine)  # raises SchemaError: says to run `db upgrade`


@click.group()
def db():
    """Results database commands."""


@db.command()
def check():
    """Connect to the results database and report on it."""
    from simmate_k8s import database, migrations
    from simmate_k8s import results as store

    url, engine, version = _existing_database()
    click.echo(f"database: {database.redact(url)}")
    if engine is None:
        click.echo("status:   not created yet (it is created by the first run)")
        return
    revision = migrations.current_revision(engine)
    click.echo(f"server:   {version}")
    if revision is None:
        click.echo("schema:   empty (created by the first run, or `simmate-k8s db upgrade`)")
        return
    state = "current" if revision == migrations.HEAD else (
        f"behind {migrations.HEAD}: run `simmate-k8s db upgrade`")
    click.echo(f"schema:   revision {revision} ({state})")
    if revision == migrations.HEAD:
        click.echo(f"rows:     {store.row_count(engine)}")


@db.command()
def upgrade():
    """Bring the results database to this release's schema (in place; back it up first)."""
    from simmate_k8s import database, migrations

    url, engine, _ = _existing_database()
    if engine is None:
        engine = database.create_engine(url)
    before, after = migrations.upgrade(engine)
    if before == after:
        click.echo(f"{database.redact(url)}: already at revision {after}")
    else:
        click.echo(f"{database.redact(url)}: upgraded from {before or 'empty'} to {after}")
