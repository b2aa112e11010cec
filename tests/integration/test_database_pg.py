"""database.save_result on a real PostgreSQL: idempotence, races, restarts."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from simmate_k8s import database


def _save(engine, i, value=0, **kwargs):
    return database.save_result(engine, flow_name="f", task_name="t", parameters={"i": i},
                                result={"i": i, "value": value}, **kwargs)


def test_same_work_saved_twice_from_8_threads_leaves_one_row_each(pg_url):
    engine = database.create_engine(pg_url, pool_size=4)
    database.ensure_schema(engine)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: _save(engine, i % 50, value=i), range(400)))
    rows = database.load_results(engine)
    assert len(rows) == 50
    assert all(row["created_at"] <= row["updated_at"] for row in rows)


def test_a_pooled_connection_killed_by_a_restart_is_replaced_5_saves(postgres, pg_url):
    engine = database.create_engine(pg_url)
    database.ensure_schema(engine)
    _save(engine, 0)
    postgres.restart()  # the pooled connection is now dead, and was not idle long enough to ping
    for i in range(1, 5):
        _save(engine, i, retry_for=30)
    assert len(database.load_results(engine)) == 5


def test_a_database_that_stays_down_fails_the_save_after_retry_for(postgres, pg_url):
    engine = database.create_engine(pg_url)
    database.ensure_schema(engine)
    _save(engine, 0)
    postgres.stop()
    try:
        started = time.monotonic()
        with pytest.raises((sa.exc.DBAPIError, engine.dialect.loaded_dbapi.Error)):
            _save(engine, 1, retry_for=1.5)
        assert 1.4 < time.monotonic() - started < 15
    finally:
        postgres.start()
