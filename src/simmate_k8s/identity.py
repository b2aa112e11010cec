"""The identity of a piece of work: what makes two items the same computation.

Kept free of heavy imports: the CLI computes keys while it checks inputs, before it imports the
database layer.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def input_digest(data: Any) -> str:
    """Hash of an input's content; text is compared without trailing spaces and blank lines, so
    a re-saved file is the same input."""
    if isinstance(data, str):
        canonical = "\n".join(line.rstrip() for line in data.strip().splitlines())
    else:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def item_key(workflow: str, version: str, digest: str, parameters: dict[str, Any]) -> str:
    identity = {"workflow": workflow, "version": version, "input": digest,
                "parameters": parameters}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def finite_json(value: Any, where: str = "result") -> Any:
    """``value`` if it holds only finite numbers; ValueError naming the first NaN/Inf.

    Strict JSON (and PostgreSQL's json type) has no NaN: a non-finite energy is a failed item,
    never a saved Success."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value} (not a finite number)")
    if isinstance(value, dict):
        for key, item in value.items():
            finite_json(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            finite_json(item, f"{where}[{index}]")
    return value


