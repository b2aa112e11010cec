#!/usr/bin/env python3
"""Package the dask-kubernetes-operator chart shipped in the installed dask-kubernetes wheel into
charts/simmate/charts/ (git-ignored), so `helm template/lint/install` work offline, and copy its
CRDs as compact JSON to charts/simmate/files/dask-crds/ (kept in git: the optional CRD upgrade hook,
daskOperator.upgradeCRDs, applies them; tests/chart/test_operations.py checks they match).

The wheel's chart carries chartpress placeholders; this sets version, appVersion and the operator
image tag to the installed dask-kubernetes version (which Chart.yaml's dependency pins).
Idempotent: does nothing when the package and the CRD copies for that version are already there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHARTS = ROOT / "charts" / "simmate" / "charts"
NAME = "dask-kubernetes-operator"
CRD_COPIES = ROOT / "charts" / "simmate" / "files" / "dask-crds"


def find_helm() -> str:
    local = ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if not found:
        sys.exit("helm not found: run scripts/install-chart-tools.sh")
    return found


def crd_json(path: Path) -> str:
    """A CRD as one line of JSON: a third of the YAML's size, so all four fit one ConfigMap."""
    import yaml

    crd = yaml.safe_load(path.read_text())
    return json.dumps(crd, separators=(",", ":"), sort_keys=True) + "\n"


def copy_crds(crds: Path) -> None:
    CRD_COPIES.mkdir(parents=True, exist_ok=True)
    wanted = {f"{path.stem}.json": crd_json(path) for path in sorted(crds.glob("*.yaml"))}
    for old in CRD_COPIES.glob("*.json"):
        if old.name not in wanted:
            old.unlink()
    for name, text in wanted.items():
        target = CRD_COPIES / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            print(f"{target.relative_to(ROOT)}: written")


def main() -> int:
    import dask_kubernetes

    version = metadata.version("dask-kubernetes")
    wanted = (
        re.search(
            r"version:\s*(\S+)",
            (ROOT / "charts/simmate/Chart.yaml").read_text().split(f"name: {NAME}", 1)[1],
        )
        .group(1)
        .strip("\"'")
    )
    if wanted != version:
        sys.exit(f"Chart.yaml pins {NAME} {wanted} but dask-kubernetes {version} is installed")
    source = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm" / NAME
    copy_crds(source / "crds")
    target = CHARTS / f"{NAME}-{version}.tgz"
    if target.exists():
        print(f"{target.relative_to(ROOT)}: present")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / NAME
        shutil.copytree(source, chart)
        chart_yaml = chart / "Chart.yaml"
        text = re.sub(r"(?m)^version:.*$", f"version: {version}", chart_yaml.read_text())
        text = re.sub(r"(?m)^appVersion:.*$", f'appVersion: "{version}"', text)
        chart_yaml.write_text(text)
        values = chart / "values.yaml"
        values.write_text(values.read_text().replace('"set-by-chartpress"', f'"{version}"'))
        CHARTS.mkdir(parents=True, exist_ok=True)
        for old in CHARTS.glob(f"{NAME}-*.tgz"):
            old.unlink()
        subprocess.run(
            [find_helm(), "package", str(chart), "-d", str(CHARTS)],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "HELM_NO_PLUGINS": "1"},
        )
    print(f"{target.relative_to(ROOT)}: packaged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
