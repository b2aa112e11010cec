"""Alembic migrations of the results database, on a real PostgreSQL and on SQLite."""

import hashlib
import json
import multiprocessing
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from simmate_k8s import database, migrations, results
from simmate_k8s.errors import SchemaError

N = 8

# --- 0.1.0, as it was: its table (simmate_k8s/database.py of 0.1.0) and what its save wrote ---

OLD = sa.MetaData()
old_results = sa.Table(
    "simmate_results",
    OLD,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow_name", sa.String(200), nullable=False, index=True),
    sa.Column("flow_run_id", sa.String(64), nullable=True),
    sa.Column("task_key", sa.String(300), nullable=False, unique=True),
    sa.Column("input_hash", sa.String(64), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("result", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def old_save(engine, flow_name, task_name, parameters, result, flow_run_id, when):
    """The row 0.1.0's database.save_result wrote (its upsert, first time: an insert)."""
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    row = dict(flow_name=flow_name, flow_run_id=flow_run_id,
               task_key=f"{flow_name}/{task_name}/{digest}", input_hash=digest,
               status="completed", result=result, created_at=when, updated_at=when)
    with engine.begin() as connection:
        connection.execute(old_results.insert(), row)
    return row


def make_0_1_0_database(engine) -> list[dict]:
    """What a 0.1.0 user has: the table from create_all, no version table, three saves."""
    OLD.create_all(engine)
    return [
        old_save(engine, "emt-relax", "relax", {"structure": "Al_111_slab.POSCAR", "fmax": 0.05},
                 {"energy": -12.5, "steps": 7}, "run-1", T0),
        old_save(engine, "emt-relax", "static_energy", {"structure": "Cu.POSCAR"},
                 {"energy": -3.25}, "run-1", T0 + timedelta(seconds=1)),
        old_save(engine, "square", "square", {"x": 3}, {"value": 9}, None,
                 T0 + timedelta(seconds=2)),
    ]


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request):
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def engine(url):
    engine = database.create_engine(url)
    yield engine
    engine.dispose()


def schema_differences(engine, target=results.metadata) -> list:
    """Alembic autogenerate's diff between the database and ``target`` (types included)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True, "version_table": migrations.VERSION_TABLE})
        return compare_metadata(context, target)


def versions(engine) -> list[str]:
    with engine.connect() as connection:
        return connection.execute(
            sa.text(f"SELECT version_num FROM {migrations.VERSION_TABLE}")).scalars().all()


def table_names(engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def walk_to(engine, revision: str) -> None:
    """Alembic upgrade/downgrade to ``revision`` (what a release at that revision would do)."""
    with engine.begin() as connection:
        cfg = migrations.config(connection=connection)
        current = migrations._state(connection)[0]
        if current is None or int(revision) >= int(current):
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)


def claim_and_finish(engine, batch_id: str, name: str, digest: str) -> str:
    """One item of a new batch, the way the workflow code writes it."""
    key = results.item_key("square", "1", digest, {"power": 2})
    results.record_batch(engine, batch_id=batch_id, workflow="square", version="1",
                         parameters={"power": 2}, items=[dict(position=0, name=name, key=key)],
                         rerun=False, flow_run_id="run-2")
    executions = results.claim(
        engine, dict(key=key, name=name, digest=digest), workflow="square", version="1",
        parameters={"power": 2}, batch_id=batch_id, flow_run_id="run-2",
        execution_id="exec-1", worker="worker-1", queued_at=results.now(), rerun=False)
    assert executions == 1
    assert results.finish(engine, key, "exec-1", status=results.COMPLETED, result={"value": 4},
                          compute_seconds=0.5)
    return key


# --- the revisions themselves -----------------------------------------------------------------


def test_head_and_revisions_match_the_versions_folder():
    script = ScriptDirectory.from_config(migrations.config())
    assert script.get_current_head() == migrations.HEAD
    walked = [revision.revision for revision in script.walk_revisions()]
    assert tuple(reversed(walked)) == migrations.REVISIONS
    assert (migrations.SCRIPT_LOCATION / "script.py.mako").is_file()


# (1) a 0.1.0 database upgrades in place


def test_a_0_1_0_database_upgrades_in_place(engine):
    old_rows = make_0_1_0_database(engine)
    with engine.begin() as connection:  # not a key 0.1.0's save made: input_name "legacy"
        connection.execute(old_results.insert(), dict(
            flow_name="odd", flow_run_id=None, task_key="hand-made", input_hash="0" * 64,
            status="failed", result={"error": "x"}, created_at=T0, updated_at=T0))
    assert migrations.current_revision(engine) == "0001"

    assert migrations.upgrade(engine) == ("0001", migrations.HEAD)

    assert migrations.current_revision(engine) == migrations.HEAD
    assert versions(engine) == [migrations.HEAD]
    assert table_names(engine) >= {"simmate_results", "simmate_batches", "simmate_batch_items"}
    with engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(
            sa.select(results.results_table).order_by(results.results_table.c.id))]
    assert [row["id"] for row in rows] == [1, 2, 3, 4]
    for row, old in zip(rows, old_rows, strict=False):
        assert row["key"] == hashlib.sha256(old["task_key"].encode()).hexdigest()
        assert row["workflow"] == old["flow_name"]
        assert row["workflow_version"] == "legacy"
        assert row["input_name"] == old["task_key"].split("/")[1]
        assert row["input_hash"] == old["input_hash"]
        assert row["parameters"] == {}
        assert row["status"] == "completed"
        assert row["result"] == old["result"]
        assert row["flow_run_id"] == old["flow_run_id"]
        assert row["executions"] == 1
        assert row["created_at"].replace(tzinfo=UTC) == old["created_at"]
        assert row["updated_at"].replace(tzinfo=UTC) == old["updated_at"]
        new_only = ("error", "batch_id", "execution_id", "worker", "queued_at", "started_at",
                    "finished_at", "compute_seconds", "progress", "provenance")
        assert all(row[column] is None for column in new_only), row
    assert [row["input_name"] for row in rows] == ["relax", "static_energy", "square", "legacy"]
    assert rows[3]["key"] == hashlib.sha256(b"hand-made").hexdigest()
    assert rows[3]["status"] == "failed"

    # the new tables work, and new rows get ids after the legacy ones (the sequence survived)
    key = claim_and_finish(engine, "batch-1", "three", results.input_digest({"x": 3}))
    new = results.row_for(engine, key)
    assert new["id"] == 5
    assert new["status"] == results.COMPLETED
    assert new["result"] == {"value": 4}
    assert [item["key"] for item in results.batch_report(engine, "batch-1")] == [key]
    assert len(results.load_rows(engine)) == 5
    assert results.completed_keys(engine, [rows[0]["key"], key]) == {rows[0]["key"], key}
    assert schema_differences(engine) == []


def test_downgrade_to_0001_gives_0_1_0_its_table_back(engine):
    old_rows = make_0_1_0_database(engine)
    migrations.upgrade(engine)
    key = claim_and_finish(engine, "batch-1", "three", results.input_digest({"x": 3}))

    walk_to(engine, "0001")

    assert table_names(engine) == {"simmate_results", migrations.VERSION_TABLE}
    assert schema_differences(engine, OLD) == []
    with engine.connect() as connection:
        rows = connection.execute(sa.select(old_results).order_by(old_results.c.id)).all()
    assert [row.task_key for row in rows] == [old["task_key"] for old in old_rows] + [
        f"square/{key}"]
    assert [row.result for row in rows[:3]] == [old["result"] for old in old_rows]
    assert migrations.upgrade(engine) == ("0001", migrations.HEAD)
    assert schema_differences(engine) == []


def test_a_failed_upgrade_leaves_the_0_1_0_database_as_it_was(engine):
    """All revisions run in one transaction: an error in the last statement undoes the rest."""
    old_rows = make_0_1_0_database(engine)
    with engine.begin() as connection:  # takes the name 0002's last index needs
        connection.execute(sa.text("CREATE TABLE squatter (status INTEGER)"))
        connection.execute(sa.text("CREATE INDEX ix_simmate_results_batch_id ON squatter (status)"))
    with pytest.raises(sa.exc.DatabaseError):
        migrations.upgrade(engine)
    assert migrations.current_revision(engine) == "0001"
    assert table_names(engine) == {"simmate_results", "squatter"}
    assert _only_squatter(schema_differences(engine, OLD))
    with engine.connect() as connection:
        assert [row.task_key for row in connection.execute(sa.select(old_results))] == [
            old["task_key"] for old in old_rows]


def _only_squatter(differences) -> bool:
    return all(difference[0] in ("remove_table", "remove_index")
               and difference[1].name in ("squatter", "ix_simmate_results_batch_id")
               for difference in differences)


def test_downgrade_to_base_empties_the_database(engine):
    migrations.upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(migrations.config(connection=connection), "base")
    assert table_names(engine) == {migrations.VERSION_TABLE}
    assert migrations.current_revision(engine) is None
    assert migrations.upgrade(engine) == (None, migrations.HEAD)


# (2) an empty database is created at HEAD


def test_ensure_current_creates_an_empty_database_at_head(engine):
    assert migrations.current_revision(engine) is None
    migrations.ensure_current(engine)
    assert migrations.current_revision(engine) == migrations.HEAD
    assert versions(engine) == [migrations.HEAD]
    assert results.has_tables(engine)
    claim_and_finish(engine, "batch-1", "three", results.input_digest({"x": 3}))


def test_tables_from_create_all_count_as_head_and_get_stamped(engine):
    results.metadata.create_all(engine)
    assert migrations.current_revision(engine) == migrations.HEAD
    migrations.ensure_current(engine)
    assert versions(engine) == [migrations.HEAD]


# (3) a database behind (or ahead of) this release is refused, not changed


def test_ensure_current_refuses_a_0_1_0_database(engine):
    make_0_1_0_database(engine)
    with pytest.raises(SchemaError) as raised:
        migrations.ensure_current(engine)
    message = str(raised.value)
    assert "simmate-k8s db upgrade" in message
    assert "revision 0001, this release writes 0002" in message
    assert database.redact(engine.url) in message
    if engine.url.password:
        assert engine.url.password not in message
    assert "\n" not in message
    assert migrations.VERSION_TABLE not in table_names(engine)  # not even stamped


def test_ensure_current_refuses_a_database_stamped_behind(engine):
    walk_to(engine, "0001")
    assert versions(engine) == ["0001"]
    with pytest.raises(SchemaError, match="simmate-k8s db upgrade"):
        migrations.ensure_current(engine)
    assert migrations.upgrade(engine) == ("0001", migrations.HEAD)
    migrations.ensure_current(engine)


def test_a_database_from_a_newer_release_is_refused(engine):
    migrations.ensure_current(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '0099'"))
    assert migrations.current_revision(engine) == "0099"
    for call in (migrations.ensure_current, migrations.upgrade):
        with pytest.raises(SchemaError, match="revision 0099, which a newer simmate-k8s made"):
            call(engine)


# (4) many processes starting at once on a brand-new database


def _ensure_current_from_thread(url, barrier, errors):
    engine = database.create_engine(url)
    try:
        barrier.wait()
        migrations.ensure_current(engine)
    except Exception as error:  # collected: the test asserts there are none
        errors.append(repr(error))
    finally:
        engine.dispose()


def test_concurrent_ensure_current_from_8_threads_creates_the_tables_once(url):
    _race_threads(url)


def _race_threads(url):
    barrier, errors = threading.Barrier(N), []
    threads = [threading.Thread(target=_ensure_current_from_thread, args=(url, barrier, errors))
               for _ in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    _assert_created_once(url)


def test_concurrent_ensure_current_on_a_repeatable_read_postgresql(postgres, pg_url):
    """A server whose default isolation is REPEATABLE READ: the check after the lock must still
    see the tables the first process committed."""
    name = sa.make_url(pg_url).database
    engine = database.create_engine(postgres.url())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_isolation = \'repeatable read\'')
    engine.dispose()
    _race_threads(pg_url)


def _ensure_current_in_process(url, barrier, queue):
    engine = database.create_engine(url)
    try:
        barrier.wait()
        migrations.ensure_current(engine)
        queue.put("ok")
    except Exception as error:
        queue.put(repr(error))
    finally:
        engine.dispose()


def test_concurrent_ensure_current_from_8_processes_creates_the_tables_once(url):
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(N), context.Queue()
    processes = [context.Process(target=_ensure_current_in_process, args=(url, barrier, queue))
                 for _ in range(N)]
    for process in processes:
        process.start()
    outcomes = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == ["ok"] * N
    _assert_created_once(url)


def _assert_created_once(url):
    engine = database.create_engine(url)
    try:
        assert migrations.current_revision(engine) == migrations.HEAD
        assert versions(engine) == [migrations.HEAD]
        assert schema_differences(engine) == []
        claim_and_finish(engine, "batch-1", "three", results.input_digest({"x": 3}))
    finally:
        engine.dispose()


# (5) the migrated schema is results.metadata, column for column


def test_schema_walked_from_empty_equals_results_metadata(engine):
    migrations.upgrade(engine)
    assert schema_differences(engine) == []


def test_schema_upgraded_from_0_1_0_equals_results_metadata(engine):
    make_0_1_0_database(engine)
    migrations.upgrade(engine)
    assert schema_differences(engine) == []


def test_0001_is_exactly_what_0_1_0_made(engine):
    walk_to(engine, "0001")
    assert schema_differences(engine, OLD) == []


def test_autogenerate_at_head_finds_nothing_to_write(engine, tmp_path):
    """What a developer's `command.revision(autogenerate=True)` would write: an empty
    revision (and the template renders)."""
    migrations.upgrade(engine)
    with engine.connect() as connection:
        cfg = migrations.config(connection=connection)
        cfg.set_main_option("path_separator", "os")  # write into tmp_path, not the package
        cfg.set_main_option("version_locations", os.pathsep.join(
            [str(migrations.SCRIPT_LOCATION / "versions"), str(tmp_path)]))
        script = command.revision(cfg, "nothing", autogenerate=True, rev_id="9999",
                                  version_path=str(tmp_path))
    text = Path(script.path).read_text()
    compile(text, script.path, "exec")
    assert "def upgrade() -> None:" in text and "def downgrade() -> None:" in text
    assert "    op." not in text  # no operation in either direction


# (6) upgrading a database at HEAD changes nothing


def test_upgrade_twice_is_a_no_op(engine):
    make_0_1_0_database(engine)
    assert migrations.upgrade(engine) == ("0001", migrations.HEAD)
    with engine.connect() as connection:
        before = connection.execute(sa.select(results.results_table)).all()

    started = time.perf_counter()
    assert migrations.upgrade(engine) == (migrations.HEAD, migrations.HEAD)
    migrations.ensure_current(engine)
    elapsed = time.perf_counter() - started

    with engine.connect() as connection:
        assert connection.execute(sa.select(results.results_table)).all() == before
    assert versions(engine) == [migrations.HEAD]
    assert elapsed < 1.0  # two reads of the revision, no Alembic
