#!/usr/bin/env bash
# Install what simmate-k8s and its tests need on this machine: the Python environment (.venv, the
# pinned set in constraints.txt) and, with --test, a PostgreSQL server for the integration tests.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "error: simmate-k8s needs Python 3.11 (Prefect 1 does not run on newer ones);" \
         "set PYTHON=/path/to/python3.11" >&2
    exit 2
fi

apt_install() {
    local sudo=""
    if [[ $(id -u) -ne 0 ]]; then
        if ! command -v sudo >/dev/null; then
            echo "error: please install: $*" >&2
            exit 2
        fi
        sudo="sudo"
    fi
    if ! command -v apt-get >/dev/null; then
        echo "error: please install: $* (no apt-get here)" >&2
        exit 2
    fi
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [[ $WITH_TEST == 1 ]] && ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    echo "installing PostgreSQL (Debian package)"
    apt_install postgresql
fi

hash="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
stamp="$VENV/.installed-$hash-$WITH_TEST"
# a test install also satisfies a plain one
if [[ ! -f "$stamp" && ! ( $WITH_TEST == 0 && -f "$VENV/.installed-$hash-1" ) ]]; then
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # The image leaves out the chart and hpc extras; a checkout needs them (chart-deps, doctor,
    # workers slurm and their tests).
    extras="hpc,chart"
    [[ $WITH_TEST == 1 ]] && extras="$extras,test,lint"
    "$VENV/bin/pip" install -q -c constraints.txt -e ".[$extras]"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
echo "ready: $VENV ($("$VENV/bin/simmate-k8s" --version))"
