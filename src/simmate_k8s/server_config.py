"""Where Prefect Server lives: stored per user, overridable by environment.

Precedence, highest first, for each setting:

    api-url   PREFECT__CLOUD__API, then PREFECT__SERVER__ENDPOINT (Prefect's own names)
              > config file > http://localhost:4200/graphql
    ui-url    PREFECT__SERVER__UI__ENDPOINT > config file > derived from api-url
    project   SIMMATE_PROJECT > config file > "simmate"

The file is ``$XDG_CONFIG_HOME/simmate-k8s/config.json`` (``~/.config/...`` by default), mode
0600 because it may hold credentials (``--basic-auth``, ``--header``). This module imports no
Prefect, so ``config`` commands stay fast.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from simmate_k8s.errors import UserError
from simmate_k8s.redaction import REDACTED, redact_url

DEFAULT_API_URL = "http://localhost:4200/graphql"
DEFAULT_PROJECT = "simmate"
API_ENV = ("PREFECT__CLOUD__API", "PREFECT__SERVER__ENDPOINT")
UI_ENV = "PREFECT__SERVER__UI__ENDPOINT"
PROJECT_ENV = "SIMMATE_PROJECT"
KEYS = ("api-url", "ui-url", "project")
_SENSITIVE_HEADER = re.compile(r"auth|token|key|secret|cookie|pass|session", re.IGNORECASE)


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "simmate-k8s" / "config.json"


@dataclass
class ServerConfig:
    api_url: str
    ui_url: str
    project: str
    headers: dict[str, str] = field(default_factory=dict)  # sent with every API request
    sources: dict[str, str] = field(default_factory=dict)  # setting -> "env X" / "file" / "default"

    def flow_run_url(self, flow_run_id: str, tenant_slug: str = "default") -> str:
        return f"{self.ui_url.rstrip('/')}/{tenant_slug}/flow-run/{flow_run_id}"


def check_url(url: str, what: str = "api-url") -> str:
    """The whole URL must be usable: scheme, host, a numeric port if any, no whitespace."""
    problem = f"{what} {redact_url(url)!r}: expected http(s)://HOST[:PORT]/PATH"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number 0-65535
    except ValueError:
        raise UserError(problem) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", url):
        raise UserError(problem)
    return url


def derive_ui_url(api_url: str) -> str:
    """Prefect Server's UI next to its API: port 4200 -> 8080 (port-forward / in-cluster
    Services), and without the ``/graphql`` path (an ingress serving both on one host)."""
    parts = urlsplit(api_url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.port == 4200:
        netloc = netloc[: -len(":4200")] + ":8080"
    path = parts.path[: -len("/graphql")] if parts.path.endswith("/graphql") else parts.path
    return urlunsplit((parts.scheme, netloc, path.rstrip("/"), "", ""))


def read_file() -> dict:
    path = config_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a readable simmate-k8s config ({error}); "
                        "fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a readable simmate-k8s config; fix or delete it")
    return data


def write_file(data: dict) -> Path:
    """Write the config with mode 0600 (directory 0700): it may hold credentials."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.chmod(path, 0o600)  # also when the file existed with wider permissions
    return path


def auth_headers(basic_auth: str | None, headers: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--basic-auth user:pass`` and ``--header K=V`` -> HTTP headers (checked)."""
    result = {}
    if basic_auth is not None:
        user, sep, password = basic_auth.partition(":")
        if not sep or not user:
            raise UserError("--basic-auth: expected USER:PASSWORD")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        result["Authorization"] = f"Basic {token}"
    for header in headers:
        key, sep, value = header.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", key):
            raise UserError(f"--header {header!r}: expected NAME=VALUE, e.g. X-Team=materials")
        if "\n" in value or "\r" in value:
            raise UserError(f"--header {key}: the value must be one line")
        result[key] = value
    return result


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    shown = {}
    for key, value in headers.items():
        if key.lower() == "authorization" and value.startswith("Basic "):
            try:
                user = base64.b64decode(value[6:]).decode().partition(":")[0]
            except ValueError:
                user = "?"
            shown[key] = f"Basic {user}:{REDACTED}"
        elif _SENSITIVE_HEADER.search(key):
            shown[key] = REDACTED
        else:
            shown[key] = value
    return shown


def load() -> ServerConfig:
    data = read_file()
    sources = {}

    def pick(key, env_names, default):
        for name in env_names:
            if os.environ.get(name):
                sources[key] = f"env {name}"
                return os.environ[name]
        if data.get(key):
            sources[key] = "file"
            return data[key]
        sources[key] = "default"
        return default() if callable(default) else default

    api_url = check_url(pick("api-url", API_ENV, DEFAULT_API_URL))
    ui_url = pick("ui-url", (UI_ENV,), lambda: derive_ui_url(api_url))
    project = pick("project", (PROJECT_ENV,), DEFAULT_PROJECT)
    headers = {str(k): str(v) for k, v in (data.get("headers") or {}).items()}
    # Stored credentials belong to the stored URL; never send them to a URL from the environment.
    if sources["api-url"] != "file":
        headers = {}
    return ServerConfig(api_url, ui_url, project, headers, sources)


def set_value(key: str, value: str, headers: dict[str, str] | None = None) -> Path:
    if key not in KEYS:
        raise UserError(f"unknown setting {key!r}; choose one of: {', '.join(KEYS)}")
    if key in ("api-url", "ui-url"):
        check_url(value, key)
    elif not value.strip():
        raise UserError(f"{key}: must not be empty")
    data = read_file()
    data[key] = value
    if key == "api-url":  # credentials go with the URL they were given for
        data.pop("headers", None)
        if headers:
            data["headers"] = headers
    return write_file(data)


def unset_value(key: str) -> Path:
    if key not in KEYS:
        raise UserError(f"unknown setting {key!r}; choose one of: {', '.join(KEYS)}")
    data = read_file()
    data.pop(key, None)
    if key == "api-url":
        data.pop("headers", None)
    return write_file(data)


def describe(config: ServerConfig) -> dict:
    """What ``config show`` prints: every setting with its source, secrets redacted."""
    return {
        "config_file": str(config_path()),
        "api-url": {"value": redact_url(config.api_url), "source": config.sources["api-url"]},
        "ui-url": {"value": redact_url(config.ui_url), "source": config.sources["ui-url"]},
        "project": {"value": config.project, "source": config.sources["project"]},
        "headers": redact_headers(config.headers),
    }
