import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer

EXAMPLES = Path(__file__).resolve().parents[1] / "src" / "simmate_k8s" / "flows" / "examples"
CLI = [str(Path(sys.executable).with_name("simmate-k8s"))]


@pytest.fixture(scope="session")
def postgres():
    """One private PostgreSQL server for the whole test session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def pg_url(postgres):
    """A fresh, empty database on the session's server."""
    return postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'results.sqlite3'}"


@pytest.fixture
def cli_env(tmp_path):
    """Environment for CLI subprocesses: private data dir, quiet Prefect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMMATE_", "PREFECT__"))}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["HOME"] = str(tmp_path / "home")
    return env


def run_cli(*args, env, timeout=300):
    return subprocess.run([*CLI, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def result_rows(url: str) -> list[dict]:
    """Every row of the results table (empty if it does not exist yet)."""
    import sqlalchemy as sa

    from simmate_k8s import database, results

    engine = database.create_engine(url)
    try:
        if not results.has_tables(engine):
            return []
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(sa.select(results.results_table))]
    finally:
        engine.dispose()


def count_rows(url: str) -> int:
    return len(result_rows(url))
