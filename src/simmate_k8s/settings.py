"""Settings read once from the environment and passed down.

Nothing reads the environment at import time: commands call :meth:`Settings.from_env` once, the
worker preload calls it when a worker starts, and everything else receives the object.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from simmate_k8s.errors import SettingsError

DATABASE_URL = "SIMMATE_DATABASE_URL"
DATABASE_URL_FILE = "SIMMATE_DATABASE_URL_FILE"
CONNECT_TIMEOUT = "SIMMATE_DB_CONNECT_TIMEOUT"
SAVE_RETRY = "SIMMATE_DB_SAVE_RETRY"
DASK_ADDRESS = "SIMMATE_DASK_ADDRESS"
API_TIMEOUT = "SIMMATE_API_TIMEOUT"
POLL_INTERVAL = "SIMMATE_POLL_INTERVAL"  # how often `--watch` asks Prefect Server
IMAGE = "SIMMATE_IMAGE"
# A tls:// scheduler: Dask's own config variables (the chart's pods set the same), read here so
# that a missing one is a one-line error instead of a refused handshake.
DASK_TLS_CA_FILE = "DASK_DISTRIBUTED__COMM__TLS__CA_FILE"
DASK_TLS_CERT = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT"
DASK_TLS_KEY = "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY"

DEFAULTS = {CONNECT_TIMEOUT: 30.0, SAVE_RETRY: 600.0, API_TIMEOUT: 10.0, POLL_INTERVAL: 2.0}


def default_database_url(env: Mapping[str, str]) -> str:
    data_home = Path(env.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'simmate-k8s' / 'results.sqlite3'}"


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULTS[name]
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}={raw!r} must be a finite number of seconds above 0")
    return value


def _database_url(env: Mapping[str, str]) -> str:
    if env.get(DATABASE_URL):
        return env[DATABASE_URL]
    path = env.get(DATABASE_URL_FILE)
    if not path:
        return default_database_url(env)
    try:  # a file only its owner can read keeps the password out of job scripts and `ps`
        url = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{DATABASE_URL_FILE}={path}: cannot read it "
                            f"({error.__class__.__name__})") from None
    if not url:
        raise SettingsError(f"{DATABASE_URL_FILE}={path} is empty; write the database URL in it")
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str
    connect_timeout: float  # seconds to reach the database when a worker or command starts
    save_retry: float  # seconds a save waits for a database that went away
    dask_address: str | None
    api_timeout: float
    poll_interval: float
    image: str | None  # the image this process runs in (provenance), when known
    # files for a tls:// scheduler: the CA and this client's certificate and key
    dask_tls_ca_file: str | None = None
    dask_tls_cert: str | None = None
    dask_tls_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=_database_url(env),
            connect_timeout=_seconds(env, CONNECT_TIMEOUT),
            save_retry=_seconds(env, SAVE_RETRY),
            dask_address=env.get(DASK_ADDRESS) or None,
            api_timeout=_seconds(env, API_TIMEOUT),
            poll_interval=_seconds(env, POLL_INTERVAL),
            image=env.get(IMAGE) or None,
            dask_tls_ca_file=env.get(DASK_TLS_CA_FILE) or None,
            dask_tls_cert=env.get(DASK_TLS_CERT) or None,
            dask_tls_key=env.get(DASK_TLS_KEY) or None,
        )
