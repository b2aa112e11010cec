#!/usr/bin/env bash
# Install rootful podman/buildah (Debian packages) and write a repo-local podman configuration.
#
# Idempotent: packages already present are not reinstalled and the config files are rewritten
# with the same content. The configuration lives in .tools/containers/ (git-ignored):
#   containers.conf  runtime runc, cgroupfs, file events logger, default ulimits
#   storage.conf     image/container storage under .tools/containers/storage
# Use it with `source scripts/podman-env.sh` (exports CONTAINERS_CONF / CONTAINERS_STORAGE_CONF).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conf_dir="${SIMMATE_CONTAINERS_DIR:-$repo_root/.tools/containers}"

packages=(podman buildah runc debootstrap containernetworking-plugins fuse-overlayfs uidmap)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-container-tools: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "install-container-tools: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "install-container-tools: packages already installed"
fi

mkdir -p "$conf_dir/storage" "$conf_dir/run"

# The host has hybrid cgroups and no CAP_SYS_RESOURCE: crun and systemd cgroups fail there,
# and raising the default nofile limit does too, so pin limits the host can grant.
cat >"$conf_dir/containers.conf" <<CONF
# Written by scripts/install-container-tools.sh; do not edit by hand.
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$conf_dir/run/events.log"
CONF

# overlay on the repo's filesystem works rootful; fall back to vfs with SIMMATE_STORAGE_DRIVER=vfs.
cat >"$conf_dir/storage.conf" <<CONF
# Written by scripts/install-container-tools.sh; do not edit by hand.
[storage]
driver = "${SIMMATE_STORAGE_DRIVER:-overlay}"
graphroot = "$conf_dir/storage"
runroot = "$conf_dir/run/storage"
CONF

echo "install-container-tools: config in $conf_dir ($(podman --version))"
