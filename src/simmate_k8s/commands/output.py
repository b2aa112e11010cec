"""Printing for the commands: aligned tables for people, JSON for programs."""

from __future__ import annotations

import contextlib
import json
import sys
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


def print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=_default))


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
