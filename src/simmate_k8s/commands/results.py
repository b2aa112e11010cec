"""``simmate-k8s results``: show, filter and export what is in the results database.

Only click is imported at module level; the database code is imported when the command runs.
(Inside the command, :mod:`simmate_k8s.results` is imported as ``store``.)
"""

from __future__ import annotations

import click

from simmate_k8s.commands.db import existing_database
from simmate_k8s.errors import UserError

STATUSES = ("completed", "failed", "running", "missing")
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
    from simmate_k8s.commands.output import (
        describe_result,
        print_csv,
        print_json,
        print_table,
        row_state,
    )

    if sum(map(bool, (as_json, as_csv, export_path))) > 1:
        raise UserError("choose one of --json, --csv and --export")
    url, engine, _ = existing_database()
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
        [[row["input_name"], row.get("workflow") or "-", row_state(row),
          row["error"] if row["status"] == "failed" else describe_result(row.get("result")),
          (row.get("batch_id") or "-")[:8],
          row["finished_at"].strftime("%Y-%m-%d %H:%M:%S") if row.get("finished_at") else "-"]
         for row in rows],
    )


def _check_schema(engine) -> None:
    from simmate_k8s import migrations

    revision = migrations.current_revision(engine)
    if revision is not None and revision != migrations.HEAD:
        migrations.ensure_current(engine)  # raises SchemaError: says to run `db upgrade`
