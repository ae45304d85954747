# Phoenix daemon image: `docker build -t phoenix .` from the repository root.
#
# Two stages: the release binary is built on rust:1-slim-bookworm from the locked
# dependencies, then copied with the shipped configs and policies onto
# debian:bookworm-slim (same glibc as the builder). It runs as the unprivileged user
# `phoenix` (uid/gid 10001, the uid the OpenTelemetry Collector's images use, so a sidecar
# may signal its collector; see configs/kubernetes/).
#
#   docker run --rm -v /etc/phoenix:/etc/phoenix:ro -v phoenix-state:/var/lib/phoenix \
#     -p 9464:9464 phoenix
#
# The config must set `http.listen: 0.0.0.0:9464` (or PHOENIX__HTTP__LISTEN) for /metrics
# to be reachable from outside the container: the default is loopback.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# TLS is rustls (no OpenSSL); its crypto crates (aws-lc-sys, ring) build with the C
# compiler the image carries, without CMake, so the slim image needs no extra packages.
COPY . .
RUN cargo build --release --locked --bin phoenix \
 && strip target/release/phoenix

FROM debian:bookworm-slim
# ca-certificates: the TLS client (reqwest with rustls-platform-verifier) checks an https
# Prometheus / Mimir URL against the system's root certificates.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 phoenix \
 && useradd --system --uid 10001 --gid phoenix --home-dir /var/lib/phoenix \
      --shell /usr/sbin/nologin phoenix \
 && install -d -o phoenix -g phoenix -m 0750 /var/lib/phoenix
COPY --from=build /src/target/release/phoenix /usr/local/bin/phoenix
# The shipped policies and example configs (collector base configs, rules, dashboards),
# for reference and as defaults a ConfigMap may point at.
COPY policies/ /usr/share/phoenix/policies/
COPY configs/ /usr/share/phoenix/configs/
USER 10001:10001
WORKDIR /var/lib/phoenix
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/phoenix"]
CMD ["run", "--config", "/etc/phoenix/phoenix.yaml"]
