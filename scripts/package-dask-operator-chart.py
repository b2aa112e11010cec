#!/usr/bin/env python3
"""Package the dask-kubernetes-operator chart shipped in the installed dask-kubernetes wheel into
charts/simmate/charts/ (git-ignored), so `helm template/lint/install` work offline.

The wheel's chart carries chartpress placeholders; this sets version, appVersion and the operator
image tag to the installed dask-kubernetes version (which Chart.yaml's dependency pins).
Idempotent: does nothing when the package for that version is already there.
"""

from __future__ import annotations

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


def find_helm() -> str:
    local = ROOT / ".tools" / "bin" / "helm"
    if local.exists():
        return str(local)
    found = shutil.which("helm")
    if not found:
        sys.exit("helm not found: run scripts/install-chart-tools.sh")
    return found


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
    target = CHARTS / f"{NAME}-{version}.tgz"
    if target.exists():
        print(f"{target.relative_to(ROOT)}: present")
        return 0
    source = Path(dask_kubernetes.__file__).parent / "operator/deployment/helm" / NAME
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
