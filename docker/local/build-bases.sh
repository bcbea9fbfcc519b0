#!/usr/bin/env bash
# Builds the base images compose.yaml needs from Debian packages alone, for a machine that
# reaches no container registry: Debian bookworm (debootstrap), Python 3.11, Prometheus and
# HAProxy on it. Cached by a content hash (this folder, the suite, the mirror, the host's CA
# bundle) kept as a label: a second run with nothing changed reuses every image at once.
# Prints the compose substitutions that select them, one VARIABLE=value a line, so that
#   docker/local/build-bases.sh > local.env && docker compose --env-file local.env up --build
# Needs root (debootstrap) and a running Docker engine. Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")"

SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
PREFIX=attnserve-local
LABEL=org.attnserve.local-base-hash
DEBIAN_IMAGE=$PREFIX/debian:$SUITE

hash=$( { cat build-bases.sh ./*.Dockerfile "$CA_BUNDLE"; echo "$SUITE $MIRROR"; } \
    | sha256sum | cut -c1-16)

cached() {
    [ "$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" \
        = "$hash" ]
}

log() { echo "build-bases: $*" >&2; }

if cached "$DEBIAN_IMAGE"; then
    log "$DEBIAN_IMAGE is current ($hash)"
else
    log "debootstrap $SUITE from $MIRROR into $DEBIAN_IMAGE"
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >&2
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import --change "LABEL $LABEL=$hash" \
        --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$DEBIAN_IMAGE" >&2
    rm -rf "$root"
    trap - EXIT
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$CA_BUNDLE" "$context/ca-certificates.crt"
for name in python:3.11 prometheus:debian haproxy:debian; do
    image=$PREFIX/$name
    if cached "$image"; then
        log "$image is current ($hash)"
        continue
    fi
    log "building $image"
    docker build --quiet --label "$LABEL=$hash" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
        -f "${name%%:*}.Dockerfile" -t "$image" "$context" >&2
done

echo "PYTHON_IMAGE=$PREFIX/python:3.11"
echo "PROMETHEUS_IMAGE=$PREFIX/prometheus:debian"
echo "BALANCER_IMAGE=$PREFIX/haproxy:debian"
