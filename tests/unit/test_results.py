"""The results tables on SQLite: claiming and finishing items, batch reports, strict JSON."""

import math
import shutil
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from simmate_k8s import database, migrations, results
from simmate_k8s.results import COMPLETED, FAILED, RUNNING

WORKFLOW, VERSION, PARAMETERS = "relaxation_emt", "1", {"fmax": 0.05, "max_steps": 500}
QUEUED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A database made by the real migrations, once; each test gets a copy of the file."""
    path = tmp_path_factory.mktemp("template") / "results.sqlite3"
    engine = database.create_engine(f"sqlite:///{path}")
    migrations.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture
def engine(migrated, sqlite_url):
    shutil.copyfile(migrated, sqlite_url.removeprefix("sqlite:///"))
    engine = database.create_engine(sqlite_url)
    yield engine
    engine.dispose()


def make_item(name, content=None, position=0, parameters=PARAMETERS):
    digest = results.input_digest(content if content is not None else f"POSCAR of {name}")
    return {"position": position, "name": name, "digest": digest,
            "key": results.item_key(WORKFLOW, VERSION, digest, parameters)}


def claim(engine, item, batch="batch-a", execution="exec-1", rerun=False, worker="w1"):
    return results.claim(engine, item, workflow=WORKFLOW, version=VERSION, parameters=PARAMETERS,
                         batch_id=batch, flow_run_id=f"run-{batch}", execution_id=execution,
                         worker=worker, queued_at=QUEUED, rerun=rerun)


def finish(engine, item, execution="exec-1", status=COMPLETED, result=None, error=None):
    return results.finish(engine, item["key"], execution, status=status,
                          result=result if result is not None or status != COMPLETED
                          else {"energy_ev": -1.0},
                          error=error, compute_seconds=0.5, provenance={"python": "3"})


def record(engine, batch_id, items, rerun=False):
    results.record_batch(engine, batch_id=batch_id, workflow=WORKFLOW, version=VERSION,
                         parameters=PARAMETERS, items=items, rerun=rerun,
                         flow_run_id=f"run-{batch_id}")


def rows(engine):
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(
            sa.select(results.results_table).order_by(results.results_table.c.id))]


def test_the_schema_is_the_one_results_writes(engine):
    assert migrations.current_revision(engine) == migrations.HEAD
    assert results.has_tables(engine)
    inspector = sa.inspect(engine)
    for table in results.TABLES:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == set(table.c.keys()), table.name


# --- claim -----------------------------------------------------------------------------------


def test_a_first_claim_returns_1_and_writes_a_running_row(engine):
    item = make_item("a.POSCAR")
    assert claim(engine, item) == 1
    (row,) = rows(engine)
    assert (row["key"], row["status"], row["executions"]) == (item["key"], RUNNING, 1)
    assert (row["workflow"], row["workflow_version"], row["input_name"]) == (
        WORKFLOW, VERSION, "a.POSCAR")
    assert row["input_hash"] == item["digest"] and row["parameters"] == PARAMETERS
    assert (row["batch_id"], row["flow_run_id"], row["execution_id"], row["worker"]) == (
        "batch-a", "run-batch-a", "exec-1", "w1")
    assert row["started_at"] is not None and row["finished_at"] is None
    assert row["queued_at"].replace(tzinfo=UTC) == QUEUED


def test_a_claim_of_a_completed_row_returns_none_and_changes_nothing(engine):
    item = make_item("a.POSCAR")
    claim(engine, item)
    assert finish(engine, item)
    before = rows(engine)
    assert claim(engine, item, execution="exec-2") is None
    assert claim(engine, item, batch="batch-b", execution="exec-3") is None
    assert rows(engine) == before
    assert before[0]["status"] == COMPLETED and before[0]["result"] == {"energy_ev": -1.0}


def test_a_failed_row_is_claimed_again(engine):
    item = make_item("a.POSCAR")
    claim(engine, item)
    finish(engine, item, status=FAILED, error="ValueError: bad")
    assert claim(engine, item, batch="batch-b", execution="exec-2") == 1
    (row,) = rows(engine)
    assert (row["status"], row["error"], row["result"], row["batch_id"]) == (
        RUNNING, None, None, "batch-b")


def test_rerun_reclaims_a_row_completed_by_another_batch(engine):
    item = make_item("a.POSCAR")
    claim(engine, item, batch="batch-a")
    finish(engine, item)
    assert claim(engine, item, batch="batch-b", execution="exec-2", rerun=True) == 1
    (row,) = rows(engine)
    assert (row["status"], row["batch_id"], row["execution_id"], row["result"]) == (
        RUNNING, "batch-b", "exec-2", None)
    assert row["finished_at"] is None and row["compute_seconds"] is None


def test_rerun_does_not_reclaim_a_row_completed_by_this_batch(engine):
    """A rerun batch whose worker was lost after an item completed must not compute it twice."""
    item = make_item("a.POSCAR")
    claim(engine, item, batch="batch-b", rerun=True)
    finish(engine, item)
    assert claim(engine, item, batch="batch-b", execution="exec-2", rerun=True) is None
    (row,) = rows(engine)
    assert (row["status"], row["execution_id"], row["executions"]) == (COMPLETED, "exec-1", 1)


def test_rerun_reclaims_a_row_without_a_batch(engine):
    item = make_item("a.POSCAR")
    claim(engine, item)
    finish(engine, item)
    with engine.begin() as connection:
        connection.execute(sa.update(results.results_table).values(batch_id=None))
    assert claim(engine, item, batch="batch-b", execution="exec-2", rerun=True) == 1


def test_a_retried_claim_of_the_same_execution_is_not_counted(engine):
    """The statement was retried after a lost connection: it may have committed already."""
    item = make_item("a.POSCAR")
    assert claim(engine, item) == 1
    assert claim(engine, item) == 1
    assert claim(engine, item) == 1
    (row,) = rows(engine)
    assert row["executions"] == 1 and row["execution_id"] == "exec-1"


def test_a_second_execution_in_the_same_batch_counts_2(engine):
    """Dask ran the task again (a worker was lost mid-item): the re-execution is visible."""
    item = make_item("a.POSCAR")
    assert claim(engine, item, execution="exec-1", worker="w1") == 1
    assert claim(engine, item, execution="exec-2", worker="w2") == 2
    assert claim(engine, item, execution="exec-2", worker="w2") == 2  # its retry
    assert claim(engine, item, execution="exec-3", worker="w3") == 3
    (row,) = rows(engine)
    assert (row["executions"], row["execution_id"], row["worker"]) == (3, "exec-3", "w3")


def test_another_batch_starts_counting_again(engine):
    item = make_item("a.POSCAR")
    claim(engine, item, batch="batch-a", execution="exec-1")
    claim(engine, item, batch="batch-a", execution="exec-2")  # 2 in batch-a, never finished
    assert claim(engine, item, batch="batch-b", execution="exec-3") == 1


def test_claims_of_different_items_are_independent(engine):
    first, second = make_item("a.POSCAR"), make_item("b.POSCAR")
    same_content_other_params = make_item("a.POSCAR", content="POSCAR of a.POSCAR",
                                          parameters={"fmax": 0.01, "max_steps": 500})
    assert claim(engine, first) == claim(engine, second) == 1
    assert claim(engine, same_content_other_params, execution="exec-9") == 1
    assert len(rows(engine)) == 3


# --- finish ----------------------------------------------------------------------------------


def test_finish_records_the_outcome(engine):
    item = make_item("a.POSCAR")
    claim(engine, item)
    assert finish(engine, item, result={"energy_ev": -3.5, "steps": 4})
    (row,) = rows(engine)
    assert (row["status"], row["result"], row["error"]) == (
        COMPLETED, {"energy_ev": -3.5, "steps": 4}, None)
    assert row["compute_seconds"] == 0.5 and row["provenance"] == {"python": "3"}
    assert row["finished_at"] >= row["started_at"]


def test_finish_with_a_stale_execution_id_returns_false(engine):
    item = make_item("a.POSCAR")
    claim(engine, item, execution="exec-1")
    claim(engine, item, execution="exec-2")  # took the item over
    assert finish(engine, item, execution="exec-1", result={"energy_ev": -9.0}) is False
    assert rows(engine)[0]["status"] == RUNNING and rows(engine)[0]["result"] is None
    assert finish(engine, item, execution="exec-2") is True
    assert rows(engine)[0]["result"] == {"energy_ev": -1.0}


def test_finish_of_an_unknown_item_returns_false(engine):
    assert finish(engine, make_item("never-claimed")) is False
    assert rows(engine) == []


def test_progress_is_kept_only_while_running(engine):
    item = make_item("a.POSCAR")
    claim(engine, item)
    results.report_progress(engine, item["key"], "exec-1", {"step": 10, "fmax": 0.2})
    results.report_progress(engine, item["key"], "stale", {"step": 99})
    assert rows(engine)[0]["progress"] == {"step": 10, "fmax": 0.2}
    assert results.running_progress(engine, "batch-a") == [
        {"input_name": "a.POSCAR", "progress": {"step": 10, "fmax": 0.2}}]
    finish(engine, item)
    assert rows(engine)[0]["progress"] is None
    assert results.running_progress(engine, "batch-a") == []


# --- batches and their reports ---------------------------------------------------------------


def test_record_batch_twice_is_a_no_op(engine):
    items = [make_item(name, position=i) for i, name in enumerate("abc")]
    record(engine, "batch-a", items)
    record(engine, "batch-a", items)
    with engine.connect() as connection:
        batch = connection.execute(sa.select(results.batches_table)).one()
        positions = connection.execute(sa.select(results.batch_items_table.c.position)).all()
    assert (batch.id, batch.size, batch.rerun, batch.workflow) == ("batch-a", 3, False, WORKFLOW)
    assert len(positions) == 3


def test_record_batch_of_many_items(engine):
    items = [make_item(f"s{i:05d}", position=i) for i in range(2500)]
    record(engine, "big", items)
    report = results.batch_report(engine, "big")
    assert [row["input_name"] for row in report] == [item["name"] for item in items]
    assert results.completed_keys(engine, [item["key"] for item in items]) == set()


def test_batch_report_is_in_input_order_with_missing_and_cached(engine):
    old, done, broken, waiting, untouched = (make_item(n) for n in "vwxyz")
    claim(engine, old, batch="earlier")
    finish(engine, old)
    items = [dict(item, position=i) for i, item in enumerate([waiting, broken, old, done,
                                                              untouched])]
    record(engine, "batch-a", items)
    for item in (done, broken, waiting):
        claim(engine, item, batch="batch-a", execution=f"e-{item['name']}")
    finish(engine, done, execution="e-w")
    finish(engine, broken, execution="e-x", status=FAILED, error="ValueError: no")
    report = results.batch_report(engine, "batch-a")
    assert [(r["position"], r["input_name"], r["status"], r["cached"]) for r in report] == [
        (0, "y", RUNNING, False), (1, "x", FAILED, False), (2, "v", COMPLETED, True),
        (3, "w", COMPLETED, False), (4, "z", "missing", False)]
    assert [r["key"] for r in report] == [item["key"] for item in items]
    assert report[1]["error"] == "ValueError: no"
    assert report[2]["batch_id"] == "earlier"


def test_batch_report_uses_the_batchs_own_name_for_an_item(engine):
    """The same content under another name, found done: reported under this batch's name."""
    first = make_item("first-name.POSCAR", content="same structure")
    claim(engine, first, batch="earlier")
    finish(engine, first)
    again = make_item("second-name.POSCAR", content="same structure")
    assert again["key"] == first["key"]
    record(engine, "later", [again])
    (row,) = results.batch_report(engine, "later")
    assert row["input_name"] == "second-name.POSCAR" and row["cached"] is True


def test_completed_keys(engine):
    done, failed, running = make_item("a"), make_item("b"), make_item("c")
    for item in (done, failed, running):
        claim(engine, item, execution=item["name"])
    finish(engine, done, execution="a")
    finish(engine, failed, execution="b", status=FAILED, error="x")
    keys = [done["key"], failed["key"], running["key"], make_item("d")["key"], done["key"]]
    assert results.completed_keys(engine, keys) == {done["key"]}
    assert results.completed_keys(engine, []) == set()
    many = [make_item(f"m{i}")["key"] for i in range(1200)] + [done["key"]]
    assert results.completed_keys(engine, many) == {done["key"]}


def test_status_counts_and_row_count(engine):
    items = [make_item(n) for n in "abc"]
    for item in items:
        claim(engine, item, execution=item["name"])
    finish(engine, items[0], execution="a")
    finish(engine, items[1], execution="b", status=FAILED, error="x")
    assert results.status_counts(engine, "batch-a") == {COMPLETED: 1, FAILED: 1, RUNNING: 1}
    assert results.status_counts(engine, "other") == {}
    assert results.row_count(engine) == 3


def test_load_rows_filters_and_orders_by_batch_and_position(engine):
    first = [make_item(n, position=i) for i, n in enumerate(["b1", "a1"])]
    second = [make_item(n, position=i) for i, n in enumerate(["z2", "c2", "a1"])]
    record(engine, "batch-1", first)
    for item in first:
        claim(engine, item, batch="batch-1", execution=item["name"])
        finish(engine, item, execution=item["name"])
    record(engine, "batch-2", second)
    for item in second[:2]:
        claim(engine, item, batch="batch-2", execution=item["name"] + "'")
    finish(engine, second[1], execution="c2'", status=FAILED, error="boom")
    assert [r["input_name"] for r in results.load_rows(engine)] == ["b1", "a1", "z2", "c2"]
    assert [r["input_name"] for r in results.load_rows(engine, batch_id="batch-2")] == [
        "z2", "c2", "a1"]
    assert [r["input_name"] for r in results.load_rows(engine, status=FAILED)] == ["c2"]
    assert [r["input_name"] for r in results.load_rows(engine, batch_id="batch-2",
                                                       status=COMPLETED)] == ["a1"]
    assert results.load_rows(engine, workflow="smoke") == []
    assert results.load_rows(engine, batch_id="batch-2", workflow="smoke") == []
    assert results.load_rows(engine, batch_id="no-such-batch") == []


def test_load_rows_lists_an_input_given_twice_once(engine):
    item = make_item("a")
    record(engine, "batch-1", [dict(item, position=0), dict(item, position=1)])
    claim(engine, item, batch="batch-1")
    finish(engine, item)
    assert len(results.load_rows(engine)) == 1
    assert len(results.batch_report(engine, "batch-1")) == 2


# --- summaries -------------------------------------------------------------------------------


def test_summarize_counts_every_kind_of_item(engine):
    cached, done, failed, twice, missing = (make_item(n) for n in
                                            ["cached", "done", "failed", "twice", "missing"])
    claim(engine, cached, batch="earlier")
    finish(engine, cached)
    items = [cached, done, failed, twice, missing, done]  # done given twice
    record(engine, "b", [dict(item, position=i) for i, item in enumerate(items)])
    claim(engine, done, batch="b", execution="d")
    finish(engine, done, execution="d")
    claim(engine, failed, batch="b", execution="f")
    finish(engine, failed, execution="f", status=FAILED, error="ValueError: NaN forces")
    claim(engine, twice, batch="b", execution="t1")
    claim(engine, twice, batch="b", execution="t2")
    finish(engine, twice, execution="t2")
    summary = results.summarize(results.batch_report(engine, "b"), "b")
    assert summary == {"batch_id": "b", "total": 6, "completed": 2, "cached": 2,
                       "failed": [("failed", "ValueError: NaN forces")],
                       "missing": ["missing"], "reexecuted": [("twice", 2)]}


def test_summarize_of_a_clean_batch(engine):
    items = [make_item(n, position=i) for i, n in enumerate("ab")]
    record(engine, "b", items)
    for item in items:
        claim(engine, item, batch="b", execution=item["name"])
        finish(engine, item, execution=item["name"])
    summary = results.summarize(results.batch_report(engine, "b"), "b")
    assert (summary["completed"], summary["cached"], summary["failed"], summary["missing"],
            summary["reexecuted"]) == (2, 0, [], [], [])
    assert results.failure_message(summary) == ""


def test_a_running_item_counts_as_not_finished(engine):
    item = make_item("slow")
    record(engine, "b", [item])
    claim(engine, item, batch="b")
    assert results.summarize(results.batch_report(engine, "b"), "b")["missing"] == ["slow"]


def summary(failed=(), missing=(), total=10):
    return {"batch_id": "b", "total": total, "completed": 0, "cached": 0,
            "failed": list(failed), "missing": list(missing), "reexecuted": []}


def test_failure_message_names_the_inputs_and_why():
    message = results.failure_message(summary([("a.POSCAR", "ValueError: NaN forces"),
                                               ("b.POSCAR", "EMT: no")], ["c.POSCAR"]))
    assert message == ("2 of 10 items failed: a.POSCAR (ValueError: NaN forces); "
                       "b.POSCAR (EMT: no); 1 not finished: c.POSCAR")
    assert "\n" not in message


def test_failure_message_is_short_for_many_failures():
    failed = [(f"s{i}.POSCAR", "bad") for i in range(7)]
    missing = [f"m{i}" for i in range(5)]
    message = results.failure_message(summary(failed, missing, total=100))
    assert message == ("7 of 100 items failed: s0.POSCAR (bad); s1.POSCAR (bad); "
                       "s2.POSCAR (bad); and 4 more; 5 not finished: m0, m1, m2 and 2 more")
    assert results.failure_message(summary(missing=["only"], total=1)) == "1 not finished: only"


# --- strict JSON -------------------------------------------------------------------------------


@pytest.mark.parametrize("value, where", [
    (math.nan, "result"),
    ({"energy_ev": math.inf}, "result.energy_ev"),
    ({"energy_ev": -1.0, "forces": [[0.0, 0.0, 0.0], [0.0, math.nan, 0.0]]},
     "result.forces[1][1]"),
    ({"a": {"b": ({"c": -math.inf},)}}, "result.a.b[0].c"),
    ([1.0, 2.0, float("nan")], "result[2]"),
])
def test_finite_json_rejects_nan_and_inf_anywhere(value, where):
    with pytest.raises(ValueError) as error:
        results.finite_json(value)
    assert str(error.value).startswith(f"{where} is ")
    assert "not a finite number" in str(error.value)


def test_finite_json_passes_finite_values_through():
    value = {"energy_ev": -3.0, "steps": 5, "converged": True, "relaxed_poscar": "nan inf",
             "forces": [[0.0, 1e308, -1e-308]], "none": None}
    assert results.finite_json(value) is value
    assert results.finite_json(7, "x") == 7


def test_finite_json_names_where_it_was_asked_about():
    with pytest.raises(ValueError, match=r"^energy is nan"):
        results.finite_json(math.nan, "energy")


def test_the_database_refuses_nothing_that_finite_json_passes(engine):
    """What finite_json lets through is saved and read back as strict JSON."""
    import json

    item = make_item("a")
    claim(engine, item)
    value = results.finite_json({"energy_ev": -1.5e-300, "forces": [[0.0, -0.0, 1e300]]})
    assert finish(engine, item, result=value)
    saved = rows(engine)[0]["result"]
    assert saved == value
    json.dumps(saved, allow_nan=False)


# --- opening the database --------------------------------------------------------------------


def test_open_results_database_creates_the_schema(sqlite_url, tmp_path):
    from simmate_k8s.settings import Settings

    settings = Settings.from_env({"SIMMATE_DATABASE_URL": sqlite_url})
    engine, version = results.open_results_database(settings)
    try:
        assert version.startswith("SQLite ")
        assert migrations.current_revision(engine) == migrations.HEAD
        assert results.row_count(engine) == 0
    finally:
        engine.dispose()
    engine, _ = results.open_results_database(settings)  # again: nothing to do
    engine.dispose()
