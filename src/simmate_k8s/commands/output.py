"""Printing for the commands: aligned tables for people, strict JSON and CSV for programs, and
the progress of a running batch."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from datetime import date, datetime

import click


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    click.echo(line(headers))
    for row in cells:
        click.echo(line(row))


def _default(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def strict(value):
    """Non-finite floats (rows written by older releases) as null: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict(item) for item in value]
    return value


def print_json(value) -> None:
    click.echo(json.dumps(strict(value), indent=2, default=_default, allow_nan=False))


def print_csv(columns, rows: list[dict]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _default(strict(row.get(c))) if
                         isinstance(row.get(c), datetime | date) else strict(row.get(c))
                         for c in columns])


def row_state(row: dict) -> str:
    """A result row's status as shown: "cached" for an item found already done."""
    return "cached" if row.get("cached") else row["status"]


def describe_result(result: dict | None) -> str:
    """A result in a table cell: the energies (and steps) of a relaxation, else key=value."""
    if not result:
        return ""
    if "energy_ev" in result:
        text = f"{result['energy_ev']:.6f} eV ({result['energy_per_atom_ev']:.6f} eV/atom)"
        if "steps" in result:
            text += f", {result['steps']} steps" + ("" if result.get("converged", True)
                                                     else " (not converged)")
        return text
    return ", ".join(f"{key}={value}" for key, value in result.items())


class _NoBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def progress(total: int, label: str, show: bool = True):
    """A progress bar on stderr (stdout stays clean for tables and JSON), or nothing; only on a
    terminal, so logs and CI output get no half-drawn bars."""
    if not show or not sys.stderr.isatty():
        yield _NoBar()
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as bar:
        yield bar


class BatchProgress:
    """Follows running batches in the results database: a bar on a terminal, otherwise a line
    every LINE_SECONDS; and a heartbeat line for items that report progress (long runs)."""

    LINE_SECONDS = 10.0

    def __init__(self, engine, batch_ids: list[str], total: int, already_done: int,
                 show: bool = True):
        self.engine, self.batch_ids, self.total = engine, batch_ids, total
        self.already_done, self.show = already_done, show
        self.done = already_done
        self.last_line = self.last_heartbeat = time.monotonic()
        self.bar = None
        self.tty = sys.stderr.isatty()

    def __enter__(self):
        if self.show and self.tty and self.total > 1:
            self.bar = click.progressbar(length=self.total, label="items", file=sys.stderr,
                                         show_pos=True)
            self.bar.__enter__()
            self.bar.update(self.already_done)
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
        return False

    def poll(self) -> None:
        if not self.show:
            return
        from simmate_k8s import results

        try:
            counts = [results.status_counts(self.engine, b) for b in self.batch_ids]
        except Exception:  # the database may be away for a moment: the batch waits it out too
            return
        finished = sum(c.get("completed", 0) + c.get("failed", 0) for c in counts)
        failed = sum(c.get("failed", 0) for c in counts)
        done = self.already_done + finished
        now = time.monotonic()
        if self.bar is not None:
            self.bar.update(done - self.done)
        elif now - self.last_line >= self.LINE_SECONDS and done != self.done:
            click.echo(f"progress: {done} of {self.total} items"
                       + (f" ({failed} failed)" if failed else ""), err=True)
            self.last_line = now
        self.done = done
        if now - self.last_heartbeat >= self.LINE_SECONDS:
            self.last_heartbeat = now
            for batch_id in self.batch_ids:
                for row in results.running_progress(self.engine, batch_id):
                    shown = ", ".join(f"{k} {v}" for k, v in row["progress"].items() if k != "at")
                    click.echo(f"\n  running {row['input_name']}: {shown}" if self.bar else
                               f"  running {row['input_name']}: {shown}", err=True)
