"""Write ``charts/simmate/values.schema.json`` from the values model.

    python -m simmate_k8s.values.schema            # regenerate the checked-in file
    python -m simmate_k8s.values.schema --check    # exit 1 when the file has drifted

The schema is self-contained (local ``#/$defs`` references only) so installs work offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CHART_DIR = Path(__file__).resolve().parents[3] / "charts" / "simmate"
SCHEMA_PATH = CHART_DIR / "values.schema.json"


def build_schema() -> dict:
    from simmate_k8s.values.model import ChartValues

    schema = _keys_as_property_names(
        ChartValues.model_json_schema(by_alias=True, mode="validation")
    )
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the simmate Helm chart",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def _keys_as_property_names(node):
    """pydantic writes a constrained dict key as `patternProperties`, which lets keys that do not
    match through unchecked; the model refuses them, so the schema must too: the key pattern goes
    to `propertyNames` and the value schema to `additionalProperties`."""
    if isinstance(node, list):
        return [_keys_as_property_names(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _keys_as_property_names(value) for key, value in node.items()}
    patterns = node.pop("patternProperties", None)
    if patterns:
        [(pattern, values)] = patterns.items()
        node["propertyNames"] = {**node.get("propertyNames", {}), "pattern": pattern}
        node["additionalProperties"] = values
    return node


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the file is out of date")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    args = parser.parse_args(argv)
    text = schema_text()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python -m simmate_k8s.values.schema")
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
