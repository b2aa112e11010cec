"""The CLI's side of Dask TLS: which files it reads and what it says when they are missing."""

from __future__ import annotations

import pytest

from simmate_k8s import engine
from simmate_k8s.errors import SettingsError
from simmate_k8s.settings import DASK_TLS_CA_FILE, DASK_TLS_CERT, DASK_TLS_KEY, Settings

ADDRESS = "tls://lab-simmate-dask-scheduler.team.svc:8786"


@pytest.fixture
def files(tmp_path):
    paths = {
        name: tmp_path / f"{name.rsplit('__', 1)[-1].lower()}.pem"
        for name in (DASK_TLS_CA_FILE, DASK_TLS_CERT, DASK_TLS_KEY)
    }
    for path in paths.values():
        path.write_text("-----BEGIN X-----\n")
    return {name: str(path) for name, path in paths.items()}


def test_dask_own_variables_are_read(files):
    settings = Settings.from_env(files)
    assert (settings.dask_tls_ca_file, settings.dask_tls_cert, settings.dask_tls_key) == (
        files[DASK_TLS_CA_FILE],
        files[DASK_TLS_CERT],
        files[DASK_TLS_KEY],
    )


def test_tls_address_gets_a_security_that_requires_encryption(files):
    security = engine.security(ADDRESS, Settings.from_env(files))
    assert security.require_encryption is True
    assert security.tls_ca_file == files[DASK_TLS_CA_FILE]
    assert (security.tls_client_cert, security.tls_client_key) == (
        files[DASK_TLS_CERT],
        files[DASK_TLS_KEY],
    )
    assert engine.security("tcp://h:8786", Settings.from_env(files)) is None


def test_missing_variables_are_named_in_one_line(files):
    with pytest.raises(SettingsError) as error:
        engine.security(ADDRESS, Settings.from_env({DASK_TLS_CA_FILE: files[DASK_TLS_CA_FILE]}))
    message = str(error.value)
    assert DASK_TLS_CERT in message and DASK_TLS_KEY in message
    assert DASK_TLS_CA_FILE not in message and "\n" not in message


def test_an_unreadable_file_is_one_line(files, tmp_path):
    env = {**files, DASK_TLS_KEY: str(tmp_path / "nope.key")}
    with pytest.raises(SettingsError, match=rf"^{DASK_TLS_KEY}=.*nope.key: cannot read it"):
        engine.security(ADDRESS, Settings.from_env(env))


def test_connect_refuses_tls_without_security():
    with pytest.raises(engine.SchedulerError, match="needs TLS certificates"):
        engine.connect(ADDRESS)


def test_files_that_are_not_certificates_are_one_line(files):
    security = engine.security(ADDRESS, Settings.from_env(files))  # readable, but not PEM
    with pytest.raises(engine.SchedulerError, match=r"^TLS with the Dask scheduler at .* failed"):
        engine.connect("tls://127.0.0.1:9", timeout=2, security=security)
