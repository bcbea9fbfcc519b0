# HAProxy from Debian's package, standing in for the haproxy image where no registry is
# reachable. compose.yaml mounts the configuration and names the command, as for the public one.
ARG DEBIAN_IMAGE=attnserve-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*
USER haproxy
EXPOSE 8080
CMD ["haproxy", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
