# Prometheus from Debian's package, standing in for prom/prometheus where no registry is
# reachable. Same entry point contract: compose passes the flags, data lives in /prometheus.
ARG DEBIAN_IMAGE=attnserve-local/debian:bookworm
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus \
    && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
