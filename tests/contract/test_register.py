"""`simmate-k8s register` against the Prefect Server v1 contract."""

from prefect.serialization.run_config import RunConfigSchema
from prefect.serialization.storage import StorageSchema

from simmate_k8s.flows.library import WORKFLOWS
from tests.conftest import run_cli


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
        assert flow["tasks"], "tasks registered"
    assert "3 of 3 flows registered" in result.stderr


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
    from prefect import Flow, Parameter

    from simmate_k8s import server, server_config
    from simmate_k8s.flows import library

    session = server.connect(server_config.load())
    first = server.register(session, "simmate", "simmate-k8s:0.1.0", [])
    assert all(r.changed and r.version == 1 for r in first)

    with Flow("smoke") as changed_smoke:  # a new parameter: a different serialized flow
        library.square_task.map(library.indices_task(Parameter("n", default=3)),
                                delay=library.unmapped(Parameter("delay", default=0.0)))
    workflows = dict(library.WORKFLOWS)
    workflows["smoke"] = library.Workflow(changed_smoke, "changed")
    monkeypatch.setattr(library, "WORKFLOWS", workflows)

    second = {r.name: r for r in server.register(session, "simmate", "simmate-k8s:0.1.0", [])}
    assert second["smoke"].changed and second["smoke"].version == 2
    assert not second["relaxation_emt"].changed and second["relaxation_emt"].version == 1
    assert not second["static_energy_emt"].changed


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
