# A Python 3.11 base built from Debian packages, for machines that reach no container registry
# (docker/local/build-bases.sh builds it on the debootstrapped Debian image). It plays the part
# of python:3.11-slim-bookworm: `python3`, venv, and the CA bundle pip trusts.
ARG DEBIAN_IMAGE=attnserve-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# the host's bundle: whatever CA the host needs to reach PyPI (a proxy's, say), pip needs too
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PYTHONUNBUFFERED=1
