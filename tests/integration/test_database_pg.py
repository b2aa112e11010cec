"""Claims and saves on a real PostgreSQL: races, restarts, outages, refused logins."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from simmate_k8s import database, migrations, results
from simmate_k8s.errors import DatabaseAuthError
from tests.conftest import result_rows


def _item(i):
    digest = results.input_digest(i)
    return {"key": results.item_key("f", "1", digest, {}), "name": f"item-{i}", "digest": digest}


def _claim(engine, i, batch="b", execution=None):
    return results.claim(engine, _item(i), workflow="f", version="1", parameters={},
                         batch_id=batch, flow_run_id=None,
                         execution_id=execution or uuid.uuid4().hex, worker="t",
                         queued_at=results.now(), rerun=False)


@pytest.fixture
def engine(pg_url):
    engine = database.create_engine(pg_url, pool_size=4)
    migrations.upgrade(engine)
    yield engine
    engine.dispose()


def test_8_threads_racing_for_50_items_leave_one_row_each_and_count_executions(engine, pg_url):
    def work(n):
        execution = uuid.uuid4().hex
        if _claim(engine, n % 50, execution=execution) is not None:
            results.finish(engine, _item(n % 50)["key"], execution, status="completed",
                           result={"n": n})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(400)))
    rows = result_rows(pg_url)
    assert len(rows) == 50 and all(row["status"] == "completed" for row in rows)
    # a completed item is never claimed again: executions count only the racing claims
    assert all(1 <= row["executions"] <= 8 for row in rows)


def test_a_pooled_connection_killed_by_a_restart_is_replaced(postgres, engine):
    _claim(engine, 0)
    postgres.restart()  # the pooled connection is now dead, and was not idle long enough to ping
    for i in range(1, 5):
        database.retrying(lambda i=i: _claim(engine, i),
                          lambda error: database.is_transient(engine, error), 30)
    assert results.row_count(engine) == 5


def test_a_database_that_stays_down_fails_after_the_retry_time(postgres, engine):
    _claim(engine, 0)
    postgres.stop()
    try:
        started = time.monotonic()
        with pytest.raises((sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error)):
            database.retrying(lambda: _claim(engine, 1),
                              lambda error: database.is_transient(engine, error), 1.5)
        assert 1.4 < time.monotonic() - started < 15
    finally:
        postgres.start()


def test_a_wrong_password_is_not_retried(postgres, pg_url):
    wrong = database.create_engine(pg_url.replace(f":{postgres.password}@", ":nope@"))
    started = time.monotonic()
    with pytest.raises(DatabaseAuthError, match="refused the connection") as raised:
        database.connect_with_retry(wrong, timeout=30)
    assert time.monotonic() - started < 5
    assert "nope" not in str(raised.value) and postgres.password not in str(raised.value)
