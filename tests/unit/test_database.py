import pytest
import sqlalchemy as sa

from simmate_k8s import database
from simmate_k8s.errors import UserError


@pytest.mark.parametrize("url, driver", [
    ("postgresql://u:p@db:5432/results", "postgresql+psycopg"),
    ("postgres://u:p@db/results", "postgresql+psycopg"),
    ("postgresql+psycopg://u:p@db/results", "postgresql+psycopg"),
    ("sqlite:////tmp/x.sqlite3", "sqlite"),
])
def test_parse_url_picks_the_driver(url, driver):
    assert database.parse_url(url).drivername == driver


@pytest.mark.parametrize("url, expected", [
    ("not a url", "is not a database URL"),
    ("mysql://u:p@db/results", "only postgresql and sqlite"),
    ("postgresql://u:p@/results", "needs a host and a database"),
    ("postgresql://u:p@db", "needs a host and a database"),
    ("sqlite://", "needs a file path"),
])
def test_parse_url_rejects_with_one_redacted_line(url, expected):
    with pytest.raises(UserError) as info:
        database.parse_url(url)
    message = info.value.message
    assert expected in message and "\n" not in message
    assert ":p@" not in message


def test_redact_hides_the_password():
    assert database.redact("postgresql://simmate:s3cret@db:5432/r") == \
        "postgresql://simmate:***@db:5432/r"


def test_default_url_is_sqlite_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("SIMMATE_DATABASE_URL", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert database.configured_url() == f"sqlite:///{tmp_path}/simmate-k8s/results.sqlite3"


@pytest.mark.parametrize("raw", ["abc", "0", "-3"])
def test_bad_connect_timeout_is_a_user_error(monkeypatch, raw):
    monkeypatch.setenv("SIMMATE_DB_CONNECT_TIMEOUT", raw)
    with pytest.raises(UserError):
        database.connect_timeout()


def test_input_hash_ignores_key_order():
    assert database.input_hash({"a": 1, "b": 2}) == database.input_hash({"b": 2, "a": 1})
    assert database.input_hash({"a": 1}) != database.input_hash({"a": 2})


def test_save_is_idempotent_on_sqlite(sqlite_url):
    engine = database.create_engine(sqlite_url)
    database.ensure_schema(engine)
    first = database.save_result(engine, flow_name="f", task_name="t", parameters={"x": 1},
                                 result={"v": 1}, flow_run_id="run-1")
    second = database.save_result(engine, flow_name="f", task_name="t", parameters={"x": 1},
                                  result={"v": 2}, flow_run_id="run-2")
    database.save_result(engine, flow_name="f", task_name="t", parameters={"x": 2},
                         result={"v": 3})
    rows = database.load_results(engine)
    assert first == second
    assert len(rows) == 2
    assert rows[0]["result"] == {"v": 2} and rows[0]["flow_run_id"] == "run-2"
    assert rows[0]["updated_at"] >= rows[0]["created_at"]
    assert database.load_results(engine, "other") == []


def test_connect_with_retry_gives_up_within_the_timeout():
    engine = database.create_engine("postgresql://u:pw@127.0.0.1:1/db")
    with pytest.raises(ConnectionError) as info:
        database.connect_with_retry(engine, timeout=1.0)
    assert "u:***@127.0.0.1:1/db" in str(info.value) and "pw" not in str(info.value)


def test_load_results_of_a_missing_table_is_empty(sqlite_url):
    engine = database.create_engine(sqlite_url)
    assert database.load_results(engine) == []
    assert not sa.inspect(engine).has_table("simmate_results")
