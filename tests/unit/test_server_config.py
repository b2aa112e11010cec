"""`simmate-k8s config`: storage, precedence, redaction."""

import json
import stat
from pathlib import Path

import pytest

from simmate_k8s import server_config
from tests.conftest import run_cli


def config_file(env):
    return Path(env["XDG_CONFIG_HOME"]) / "simmate-k8s" / "config.json"


def test_set_and_show_with_redaction(cli_env):
    result = run_cli("config", "set", "api-url", "https://prefect.example.com/graphql",
                     "--basic-auth", "alice:s3cret", "--header", "X-Api-Token=tok123",
                     "--header", "X-Team=materials", env=cli_env)
    assert result.returncode == 0, result.stderr
    path = config_file(cli_env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["api-url"] == "https://prefect.example.com/graphql"

    shown = run_cli("config", "show", env=cli_env)
    assert shown.returncode == 0, shown.stderr
    for secret in ("s3cret", "tok123", "YWxpY2U6czNjcmV0"):
        assert secret not in shown.stdout + result.stdout
    assert "Basic alice:***" in shown.stdout and "materials" in shown.stdout
    data = json.loads(run_cli("config", "show", "--json", env=cli_env).stdout)
    assert data["api-url"] == {"value": "https://prefect.example.com/graphql", "source": "file"}
    assert data["ui-url"] == {"value": "https://prefect.example.com", "source": "default"}
    assert data["headers"]["X-Api-Token"] == "***"


def test_environment_wins_and_gets_no_stored_credentials(cli_env):
    run_cli("config", "set", "api-url", "http://stored:4200/graphql", "--basic-auth", "a:b",
            env=cli_env)
    env = {**cli_env, "PREFECT__CLOUD__API": "http://other:4200/graphql",
           "SIMMATE_PROJECT": "materials"}
    data = json.loads(run_cli("config", "show", "--json", env=env).stdout)
    assert data["api-url"] == {"value": "http://other:4200/graphql",
                               "source": "env PREFECT__CLOUD__API"}
    assert data["ui-url"]["value"] == "http://other:8080"
    assert data["project"] == {"value": "materials", "source": "env SIMMATE_PROJECT"}
    assert data["headers"] == {}


def test_new_api_url_drops_old_credentials_and_unset(cli_env):
    run_cli("config", "set", "api-url", "http://a:4200/graphql", "--header", "X-K=v",
            env=cli_env)
    run_cli("config", "set", "api-url", "http://b:4200/graphql", env=cli_env)
    assert "headers" not in json.loads(config_file(cli_env).read_text())
    run_cli("config", "set", "project", "materials", env=cli_env)
    assert run_cli("config", "unset", "project", env=cli_env).returncode == 0
    assert "project" not in json.loads(config_file(cli_env).read_text())


@pytest.mark.parametrize("args", [
    ["config", "set", "api-url", "localhost:4200"],
    ["config", "set", "api-url", "http://h/graphql", "--basic-auth", ":pw"],
    ["config", "set", "api-url", "http://h/graphql", "--header", "no-equals"],
    ["config", "set", "project", "x", "--header", "A=b"],
])
def test_bad_settings_are_one_line(cli_env, args):
    result = run_cli(*args, env=cli_env)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not config_file(cli_env).exists()


@pytest.mark.parametrize(("api", "ui"), [
    ("http://localhost:4200/graphql", "http://localhost:8080"),
    ("http://simmate-apollo.ns.svc:4200/graphql", "http://simmate-apollo.ns.svc:8080"),
    ("https://prefect.example.com/graphql", "https://prefect.example.com"),
    ("https://u:p@prefect.example.com/graphql", "https://prefect.example.com"),
])
def test_derived_ui_url(api, ui):
    assert server_config.derive_ui_url(api) == ui


def test_urls_with_passwords_are_redacted():
    assert server_config.redact_url("https://u:p@h/graphql") == "https://u:***@h/graphql"
    assert server_config.redact_url("https://h/graphql") == "https://h/graphql"
