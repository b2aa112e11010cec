"""`simmate-k8s submit` (Prefect backend) against the Prefect Server v1 contract."""

import json
import time

from prefect.serialization.run_config import RunConfigSchema

from tests.conftest import run_cli
from tests.contract.conftest import ALL_POSCARS, POSCAR, ScriptedRunner, script


def runs(api):
    return list(api.state.flow_runs.values())


def one_line_error(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_submit_one_input(registered, api_env):
    result = run_cli("submit", "relaxation_emt", POSCAR, "--param", "fmax=0.02", env=api_env)
    assert result.returncode == 0, result.stderr
    (run,) = runs(registered)
    assert run["id"] in result.stdout
    ui = registered.url.removesuffix("/graphql")
    assert f"{ui}/default/flow-run/{run['id']}" in result.stdout
    assert run["parameters"] == {"structure": POSCAR.read_text(), "fmax": 0.02, "max_steps": 500}
    assert run["name"] == "Cu_fcc_rattled"
    assert run["state"] == "Scheduled"
    flow = registered.state.flows[run["flow_id"]]
    assert (flow["name"], flow["archived"]) == ("relaxation_emt", False)


def test_submit_resolves_the_latest_version(registered, api_env):
    assert run_cli("register", "--image", "simmate-k8s:0.1.1", env=api_env).returncode == 0
    assert run_cli("submit", "smoke", env=api_env).returncode == 0
    (run,) = runs(registered)
    assert registered.state.flows[run["flow_id"]]["version"] == 2


def test_batch_is_concurrent_with_json_output(registered, api_env):
    registered.delays["mutation:create_flow_run"] = 0.3
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS, "--json", env=api_env)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [entry["input"] for entry in out] == [str(p) for p in ALL_POSCARS]
    assert {entry["flow_run_id"] for entry in out} == {r["id"] for r in runs(registered)}
    assert len(runs(registered)) == len(ALL_POSCARS) == 4
    assert registered.max_in_flight > 1, "flow runs were created one after another"
    assert all(entry["url"].endswith(entry["flow_run_id"]) for entry in out)


def test_labels_preset_and_names(registered, api_env):
    result = run_cli("submit", "relaxation_emt", *ALL_POSCARS[:2], "--label", "gpu",
                     "--preset", "large", "--run-name", "nightly", env=api_env)
    assert result.returncode == 0, result.stderr
    created = sorted(runs(registered), key=lambda r: r["name"])
    assert [r["name"] for r in created] == ["nightly-1", "nightly-2"]
    for run in created:
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
    assert entry["state"] == "Failed"
    assert "Entered state <Failed>" in result.stderr and "ended Failed" in result.stderr


def test_watch_batch_waits_for_every_run(registered, api_env):
    ScriptedRunner(registered, script("Success"))
    result = run_cli("submit", "static_energy_emt", *ALL_POSCARS[:3], "--watch", env=api_env,
                     timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Entered state <Success>") == 3
    assert all(r["state"] == "Success" for r in runs(registered))


# --- nothing is created on bad input ------------------------------------------------------------


def test_bad_poscar_creates_nothing(registered, api_env, tmp_path):
    bad = tmp_path / "broken.POSCAR"
    bad.write_text("not a POSCAR\n")
    calls_before = len(registered.calls)
    error = one_line_error(run_cli("submit", "relaxation_emt", POSCAR, bad, env=api_env))
    assert "broken.POSCAR" in error
    assert registered.calls[calls_before:] == [], "nothing is sent before inputs are checked"
    assert registered.count("mutation:create_flow_run") == 0


def test_bad_param_creates_nothing(registered, api_env):
    one_line_error(run_cli("submit", "relaxation_emt", POSCAR, "--param", "fmax=abc",
                           env=api_env))
    one_line_error(run_cli("submit", "relaxation_emt", POSCAR, "--param", "nope=1",
                           env=api_env))
    assert registered.count("mutation:create_flow_run") == 0


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
    start = time.monotonic()
    run_id = "6f1e7c34-0c8b-4d53-9a50-0d4d1d5d5e11"
    for args in (["submit", "smoke"], ["register"], ["status", run_id], ["logs", run_id]):
        error = one_line_error(run_cli(*args, env=env))
        assert f"no Prefect Server answers at http://127.0.0.1:{port}/graphql" in error
    assert time.monotonic() - start < 20


def test_not_a_graphql_endpoint(prefect_api, api_env):
    env = {**api_env, "PREFECT__CLOUD__API": prefect_api.url.replace("/graphql", "/other")}
    error = one_line_error(run_cli("submit", "smoke", env=env))
    assert "does not answer like Prefect Server" in error
    prefect_api.unexpected.clear()  # the wrong path was the point
