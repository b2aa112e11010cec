"""`simmate-k8s submit` (Prefect backend) against the Prefect Server v1 contract.

One flow run is one batch: N inputs make ONE flow run (⌈N / --batch-size⌉ when asked), whose
``inputs`` parameter lists every input, in order, as {"name", "data"}.
"""

import json
import random
import time
import uuid

import pytest
from prefect.serialization.run_config import RunConfigSchema

from simmate_k8s.flows.registry import get_workflow
from tests.conftest import run_cli
from tests.contract.conftest import (
    ALL_POSCARS,
    POSCAR,
    ScriptedRunner,
    registered_parameters,
    script,
)
from tests.support.poscars import write_poscars

BATCH_KEYS = {"batch_id", "rerun", "chunk_size"}


def runs(api):
    """Flow runs in the order they were created."""
    return sorted(api.state.flow_runs.values(), key=lambda run: run["created"])


def one_line_error(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def check_batch_parameters(api, run, workflow_name, *, rerun=False):
    """The run's parameters are the flow's own: each known to the registered flow."""
    parameters = run["parameters"]
    assert set(parameters) <= set(registered_parameters(api, run["flow_id"]))
    workflow = get_workflow(workflow_name)
    assert set(parameters) == {p.name for p in workflow.params} | BATCH_KEYS | {"inputs"}
    if not workflow.takes_files and parameters["inputs"] is None:
        assert parameters["n"] >= 1  # the flow makes its items from n
    assert str(uuid.UUID(parameters["batch_id"])) == parameters["batch_id"]
    assert parameters["rerun"] is rerun and parameters["chunk_size"] == 1
    return parameters


def test_submit_one_input(registered, api_env):
    result = run_cli("submit", "relaxation_emt", POSCAR, "--param", "fmax=0.02", env=api_env)
    assert result.returncode == 0, result.stderr
    (run,) = runs(registered)
    assert run["id"] in result.stdout
    ui = registered.url.removesuffix("/graphql")
    assert f"{ui}/default/flow-run/{run['id']}" in result.stdout
    parameters = check_batch_parameters(registered, run, "relaxation_emt")
    assert parameters["inputs"] == [{"name": str(POSCAR), "data": POSCAR.read_text()}]
    assert (parameters["fmax"], parameters["max_steps"]) == (0.02, 500)
    assert parameters["batch_id"] in result.stdout
    assert run["name"] == "Cu_fcc_rattled"
    assert run["state"] == "Scheduled"
    flow = registered.state.flows[run["flow_id"]]
    assert (flow["name"], flow["archived"]) == ("relaxation_emt", False)


def test_a_thousand_inputs_make_exactly_one_flow_run(registered, api_env, tmp_path):
    paths = write_poscars(tmp_path / "structures", 1000)
    given = list(paths)
    random.Random(7).shuffle(given)  # the order given, not a sorted one, is the batch's order
    calls_before = len(registered.calls)
    result = run_cli("submit", "static_energy_emt", *given, "--json", env=api_env)
    assert result.returncode == 0, result.stderr
    assert registered.count("mutation:create_flow_run") == 1
    assert registered.calls[calls_before:].count("mutation:create_flow_run") == 1
    (run,) = runs(registered)
    parameters = check_batch_parameters(registered, run, "static_energy_emt")
    assert parameters["inputs"] == [{"name": str(p), "data": p.read_text()} for p in given]
    (entry,) = json.loads(result.stdout)
    assert entry["batch_id"] == parameters["batch_id"]
    assert entry["items"] == 1000
    assert entry["flow_run_id"] == run["id"] and entry["url"].endswith(run["id"])
    assert entry["flow"] == "static_energy_emt"
    assert run["name"] == given[0].stem


def test_a_directory_is_one_batch_in_sorted_order(registered, api_env, tmp_path):
    paths = write_poscars(tmp_path / "structures", 25)
    result = run_cli("submit", "relaxation_emt", tmp_path / "structures", env=api_env)
    assert result.returncode == 0, result.stderr
    (run,) = runs(registered)
    assert [i["name"] for i in run["parameters"]["inputs"]] == [str(p) for p in paths]


def test_a_quoted_glob_is_expanded_by_submit(registered, api_env, tmp_path):
    paths = write_poscars(tmp_path, 6)
    result = run_cli("submit", "relaxation_emt", str(tmp_path / "s0000[135].POSCAR"),
                     env=api_env)
    assert result.returncode == 0, result.stderr
    (run,) = runs(registered)
    assert [i["name"] for i in run["parameters"]["inputs"]] == [
        str(paths[1]), str(paths[3]), str(paths[5])]


def test_batch_size_splits_into_flow_runs(registered, api_env, tmp_path):
    paths = write_poscars(tmp_path / "structures", 1000)
    result = run_cli("submit", "static_energy_emt", tmp_path / "structures", "--batch-size",
                     "300", "--json", env=api_env)
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert registered.count("mutation:create_flow_run") == 4 == len(entries)
    by_id = {run["id"]: run for run in runs(registered)}
    ordered = [by_id[entry["flow_run_id"]] for entry in entries]
    sizes = [len(run["parameters"]["inputs"]) for run in ordered]
    assert sizes == [entry["items"] for entry in entries] == [300, 300, 300, 100]
    names = [item["name"] for run in ordered for item in run["parameters"]["inputs"]]
    assert names == [str(p) for p in paths]
    batch_ids = [check_batch_parameters(registered, run, "static_energy_emt")["batch_id"]
                 for run in ordered]
    assert batch_ids == [entry["batch_id"] for entry in entries]
    assert len(set(batch_ids)) == 4
    assert [run["name"] for run in ordered] == ["s00000", "s00300", "s00600", "s00900"]


def test_rerun_is_passed_to_every_flow_run(registered, api_env):
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS, "--rerun", "--batch-size",
                     "3", env=api_env)
    assert result.returncode == 0, result.stderr
    created = runs(registered)
    assert len(created) == 2
    for run in created:
        check_batch_parameters(registered, run, "static_energy_emt", rerun=True)


def test_smoke_is_one_flow_run_with_its_parameters(registered, api_env):
    result = run_cli("submit", "smoke", "--param", "n=500", "--param", "delay=0.5", "--json",
                     env=api_env)
    assert result.returncode == 0, result.stderr
    (run,) = runs(registered)
    parameters = check_batch_parameters(registered, run, "smoke")
    assert (parameters["n"], parameters["delay"]) == (500, 0.5)
    (entry,) = json.loads(result.stdout)
    assert entry["items"] == 500 and entry["batch_id"] == parameters["batch_id"]


def test_batches_of_smoke_split_its_items(registered, api_env):
    """smoke's items come from n: --batch-size must not make every flow run do all n."""
    result = run_cli("submit", "smoke", "--param", "n=10", "--batch-size", "4", "--json",
                     env=api_env)
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    by_id = registered.state.flow_runs
    sent = [by_id[entry["flow_run_id"]]["parameters"]["inputs"] for entry in entries]
    assert [entry["items"] for entry in entries] == [len(part) for part in sent] == [4, 4, 2]
    # each flow run computes exactly its part: every item once, in order
    assert [item["data"] for part in sent for item in part] == list(range(10))


def test_submit_resolves_the_latest_version(registered, api_env):
    assert run_cli("register", "--image", "simmate-k8s:0.1.1", env=api_env).returncode == 0
    assert run_cli("submit", "smoke", env=api_env).returncode == 0
    (run,) = runs(registered)
    assert registered.state.flows[run["flow_id"]]["version"] == 2


def test_batches_are_created_concurrently_with_json_output(registered, api_env):
    registered.delays["mutation:create_flow_run"] = 0.3
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS, "--batch-size", "1", "--json",
                     env=api_env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [entry["first_input"] for entry in out] == [str(p) for p in ALL_POSCARS]
    assert [entry["items"] for entry in out] == [1, 1, 1, 1]
    assert {entry["flow_run_id"] for entry in out} == {r["id"] for r in runs(registered)}
    assert len(runs(registered)) == len(ALL_POSCARS) == 4
    assert registered.max_in_flight > 1, "flow runs were created one after another"
    assert all(entry["url"].endswith(entry["flow_run_id"]) for entry in out)
    by_id = registered.state.flow_runs
    for entry, path in zip(out, ALL_POSCARS, strict=True):
        run = by_id[entry["flow_run_id"]]
        assert run["parameters"]["inputs"] == [{"name": str(path), "data": path.read_text()}]
        assert run["parameters"]["batch_id"] == entry["batch_id"]


def test_labels_preset_and_names(registered, api_env):
    result = run_cli("submit", "relaxation_emt", *ALL_POSCARS[:2], "--label", "gpu",
                     "--preset", "large", "--run-name", "nightly", env=api_env)
    assert result.returncode == 0, result.stderr
    (one,) = runs(registered)
    assert one["name"] == "nightly"  # one batch: the name as given
    result = run_cli("submit", "relaxation_emt", *ALL_POSCARS[:2], "--label", "gpu",
                     "--preset", "large", "--run-name", "nightly", "--batch-size", "1",
                     env=api_env)
    assert result.returncode == 0, result.stderr
    created = sorted(runs(registered)[1:], key=lambda r: r["name"])
    assert [r["name"] for r in created] == ["nightly-1", "nightly-2"]
    for run in [one, *created]:
        assert run["labels"] == ["gpu"]
        run_config = RunConfigSchema().load(run["run_config"])
        assert run_config.job_template_path == "agent:///etc/simmate/job-templates/large.yaml"
        assert run_config.image == "simmate-k8s:0.1.0"  # kept from the registration
        assert run_config.labels == {"gpu"}


def test_idempotency_key_returns_the_same_run(registered, api_env):
    first = run_cli("submit", "smoke", "--idempotency-key", "abc", "--json", env=api_env)
    again = run_cli("submit", "smoke", "--idempotency-key", "abc", "--json", env=api_env)
    assert first.returncode == again.returncode == 0
    assert json.loads(first.stdout)[0]["flow_run_id"] == json.loads(again.stdout)[0]["flow_run_id"]
    assert len(runs(registered)) == 1


def test_idempotency_key_of_batches_returns_the_same_runs(registered, api_env):
    args = ["submit", "static_energy_emt", *ALL_POSCARS, "--batch-size", "2",
            "--idempotency-key", "nightly", "--json"]
    first, again = run_cli(*args, env=api_env), run_cli(*args, env=api_env)
    assert first.returncode == again.returncode == 0, first.stderr + again.stderr
    ids = [entry["flow_run_id"] for entry in json.loads(first.stdout)]
    assert [entry["flow_run_id"] for entry in json.loads(again.stdout)] == ids
    assert len(runs(registered)) == 2
    assert {run["idempotency_key"] for run in runs(registered)} == {"nightly-1", "nightly-2"}


def test_watch_success_exits_0(registered, api_env):
    ScriptedRunner(registered, script("Success"))
    result = run_cli("submit", "smoke", "--watch", env=api_env, timeout=60)
    assert result.returncode == 0, result.stderr
    for text in ("Entered state <Scheduled>", "Entered state <Running>",
                 "hello from the flow run", "Entered state <Success>"):
        assert text in result.stdout
    assert result.stdout.count("hello from the flow run") == 1


def test_watch_failure_exits_1(registered, api_env):
    ScriptedRunner(registered, script("Failed"))
    result = run_cli("submit", "smoke", "--watch", "--json", env=api_env, timeout=60)
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)
    assert entry["state"] == "Failed" and entry["batch_id"]
    assert "Entered state <Failed>" in result.stderr and "ended Failed" in result.stderr


def test_watch_batches_waits_for_every_run(registered, api_env):
    ScriptedRunner(registered, script("Success"))
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS[:3], "--batch-size", "1",
                     "--watch", env=api_env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Entered state <Success>") == 3
    assert all(r["state"] == "Success" for r in runs(registered))


def test_watch_one_batch_of_several_inputs(registered, api_env):
    ScriptedRunner(registered, script("Success"))
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS, "--watch", env=api_env,
                     timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Entered state <Success>") == 1
    assert len(runs(registered)) == 1


# --- nothing is created on bad input ------------------------------------------------------------


def test_bad_poscar_creates_nothing(registered, api_env, tmp_path):
    bad = tmp_path / "broken.POSCAR"
    bad.write_text("not a POSCAR\n")
    calls_before = len(registered.calls)
    error = one_line_error(run_cli("submit", "relaxation_emt", POSCAR, bad, env=api_env))
    assert "broken.POSCAR" in error
    assert registered.calls[calls_before:] == [], "nothing is sent before inputs are checked"
    assert registered.count("mutation:create_flow_run") == 0


def test_one_bad_input_among_a_thousand_creates_nothing(registered, api_env, tmp_path):
    folder = tmp_path / "structures"
    write_poscars(folder, 999)
    lines = (folder / "s00500.POSCAR").read_text().splitlines()
    (folder / "s00500b.POSCAR").write_text("\n".join([*lines[:-1], "nan 0.0 0.0"]) + "\n")
    calls_before = len(registered.calls)
    error = one_line_error(run_cli("submit", "static_energy_emt", folder, env=api_env))
    assert "s00500b.POSCAR" in error
    assert registered.calls[calls_before:] == []


@pytest.mark.parametrize("flow, params", [
    ("relaxation_emt", ["fmax=abc"]), ("relaxation_emt", ["nope=1"]),
    ("relaxation_emt", ["fmax=-1"]), ("relaxation_emt", ["fmax=0"]),
    ("relaxation_emt", ["fmax=nan"]), ("relaxation_emt", ["fmax=inf"]),
    ("relaxation_emt", ["max_steps=0"]), ("relaxation_emt", ["max_steps=1.5"]),
    ("relaxation_emt", ["fmax"]), ("static_energy_emt", ["fmax=0.1"]),
    ("smoke", ["n=1000000"]), ("smoke", ["n=0"]), ("smoke", ["delay=-1"]),
    ("smoke", ["delay=nan"]),
])
def test_bad_param_creates_nothing(registered, api_env, flow, params):
    inputs = [] if flow == "smoke" else [POSCAR]
    calls_before = len(registered.calls)
    args = [arg for param in params for arg in ("--param", param)]
    error = one_line_error(run_cli("submit", flow, *inputs, *args, env=api_env))
    assert params[0].split("=")[0] in error
    assert registered.calls[calls_before:] == []


@pytest.mark.parametrize("problem", ["empty-dir", "no-match", "missing", "directory-of-dirs",
                                     "smoke-with-inputs", "no-inputs"])
def test_bad_paths_create_nothing(registered, api_env, tmp_path, problem):
    (tmp_path / "empty").mkdir()
    (tmp_path / "dirs" / "sub").mkdir(parents=True)
    flow, args, expected = {
        "empty-dir": ("relaxation_emt", [tmp_path / "empty"], "the directory has no input files"),
        "no-match": ("relaxation_emt", [str(tmp_path / "*.POSCAR")], "no files match"),
        "missing": ("relaxation_emt", [POSCAR, tmp_path / "gone.POSCAR"], "no such file"),
        "directory-of-dirs": ("relaxation_emt", [tmp_path / "dirs"], "has no input files"),
        "smoke-with-inputs": ("smoke", [POSCAR], "takes no input files"),
        "no-inputs": ("relaxation_emt", [], "needs at least one input"),
    }[problem]
    calls_before = len(registered.calls)
    assert expected in one_line_error(run_cli("submit", flow, *args, env=api_env))
    assert registered.calls[calls_before:] == []


def test_unknown_flow(registered, api_env):
    assert "unknown workflow" in one_line_error(run_cli("submit", "nope", env=api_env))
    assert registered.count("mutation:create_flow_run") == 0


def test_flow_not_registered(prefect_api, api_env):
    error = one_line_error(run_cli("submit", "smoke", env=api_env))
    assert "not registered" in error and "simmate-k8s register" in error
    assert prefect_api.count("mutation:create_flow_run") == 0


def test_job_options_need_the_job_backend(registered, api_env):
    error = one_line_error(run_cli("submit", "smoke", "--namespace", "x", env=api_env))
    assert "--backend job" in error


def test_unreachable_server_is_one_line_and_fast(cli_env):
    from tests.support.postgres import free_port

    port = free_port()  # nothing listens there
    env = {**cli_env, "PREFECT__CLOUD__API": f"http://127.0.0.1:{port}/graphql"}
    # What the same imports cost here without any request (a malformed id is refused first):
    # Prefect's Client would retry a refused connection for about a minute.
    start = time.monotonic()
    one_line_error(run_cli("status", "not-a-run-id", env=env))
    baseline = time.monotonic() - start
    run_id = "6f1e7c34-0c8b-4d53-9a50-0d4d1d5d5e11"
    for args in (["submit", "smoke"], ["register"], ["status", run_id], ["logs", run_id]):
        start = time.monotonic()
        error = one_line_error(run_cli(*args, env=env))
        assert f"no Prefect Server answers at http://127.0.0.1:{port}/graphql" in error
        assert time.monotonic() - start < 2 * baseline + 5, args


@pytest.mark.parametrize("raw", ["abc", "nan", "0"])
def test_a_bad_api_timeout_is_one_line(registered, api_env, raw):
    calls_before = len(registered.calls)
    error = one_line_error(run_cli("submit", "smoke", env={**api_env,
                                                           "SIMMATE_API_TIMEOUT": raw}))
    assert "SIMMATE_API_TIMEOUT" in error
    assert registered.calls[calls_before:] == []


def test_not_a_graphql_endpoint(prefect_api, api_env):
    env = {**api_env, "PREFECT__CLOUD__API": prefect_api.url.replace("/graphql", "/other")}
    error = one_line_error(run_cli("submit", "smoke", env=env))
    assert "does not answer like Prefect Server" in error
    prefect_api.unexpected.clear()  # the wrong path was the point
