"""``simmate-k8s db``: check and upgrade the results database.

Only click is imported at module level; the database code is imported when a command runs.
"""

from __future__ import annotations

import click


def existing_database():
    """(url, engine or None, server version) for the configured URL. Reading never creates a
    SQLite file, nor tables (`results` reads through this too)."""
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


@click.group()
def db():
    """Results database commands."""


@db.command()
def check():
    """Connect to the results database and report on it."""
    from simmate_k8s import database, migrations
    from simmate_k8s import results as store

    url, engine, version = existing_database()
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

    url, engine, _ = existing_database()
    if engine is None:
        engine = database.create_engine(url)
    before, after = migrations.upgrade(engine)
    if before == after:
        click.echo(f"{database.redact(url)}: already at revision {after}")
    else:
        click.echo(f"{database.redact(url)}: upgraded from {before or 'empty'} to {after}")
