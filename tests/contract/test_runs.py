"""`simmate-k8s status` and `simmate-k8s logs` against the Prefect Server v1 contract."""

import json
import uuid

from tests.conftest import run_cli
from tests.contract.conftest import ScriptedRunner, runner_client, script
from tests.contract.test_submit import one_line_error


def submit(api_env, *args):
    result = run_cli("submit", "smoke", "--json", *args, env=api_env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]["flow_run_id"]


def drive(api, flow_run_id, steps):
    runner = ScriptedRunner(api, steps, pause=0)
    runner.play(flow_run_id)


def test_status_table_and_json(registered, api_env):
    done, waiting = submit(api_env), submit(api_env)
    drive(registered, done, script("Success"))
    table = run_cli("status", done, waiting, env=api_env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["FLOW", "RUN", "NAME", "FLOW"]
    assert done in lines[1] and "Success" in lines[1] and "smoke v1" in lines[1]
    assert waiting in lines[2] and "Scheduled" in lines[2]
    as_json = json.loads(run_cli("status", waiting, "--json", env=api_env).stdout)
    assert as_json[0]["id"] == waiting and as_json[0]["state"] == "Scheduled"
    assert as_json[0]["url"].endswith(f"/default/flow-run/{waiting}")


def test_status_of_unknown_and_malformed_ids(registered, api_env):
    missing = str(uuid.uuid4())
    assert missing in one_line_error(run_cli("status", missing, env=api_env))
    calls = len(registered.calls)
    assert "not a flow run id" in one_line_error(run_cli("status", "abc", env=api_env))
    assert len(registered.calls) == calls  # checked before anything is sent


def test_logs_prints_the_run_logs(registered, api_env):
    flow_run_id = submit(api_env)
    drive(registered, flow_run_id, script("Success"))
    runner_client(registered).write_run_logs([{
        "flow_run_id": flow_run_id, "timestamp": "2020-01-01T00:00:00+00:00",
        "name": "prefect.Task", "message": "late, with an old timestamp", "level": "WARNING"}])
    result = run_cli("logs", flow_run_id, env=api_env)
    assert result.returncode == 0, result.stderr
    assert "hello from the flow run" in result.stdout
    assert "WARNING | late, with an old timestamp" in result.stdout
    assert "Entered state" not in result.stdout  # logs only; states are in `status`


def test_logs_follow_until_the_end(registered, api_env):
    flow_run_id = submit(api_env)
    ScriptedRunner(registered, script("Failed")).start(flow_run_id)
    result = run_cli("logs", flow_run_id, "--follow", env=api_env, timeout=60)
    assert result.returncode == 1
    assert result.stdout.count("hello from the flow run") == 1
    assert "Entered state <Failed>" in result.stdout


def test_logs_of_unknown_run(registered, api_env):
    one_line_error(run_cli("logs", str(uuid.uuid4()), env=api_env))
