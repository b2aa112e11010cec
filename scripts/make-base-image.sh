#!/usr/bin/env bash
# Make a local stand-in for the `python:3.11-slim` base image with debootstrap (no registry here).
#
# The result is Debian bookworm (minbase) with Debian's python3 (3.11.x), venv and pip, tagged as
# both localhost/python:3.11-slim and docker.io/library/python:3.11-slim, so the project's
# Dockerfile (`FROM python:3.11-slim`) builds unchanged with `podman build --pull=never`.
#
# Test tooling only: the machine's local CA certificates (/usr/local/share/ca-certificates, e.g. a
# TLS-re-signing proxy) are installed in the image and PIP_CERT / SSL_CERT_FILE /
# REQUESTS_CA_BUNDLE point at the system bundle, so pip inside `podman build` reaches PyPI. The
# Dockerfile itself knows nothing about this.
#
# Skips all work when the image already exists (FORCE=1 rebuilds it).
# Env: SIMMATE_DEBIAN_MIRROR (default: the first Debian mirror in the apt sources).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/podman-env.sh
source "$repo_root/scripts/podman-env.sh"

image="localhost/python:3.11-slim"
alias_name="docker.io/library/python:3.11-slim"
suite="bookworm"

if [[ "${FORCE:-0}" != 1 ]] && podman image exists "$image"; then
    podman tag "$image" "$alias_name"
    echo "make-base-image: $image already present, skipping"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "make-base-image: debootstrap needs root" >&2
    exit 1
fi

mirror="${SIMMATE_DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    mirror="$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
        | grep -oE 'https?://[^ ]+' | head -n1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

work="$(mktemp -d "${TMPDIR:-/tmp}/simmate-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

start=$SECONDS
echo "make-base-image: debootstrap $suite from $mirror"
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

# Local CA certificates of this machine (test tooling only, see header).
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
fi
chroot "$rootfs" update-ca-certificates >/dev/null 2>&1

# Trim what a slim image does not carry.
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/root/.cache
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
find "$rootfs/usr/lib/python3" "$rootfs/usr/lib/python3.11" -name '__pycache__' -type d -prune -exec rm -rf {} + 2>/dev/null || true

bundle=/etc/ssl/certs/ca-certificates.crt
tar --numeric-owner -C "$rootfs" -c . | podman import \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV LANG=C.UTF-8" \
    --change "ENV PIP_CERT=$bundle" \
    --change "ENV SSL_CERT_FILE=$bundle" \
    --change "ENV REQUESTS_CA_BUNDLE=$bundle" \
    --change 'CMD ["python3"]' \
    --quiet - "$image" >/dev/null
podman tag "$image" "$alias_name"

size="$(podman image inspect "$image" --format '{{.Size}}')"
echo "make-base-image: built $image (+ $alias_name), $((size / 1000000)) MB in $((SECONDS - start)) s"
