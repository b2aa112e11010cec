"""One version source: pyproject.toml -> package metadata (simmate_k8s.__version__) -> the chart's
appVersion and the default image tag (values.yaml and the values model)."""

import tomllib

import yaml

import simmate_k8s
from simmate_k8s.values.model import ChartValues
from tests.chart.helpers import CHART, ROOT, find


def test_every_version_is_pyprojects():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    found = {
        "simmate_k8s.__version__ (reinstall: pip install -e .)": simmate_k8s.__version__,
        "Chart.yaml appVersion": str(chart["appVersion"]),
        "values.yaml image.tag": str(values["image"]["tag"]),
        "values model image.tag": ChartValues().image.tag,
    }
    wrong = {where: value for where, value in found.items() if value != version}
    assert not wrong, f"pyproject.toml says {version}: {wrong}"


def test_rendered_image_and_version_label_follow_the_app_version(default_docs):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    agent = find(default_docs, "Deployment", "-agent")
    assert agent["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        f":{chart['appVersion']}"
    )
    assert agent["metadata"]["labels"]["app.kubernetes.io/version"] == chart["appVersion"]
