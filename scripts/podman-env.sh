# shellcheck shell=bash
# Source me: point podman/buildah at the repo-local configuration written by
# scripts/install-container-tools.sh (.tools/containers/), when it exists and nothing else is set.
_simmate_dir="${SIMMATE_CONTAINERS_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/containers}"
if [[ -z "${CONTAINERS_CONF:-}" && -f "$_simmate_dir/containers.conf" ]]; then
    export CONTAINERS_CONF="$_simmate_dir/containers.conf"
fi
if [[ -z "${CONTAINERS_STORAGE_CONF:-}" && -f "$_simmate_dir/storage.conf" ]]; then
    export CONTAINERS_STORAGE_CONF="$_simmate_dir/storage.conf"
fi
unset _simmate_dir
