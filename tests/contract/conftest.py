"""Fixtures for the contract tests: a Prefect Server v1 API stand-in and a scripted flow runner."""

import threading
import time

import pytest

from tests.conftest import EXAMPLES
from tests.contract.prefect_server_api import PrefectServerEndpoint


@pytest.fixture
def prefect_api():
    """The endpoint; the test fails if any request fell outside the contract."""
    with PrefectServerEndpoint() as api:
        yield api
    assert not api.unexpected, "requests outside the contract:\n" + "\n\n".join(api.unexpected)


@pytest.fixture
def api_env(cli_env, prefect_api):
    """CLI environment pointing at the endpoint (fast polling for --watch)."""
    return {**cli_env, "PREFECT__CLOUD__API": prefect_api.url, "SIMMATE_POLL_INTERVAL": "0.1"}


@pytest.fixture
def in_process(prefect_api, monkeypatch, tmp_path):
    """Point this process at the endpoint; Prefect's global config is restored afterwards."""
    import prefect

    monkeypatch.setenv("PREFECT__CLOUD__API", prefect_api.url)
    monkeypatch.setenv("PREFECT__BACKEND", "server")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    # Saved and restored by hand: Prefect's configs are Boxes (keys, not instance attributes),
    # and pytest's monkeypatch.setattr would *delete* such a key when it undoes.
    saved = [(config, config.backend, config.cloud.api)
             for config in {id(c): c for c in (prefect.config, prefect.context.config)}.values()]
    yield prefect_api
    for config, backend, api in saved:
        config.backend = backend
        config.cloud.api = api


@pytest.fixture
def registered(in_process, api_env):
    """Every flow registered (image simmate-k8s:0.1.0, project "simmate"), as `simmate-k8s
    register --image simmate-k8s:0.1.0` does (tested in test_register.py), but in this process:
    a CLI process costs seconds of imports for every test that needs registered flows."""
    from simmate_k8s import server, server_config

    session = server.connect(server_config.load())
    registrations = server.register(session, "simmate", "simmate-k8s:0.1.0", [])
    assert all(r.changed and r.version == 1 for r in registrations)
    return in_process


def runner_client(api):
    """Prefect's own Client, as a flow runner in the cluster would use it."""
    import prefect

    return prefect.Client(api_server=api.url)


class ScriptedRunner:
    """Plays a flow runner for every flow run created: states and logs through Prefect's
    Client (set_flow_run_state, write_run_logs), one step every ``pause`` seconds."""

    def __init__(self, api, steps, pause=0.15):
        self.api, self.steps, self.pause = api, steps, pause
        self.threads = []
        api.on_flow_run_created = self.start

    def start(self, flow_run_id):
        thread = threading.Thread(target=self.play, args=(flow_run_id,), daemon=True)
        self.threads.append(thread)
        thread.start()

    def play(self, flow_run_id):
        import pendulum

        client = runner_client(self.api)
        try:
            for step in self.steps:
                time.sleep(self.pause)
                if isinstance(step, str):  # a log line
                    client.write_run_logs([{
                        "flow_run_id": flow_run_id, "timestamp": pendulum.now("UTC").isoformat(),
                        "name": "prefect.FlowRunner", "message": step, "level": "INFO"}])
                else:
                    client.set_flow_run_state(flow_run_id, step)
        except Exception as error:  # surfaces as a contract failure
            self.api.unexpected.append(f"scripted runner: {error!r}")


def script(outcome="Success"):
    from prefect.engine import state

    return [state.Submitted(message="Submitted for execution"),
            state.Running(message="Running flow."),
            "hello from the flow run",
            getattr(state, outcome)(message=f"All reference tasks: {outcome.lower()}")]


def registered_parameters(api, flow_id) -> dict:
    """{name: default} of the Parameters of a flow as it was registered."""
    serialized = api.state.flows[flow_id]["serialized_flow"]
    return {p["name"]: p.get("default") for p in serialized["parameters"]}


POSCAR = EXAMPLES / "Cu_fcc_rattled.POSCAR"
ALL_POSCARS = sorted(EXAMPLES.glob("*.POSCAR"))
