#!/usr/bin/env bash
# Install SLURM and MUNGE from Debian's packages (slurm-wlm, munge) for the tests in tests/hpc/.
#
# Idempotent: packages already present are not reinstalled. Nothing is started or enabled here:
# the tests start a private munged/slurmctld/slurmd with their own config and state directory
# (tests/support/slurm.py), so the packages' systemd units stay unused. The Debian packages try to
# start their services on install where systemd runs; policy-rc.d keeps them from doing that.
set -euo pipefail

packages=(slurm-wlm munge)

slurm_version() { dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo "?"; }

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-slurm: already installed (slurm $(slurm_version))"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
        echo "install-slurm: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
if ! command -v apt-get >/dev/null; then
    echo "install-slurm: please install: ${missing[*]} (no apt-get here)" >&2
    exit 1
fi

echo "install-slurm: installing ${missing[*]}"
# Keep the packages' services from being started by the install (we run our own daemons).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 0755 "$policy"
    created_policy=1
fi
cleanup() { if ((created_policy)); then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-slurm: ready (slurm $(slurm_version))"
