"""Passwords in a URL's userinfo or query never reach the terminal, whichever command fails.

Every command is run through the real click entry point with both URLs carrying secrets in both
places; each must fail with one line, exit 2, and none of the secrets in what it printed.
"""

from __future__ import annotations

import pytest

from simmate_k8s.redaction import redact_url
from tests.conftest import EXAMPLES, run_cli

USER_SECRET, QUERY_SECRET = "hunter2user", "hunter2query"
DB_URL = f"postgresql://simmate:{USER_SECRET}@127.0.0.1:9/results?password={QUERY_SECRET}"
API_URL = f"http://alice:{USER_SECRET}@127.0.0.1:9/graphql?token={QUERY_SECRET}"
POSCAR = str(next(EXAMPLES.glob("*.POSCAR")))
RUN_ID = "123e4567-e89b-12d3-a456-426614174000"

COMMANDS = [
    ["run", "relaxation_emt", POSCAR],
    ["results"],
    ["results", "--json"],
    ["db", "check"],
    ["db", "upgrade"],
    ["register"],
    ["submit", "relaxation_emt", POSCAR],
    ["status", RUN_ID],
    ["logs", RUN_ID],
    ["config", "set", "api-url", f"http://alice:{USER_SECRET}@h:port/graphql?token={QUERY_SECRET}"],
    ["config", "set", "api-url", f"ftp://alice:{USER_SECRET}@h/graphql?token={QUERY_SECRET}"],
]


def secret_env(cli_env):
    return {
        **cli_env,
        "SIMMATE_DATABASE_URL": DB_URL,
        "SIMMATE_DB_CONNECT_TIMEOUT": "1",
        "PREFECT__CLOUD__API": API_URL,
        "SIMMATE_API_TIMEOUT": "1",
    }


def _in_process(args, env):
    from click.testing import CliRunner

    from simmate_k8s.cli import cli

    result = CliRunner().invoke(cli, args, env=env, prog_name="simmate-k8s")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stdout + result.stderr


@pytest.mark.parametrize("args", COMMANDS, ids=["-".join(a[:2]) for a in COMMANDS])
def test_no_command_prints_a_password(args, cli_env):
    code, printed = _in_process(args, secret_env(cli_env))
    assert code == 2, printed
    assert USER_SECRET not in printed and QUERY_SECRET not in printed, printed
    assert "Traceback" not in printed and len(printed.strip().splitlines()) == 1, printed
    assert "***" in printed or "ftp://" in printed, "the URL is named, redacted"


def test_a_real_process_prints_no_password_either(cli_env):
    """The same through a shell-visible process: stderr and stdout, both URLs."""
    for args in (["db", "check"], ["status", RUN_ID]):
        result = run_cli(*args, env=secret_env(cli_env))
        printed = result.stdout + result.stderr
        assert result.returncode == 2 and USER_SECRET not in printed and QUERY_SECRET not in printed


def test_config_show_redacts_a_stored_url(cli_env):
    stored = f"https://alice:{USER_SECRET}@prefect.example.com/graphql?token={QUERY_SECRET}"
    code, _ = _in_process(["config", "set", "api-url", stored], cli_env)
    assert code == 0
    for args in (["config", "show"], ["config", "show", "--json"]):
        code, printed = _in_process(args, cli_env)
        assert code == 0 and "prefect.example.com" in printed
        assert USER_SECRET not in printed and QUERY_SECRET not in printed


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://u:p4ss@h/graphql", "https://u:***@h/graphql"),
        ("https://h/graphql?token=t0k&tenant=a", "https://h/graphql?token=***&tenant=a"),
        ("https://u@h/graphql?api_key=k3y", "https://u@h/graphql?api_key=***"),
        ("https://h/graphql", "https://h/graphql"),
        ("http://u:p@ss@h:1/x", "http://u:***@h:1/x"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown
