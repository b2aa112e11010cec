"""Build validated chart values: a target profile, then ``-f`` files, then ``--set a.b=c``.

The result is the merged *overrides* (what differs from values.yaml), checked against the full
model so that whatever is written installs. Errors are ``ValuesError`` with one readable line per
problem.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simmate_k8s.values.model import ChartValues

PROFILES = ("kind", "minikube", "gke", "digitalocean")


class ValuesError(ValueError):
    """Values that the chart would reject; the message lists every problem."""


def load_profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ValuesError(f"unknown profile {name!r}: choose from {', '.join(PROFILES)}")
    text = resources.files("simmate_k8s.values").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ValuesError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValuesError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"{path} must hold a mapping of values, not {type(data).__name__}")
    return data


def parse_set(expression: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value); the value is read as YAML (3, true, [x])."""
    key, sep, raw = expression.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise ValuesError(f"--set {expression!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge like Helm: mappings merge key by key, null deletes, anything else replaces."""
    result = copy.deepcopy(base)
    for key, value in override.items():
        if value is None and isinstance(result.get(key), dict):
            del result[key]
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def set_path(data: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    override: Any = value
    for key in reversed(path):
        override = {key: override}
    return merge(data, override)


def format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if not location and item["type"] == "value_error":
            lines.append(message)  # a rule across keys names its keys itself
        else:
            lines.append(f"{location or '(top level)'}: {message}")
    return "; ".join(lines)


def validate(values: dict[str, Any]) -> ChartValues:
    defaults = ChartValues().model_dump(by_alias=True, mode="json")
    try:
        return ChartValues.model_validate(merge(defaults, values))
    except ValidationError as error:
        raise ValuesError(f"invalid values: {format_errors(error)}") from None


def build_values(
    profile: str | None = None, files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()
) -> dict[str, Any]:
    values: dict[str, Any] = load_profile(profile) if profile else {}
    for path in files:
        values = merge(values, load_file(path))
    for expression in sets:
        values = set_path(values, *parse_set(expression))
    validate(values)
    return values


def to_yaml(values: dict[str, Any], profile: str | None) -> str:
    header = "# Written by `simmate-k8s values`"
    header += f" --profile {profile}" if profile else ""
    header += "; validated against the chart's values model.\n"
    header += "# Install: helm install simmate charts/simmate -f <this file>\n"
    body = yaml.safe_dump(values, sort_keys=False, default_flow_style=False) if values else "{}\n"
    return header + body
