"""`simmate-k8s register` against the Prefect Server v1 contract."""

import dataclasses

from prefect.serialization.run_config import RunConfigSchema
from prefect.serialization.storage import StorageSchema

from simmate_k8s.flows.library import FLOWS
from simmate_k8s.flows.registry import WORKFLOWS, Param
from tests.conftest import run_cli
from tests.contract.conftest import registered_parameters

BATCH_PARAMETERS = {"batch_id": None, "rerun": False, "chunk_size": 1}


def latest(api):
    flows = [f for f in api.state.flows.values() if not f["archived"]]
    return {f["name"]: f for f in flows}


def test_register_creates_project_and_every_flow(prefect_api, api_env):
    result = run_cli("register", "--project", "materials", "--label", "team-a", env=api_env)
    assert result.returncode == 0, result.stderr
    assert [p["name"] for p in prefect_api.state.projects.values()] == ["materials"]
    flows = latest(prefect_api)
    assert set(flows) == set(WORKFLOWS)
    for flow in flows.values():
        assert flow["version"] == 1
        storage = StorageSchema().load(flow["storage"])
        assert type(storage).__name__ == "Module"
        assert storage.module == "simmate_k8s.flows.library"
        run_config = RunConfigSchema().load(flow["run_config"])
        assert type(run_config).__name__ == "KubernetesRun"
        assert run_config.image is None  # the agent's job template (the chart) names it
        assert run_config.labels == {"team-a"}
        assert flow["_tasks"], "tasks registered"
    assert "3 of 3 flows registered" in result.stderr


def test_registered_parameters_are_the_flows_own(prefect_api, api_env):
    """What the server knows of each flow's Parameters is what library.py defines: the
    workflow's parameters with their defaults, the batch's inputs, and how to run the batch."""
    assert run_cli("register", env=api_env).returncode == 0
    flows = latest(prefect_api)
    assert set(flows) == set(FLOWS)
    for name, flow in flows.items():
        registered = registered_parameters(prefect_api, flow["id"])
        assert registered == {p.name: p.default for p in FLOWS[name].parameters()}
        workflow = WORKFLOWS[name]
        # inputs=None: smoke makes its items from n; a split batch sends its part
        expected = {**workflow.parameter_defaults(), **BATCH_PARAMETERS, "inputs": None}
        assert registered == expected, name
        serialized = flow["serialized_flow"]["parameters"]
        assert not [p["name"] for p in serialized if p.get("required")], "all have defaults"
    task_names = {task["name"] for task in prefect_api.state.flows[
        flows["relaxation_emt"]["id"]]["_tasks"]}
    assert {"plan", "compute", "summary"} <= task_names


def test_register_twice_changes_nothing(prefect_api, api_env):
    assert run_cli("register", env=api_env).returncode == 0
    before = {name: f["id"] for name, f in latest(prefect_api).items()}
    again = run_cli("register", "--json", env=api_env)
    assert again.returncode == 0, again.stderr
    assert {name: f["id"] for name, f in latest(prefect_api).items()} == before
    assert all(f["version"] == 1 for f in prefect_api.state.flows.values())
    assert len(prefect_api.state.flows) == len(WORKFLOWS)
    assert len(prefect_api.state.projects) == 1  # "Uniqueness violation." handled


def test_changed_image_bumps_every_version(prefect_api, api_env):
    assert run_cli("register", env=api_env).returncode == 0
    result = run_cli("register", "--image", "registry.example.com/simmate-k8s:0.1.1",
                     env=api_env)
    assert result.returncode == 0, result.stderr
    assert {f["version"] for f in latest(prefect_api).values()} == {2}
    assert sum(f["archived"] for f in prefect_api.state.flows.values()) == len(WORKFLOWS)


def test_only_a_changed_flow_gets_a_new_version(in_process, monkeypatch):
    """In-process, so one flow can be changed: only that one is registered again."""
    from simmate_k8s import server, server_config
    from simmate_k8s.flows import library

    session = server.connect(server_config.load())
    first = server.register(session, "simmate", "simmate-k8s:0.1.0", [])
    assert all(r.changed and r.version == 1 for r in first)
    assert {r.name for r in first} == set(WORKFLOWS)

    smoke = WORKFLOWS["smoke"]  # a new parameter: a different serialized flow
    changed = dataclasses.replace(smoke, params=(*smoke.params, Param("extra", 1, "new")))
    monkeypatch.setattr(library, "FLOWS", {**library.FLOWS, "smoke": library.build_flow(changed)})

    second = {r.name: r for r in server.register(session, "simmate", "simmate-k8s:0.1.0", [])}
    assert second["smoke"].changed and second["smoke"].version == 2
    assert not second["relaxation_emt"].changed and second["relaxation_emt"].version == 1
    assert not second["static_energy_emt"].changed
    smoke_flow = in_process.state.flows[second["smoke"].flow_id]
    assert "extra" in registered_parameters(in_process, smoke_flow["id"])


def test_register_rejects_an_unpinned_image(prefect_api, api_env):
    result = run_cli("register", "--image", "simmate-k8s:latest", env=api_env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "pin a tag" in result.stderr
    assert prefect_api.calls == []


def test_basic_auth_and_headers_reach_the_server(prefect_api, cli_env):
    configured = run_cli("config", "set", "api-url", prefect_api.url, "--basic-auth",
                         "alice:s3cret", "--header", "X-Team=materials", env=cli_env)
    assert configured.returncode == 0, configured.stderr
    assert "s3cret" not in configured.stdout
    assert run_cli("register", env=cli_env).returncode == 0
    assert prefect_api.headers, "requests were made"
    for headers in prefect_api.headers:
        assert headers["Authorization"] == "Basic YWxpY2U6czNjcmV0"
        assert headers["X-Team"] == "materials"
