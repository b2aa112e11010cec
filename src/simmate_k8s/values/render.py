"""Build validated chart values: a target profile, then ``-f`` files, then ``--set a.b=c``.

The result is the merged *overrides* (what differs from values.yaml), checked against the full
model so that whatever is written installs. Errors are ``ValuesError`` with one readable line per
problem.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from simmate_k8s.values import PROFILES
from simmate_k8s.values.model import ChartValues, Strict, required_keys


class ValuesError(ValueError):
    """Values that the chart would reject; the message lists every problem."""


def load_profile(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ValuesError(f"unknown profile {name!r}: choose from {', '.join(PROFILES)}")
    text = resources.files("simmate_k8s.values").joinpath("profiles", f"{name}.yaml").read_text()
    return yaml.safe_load(text) or {}


def load_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except OSError as error:
        raise ValuesError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ValuesError(f"{path} is not a text file (not UTF-8)") from None
    except yaml.YAMLError as error:
        raise ValuesError(f"{path} is not valid YAML: {_yaml_problem(error)}") from None
    except RecursionError:
        raise ValuesError(f"{path} is nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError(f"{path} must hold a mapping of values, not {type(data).__name__}")
    return string_keys(data)


def string_keys(data: Any) -> Any:
    """Mapping keys as Helm sees them: YAML `1:` or `true:` keys become "1" and "true"."""
    if isinstance(data, dict):
        return {_key(key): string_keys(value) for key, value in data.items()}
    if isinstance(data, list):
        return [string_keys(item) for item in data]
    return data


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return "null" if key is None else str(key)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines (with the offending text); keep one."""
    problem = getattr(error, "problem", None) or type(error).__name__
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    return _one_line(str(problem)) + where


def _one_line(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_set(expression: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value); the value is read as YAML (3, true, [x])."""
    key, sep, raw = expression.partition("=")
    # `\.` is a dot inside a key, as for helm --set (e.g. commonLabels.team\.io/x=y)
    path = [part.replace("\0", ".") for part in key.strip().replace("\\.", "\0").split(".")]
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


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_./-]{1,80}")


def _location(parts: tuple[Any, ...]) -> str:
    """`a.b.0.c` for a values path; a key that is odd (a newline, 100 kB) is shown quoted and
    cut, so the message stays one line and never echoes a huge value."""
    shown = []
    for part in parts:
        if part == "[key]":
            shown.append("(key)")
        elif isinstance(part, int) or _PLAIN_KEY.fullmatch(str(part)):
            shown.append(str(part))
        else:
            shown.append(_one_line(json.dumps(str(part)), 40))
    return ".".join(shown).replace(".(key)", " (key)")


def format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = _location(item["loc"])
        message = _one_line(item["msg"].removeprefix("Value error, "), 200)
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        if not location and item["type"] == "value_error":
            lines.append(message)  # a rule across keys names its keys itself
        else:
            lines.append(f"{location or '(top level)'}: {message}")
    return "; ".join(lines)


def nulled_keys(model: type[Strict], data: dict[str, Any], path: str = "") -> list[str]:
    """Keys the schema requires (see model.required_keys) that a `null` removed from the merged
    values. Helm drops such keys too, and then its schema refuses them: so refuse them here."""
    problems = []
    for key in required_keys(model):
        if key not in data:
            problems.append(f"{path}{key}: must not be null (the chart needs a value)")
    for name, info in model.model_fields.items():
        key = info.alias or name
        sub = info.annotation
        if (
            isinstance(sub, type)
            and issubclass(sub, Strict)
            and not sub.user_item
            and isinstance(data.get(key), dict)
        ):
            problems += nulled_keys(sub, data[key], f"{path}{key}.")
    return problems


def validate(values: dict[str, Any]) -> ChartValues:
    defaults = ChartValues().model_dump(by_alias=True, mode="json")
    merged = merge(defaults, values)
    problems = nulled_keys(ChartValues, merged)
    if problems:
        raise ValuesError(f"invalid values: {'; '.join(problems)}")
    try:
        # strict: "8" is not 8 and "yes" is not true, as for the JSON schema Helm applies
        return ChartValues.model_validate(merged, strict=True)
    except ValidationError as error:
        raise ValuesError(f"invalid values: {format_errors(error)}") from None
    except RecursionError:
        raise ValuesError("invalid values: nested too deeply") from None


def build_values(
    profile: str | None = None, files: tuple[Path, ...] = (), sets: tuple[str, ...] = ()
) -> dict[str, Any]:
    values: dict[str, Any] = load_profile(profile) if profile else {}
    for path in files:
        values = merge(values, load_file(path))
    for expression in sets:
        path, value = parse_set(expression)
        values = set_path(values, path, string_keys(value))
    validate(values)
    return values


def to_yaml(values: dict[str, Any], profile: str | None) -> str:
    header = "# Written by `simmate-k8s values`"
    header += f" --profile {profile}" if profile else ""
    header += "; validated against the chart's values model.\n"
    header += "# Install: helm install simmate charts/simmate -f <this file>\n"
    body = yaml.safe_dump(values, sort_keys=False, default_flow_style=False) if values else "{}\n"
    return header + body
