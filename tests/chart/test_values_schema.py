"""The values model is the source of truth: schema file, values.yaml and helm agree with it."""

import json

import pytest
import yaml

from simmate_k8s.values import schema
from simmate_k8s.values.model import ChartValues
from tests.chart.helpers import CHART, RenderError, render_chart


def test_schema_file_has_not_drifted():
    assert (CHART / "values.schema.json").read_text() == schema.schema_text(), (
        "values.schema.json is stale: run python -m simmate_k8s.values.schema"
    )


def test_schema_is_self_contained():
    text = (CHART / "values.schema.json").read_text()
    refs = {ref for ref in _refs(json.loads(text))}
    assert refs and all(ref.startswith("#/$defs/") for ref in refs)


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_values_yaml_equals_model_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == ChartValues().model_dump(by_alias=True, mode="json")


def test_every_field_is_documented():
    undocumented = [
        f"{model.__name__}.{name}"
        for model in _models(ChartValues)
        for name, info in model.model_fields.items()
        if not info.description
    ]
    assert not undocumented


def _models(model, seen=None):
    seen = seen if seen is not None else set()
    if model in seen:
        return seen
    seen.add(model)
    for info in model.model_fields.values():
        for candidate in _types(info.annotation):
            if isinstance(candidate, type) and issubclass(candidate, ChartValues.__mro__[1]):
                _models(candidate, seen)
    return seen


def _types(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types(arg)


def test_every_values_yaml_key_has_a_comment():
    lines = (CHART / "values.yaml").read_text().splitlines()
    missing = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        parent_flow = "{" in line or indent > 6  # leaves inside documented blocks
        previous = lines[index - 1].strip() if index else ""
        is_leaf = ":" in stripped and not stripped.endswith(":")
        if not previous.startswith("#") and not parent_flow and indent <= 4 and is_leaf:
            missing.append(stripped)
    assert not missing, missing


@pytest.mark.parametrize(
    "values, words",
    [
        ({"dask": {"worker": {"nthreads": "many"}}}, "nthreads"),
        ({"prefectServer": {"unknownKey": 1}}, "unknownKey"),
        ({"image": {"tag": 3}}, "tag"),
        ({"postgresql": {"persistence": {"size": "lots"}}}, "size"),
    ],
)
def test_helm_rejects_values_the_schema_forbids(values, words):
    with pytest.raises(RenderError) as error:
        render_chart(values)
    assert "schema" in str(error.value) and words in str(error.value)
