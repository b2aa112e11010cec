"""Settings read once from the environment: every setting, its default, and every bad value."""

import dataclasses
import os
import subprocess
import sys

import pytest

from simmate_k8s import settings as s
from simmate_k8s.errors import SettingsError, SimmateError
from simmate_k8s.settings import Settings

TIMEOUTS = {  # variable -> (attribute, default seconds)
    s.CONNECT_TIMEOUT: ("connect_timeout", 30.0),
    s.SAVE_RETRY: ("save_retry", 600.0),
    s.API_TIMEOUT: ("api_timeout", 10.0),
    s.POLL_INTERVAL: ("poll_interval", 2.0),
}


def base_env(tmp_path, **extra):
    return {"HOME": str(tmp_path / "home"), **extra}


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert isinstance(error.value, SimmateError)
    assert message and "\n" not in message
    return message


def test_names_of_the_settings():
    assert (s.DATABASE_URL, s.DATABASE_URL_FILE, s.CONNECT_TIMEOUT, s.SAVE_RETRY,
            s.DASK_ADDRESS, s.API_TIMEOUT, s.POLL_INTERVAL, s.IMAGE) == (
        "SIMMATE_DATABASE_URL", "SIMMATE_DATABASE_URL_FILE", "SIMMATE_DB_CONNECT_TIMEOUT",
        "SIMMATE_DB_SAVE_RETRY", "SIMMATE_DASK_ADDRESS", "SIMMATE_API_TIMEOUT",
        "SIMMATE_POLL_INTERVAL", "SIMMATE_IMAGE")
    assert set(TIMEOUTS) == set(s.DEFAULTS)  # every number of seconds is tested below


def test_defaults(tmp_path):
    settings = Settings.from_env(base_env(tmp_path, XDG_DATA_HOME=str(tmp_path / "data")))
    assert settings == Settings(
        database_url=f"sqlite:///{tmp_path}/data/simmate-k8s/results.sqlite3",
        connect_timeout=30.0, save_retry=600.0, dask_address=None, api_timeout=10.0,
        poll_interval=2.0, image=None)


def test_the_save_retry_waits_minutes_by_default(tmp_path):
    """A database restart must not fail items: the save waits minutes, not seconds."""
    assert Settings.from_env(base_env(tmp_path)).save_retry >= 120


def test_default_database_without_xdg_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = Settings.from_env({})
    assert settings.database_url == (
        f"sqlite:///{tmp_path}/home/.local/share/simmate-k8s/results.sqlite3")
    empty = Settings.from_env({"XDG_DATA_HOME": ""})
    assert empty.database_url == settings.database_url


def test_every_setting_is_read(tmp_path):
    env = base_env(tmp_path, SIMMATE_DATABASE_URL="postgresql://u:p@db/r",
                   SIMMATE_DB_CONNECT_TIMEOUT="3", SIMMATE_DB_SAVE_RETRY=" 120.5 ",
                   SIMMATE_DASK_ADDRESS="tcp://scheduler:8786", SIMMATE_API_TIMEOUT="2.5",
                   SIMMATE_POLL_INTERVAL="0.1",
                   SIMMATE_IMAGE="registry.example.com/simmate-k8s:0.2.0")
    assert Settings.from_env(env) == Settings(
        database_url="postgresql://u:p@db/r", connect_timeout=3.0, save_retry=120.5,
        dask_address="tcp://scheduler:8786", api_timeout=2.5, poll_interval=0.1,
        image="registry.example.com/simmate-k8s:0.2.0")


def test_empty_values_mean_the_default(tmp_path):
    env = base_env(tmp_path, SIMMATE_DATABASE_URL="", SIMMATE_DB_CONNECT_TIMEOUT="",
                   SIMMATE_DB_SAVE_RETRY="  ", SIMMATE_DASK_ADDRESS="", SIMMATE_API_TIMEOUT="",
                   SIMMATE_POLL_INTERVAL="", SIMMATE_IMAGE="", XDG_DATA_HOME=str(tmp_path))
    assert Settings.from_env(env) == Settings.from_env(base_env(tmp_path,
                                                                XDG_DATA_HOME=str(tmp_path)))


def test_settings_are_frozen(tmp_path):
    settings = Settings.from_env(base_env(tmp_path))
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.connect_timeout = 1  # type: ignore[misc]


def test_from_env_reads_os_environ_only_when_called(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMMATE_DB_CONNECT_TIMEOUT", "7")
    assert Settings.from_env().connect_timeout == 7.0
    monkeypatch.setenv("SIMMATE_DB_CONNECT_TIMEOUT", "8")
    assert Settings.from_env().connect_timeout == 8.0


def test_importing_the_package_reads_no_setting():
    """No import-time side effects: a bad value fails the command that reads it, not imports."""
    env = {**os.environ, "SIMMATE_DB_CONNECT_TIMEOUT": "abc", "SIMMATE_API_TIMEOUT": "nan",
           "SIMMATE_DATABASE_URL_FILE": "/nonexistent/url"}
    code = ("import simmate_k8s, simmate_k8s.settings, simmate_k8s.database, "
            "simmate_k8s.results, simmate_k8s.flows.library, simmate_k8s.preload, "
            "simmate_k8s.engine, simmate_k8s.server, simmate_k8s.commands.run, "
            "simmate_k8s.commands.flows, simmate_k8s.commands.results, simmate_k8s.commands.db, "
            "simmate_k8s.commands.config, simmate_k8s.commands.register, "
            "simmate_k8s.commands.submit, simmate_k8s.commands.runs, simmate_k8s.backends, "
            "simmate_k8s.backends.prefect_server, simmate_k8s.backends.kube_job")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- bad values --------------------------------------------------------------------------------

BAD_SECONDS = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "-0", "0.0", "abc", "1s",
               "30 s", "1,5", "1e400"]


@pytest.mark.parametrize("variable", sorted(TIMEOUTS))
@pytest.mark.parametrize("raw", BAD_SECONDS)
def test_bad_seconds_are_one_line_settings_errors(tmp_path, variable, raw):
    with pytest.raises(SettingsError) as error:
        Settings.from_env(base_env(tmp_path, **{variable: raw}))
    message = one_line(error)
    assert message.startswith(f"{variable}={raw!r}")
    assert "seconds" in message


@pytest.mark.parametrize("variable", sorted(TIMEOUTS))
@pytest.mark.parametrize("raw, seconds", [("0.001", 0.001), ("1", 1.0), ("1e3", 1000.0),
                                          (" 5 ", 5.0)])
def test_good_seconds(tmp_path, variable, raw, seconds):
    attribute, _ = TIMEOUTS[variable]
    assert getattr(Settings.from_env(base_env(tmp_path, **{variable: raw})), attribute) == seconds


@pytest.mark.parametrize("variable", sorted(TIMEOUTS))
def test_each_timeout_has_its_own_default(tmp_path, variable):
    attribute, default = TIMEOUTS[variable]
    assert getattr(Settings.from_env(base_env(tmp_path)), attribute) == default


# --- the URL from a file (keeps the password out of job scripts and `ps`) ------------------------


def test_url_file_is_read_and_stripped(tmp_path):
    url_file = tmp_path / "db-url"
    url_file.write_text("  postgresql://u:s3cret@db/results \n\n")
    settings = Settings.from_env(base_env(tmp_path, SIMMATE_DATABASE_URL_FILE=str(url_file)))
    assert settings.database_url == "postgresql://u:s3cret@db/results"


def test_the_url_itself_wins_over_the_file(tmp_path):
    env = base_env(tmp_path, SIMMATE_DATABASE_URL="sqlite:////tmp/a.db",
                   SIMMATE_DATABASE_URL_FILE=str(tmp_path / "never-read"))
    assert Settings.from_env(env).database_url == "sqlite:////tmp/a.db"


@pytest.mark.parametrize("make, expected", [
    (lambda path: None, "cannot read it (FileNotFoundError)"),
    (lambda path: path.mkdir(), "cannot read it (IsADirectoryError)"),
    (lambda path: path.write_bytes(b"\xff\xfe\x00binary"), "cannot read it (UnicodeDecodeError)"),
    (lambda path: path.write_text(""), "is empty; write the database URL in it"),
    (lambda path: path.write_text(" \n\n\t\n"), "is empty; write the database URL in it"),
])
def test_url_file_problems_are_one_line(tmp_path, make, expected):
    path = tmp_path / "db-url"
    make(path)
    with pytest.raises(SettingsError) as error:
        Settings.from_env(base_env(tmp_path, SIMMATE_DATABASE_URL_FILE=str(path)))
    message = one_line(error)
    assert message.startswith(f"SIMMATE_DATABASE_URL_FILE={path}")
    assert expected in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_url_file(tmp_path):
    path = tmp_path / "db-url"
    path.write_text("postgresql://u:p@db/r")
    path.chmod(0)
    with pytest.raises(SettingsError, match="cannot read it \\(PermissionError\\)"):
        Settings.from_env(base_env(tmp_path, SIMMATE_DATABASE_URL_FILE=str(path)))


def test_the_url_file_content_never_appears_in_errors(tmp_path):
    path = tmp_path / "db-url"
    path.write_bytes(b"postgresql://u:hunter2@db/r\xff")
    with pytest.raises(SettingsError) as error:
        Settings.from_env(base_env(tmp_path, SIMMATE_DATABASE_URL_FILE=str(path)))
    assert "hunter2" not in one_line(error)


# --- the command line: a bad setting is one line, exit 2 -----------------------------------------


@pytest.mark.parametrize("variable, raw", [("SIMMATE_DB_CONNECT_TIMEOUT", "nan"),
                                           ("SIMMATE_DB_SAVE_RETRY", "-1"),
                                           ("SIMMATE_API_TIMEOUT", "abc"),
                                           ("SIMMATE_POLL_INTERVAL", "0")])
def test_cli_reports_a_bad_setting_in_one_line(cli_env, variable, raw):
    from tests.conftest import run_cli

    command = ["submit", "smoke"] if variable in ("SIMMATE_API_TIMEOUT",
                                                  "SIMMATE_POLL_INTERVAL") else ["results"]
    result = run_cli(*command, env={**cli_env, variable: raw}, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert variable in result.stderr
