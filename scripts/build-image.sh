#!/usr/bin/env bash
# Build the project image from images/simmate-k8s/Dockerfile with podman.
#
#   scripts/build-image.sh                 -> simmate-k8s:<version from pyproject.toml>
#   IMAGE=registry.example/simmate-k8s:0.1.0 scripts/build-image.sh
#
# Env:
#   IMAGE   full reference to tag (default simmate-k8s:<version>); a `latest` tag is refused.
#   PULL    podman --pull policy for the base image (default missing; CI and the container
#           tests use never, with the base made by scripts/make-base-image.sh).
#   BUILD_ARGS  extra arguments for `podman build` (word-split), e.g. "--no-cache".
# Prints the image reference on the last line of stdout.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/podman-env.sh
source "$repo_root/scripts/podman-env.sh"

version="$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$repo_root/pyproject.toml")"
image="${IMAGE:-simmate-k8s:$version}"
if [[ "$image" != *:* || "$image" == *:latest ]]; then
    echo "build-image: refusing '$image': tag the image with an explicit version, never latest" >&2
    exit 2
fi
revision="$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"

start=$SECONDS
# shellcheck disable=SC2086  # BUILD_ARGS is meant to be word-split
podman build \
    --pull="${PULL:-missing}" \
    --layers \
    --file "$repo_root/images/simmate-k8s/Dockerfile" \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --tag "$image" \
    ${BUILD_ARGS:-} \
    "$repo_root" >&2
size="$(podman image inspect "$image" --format '{{.Size}}')"
echo "build-image: $image built in $((SECONDS - start)) s, $((size / 1000000)) MB" >&2
echo "$image"
