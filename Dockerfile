# syntax=docker/dockerfile:1
#
# The epro container image: `docker build -t epro .` from the repository
# root. The README's Deployment section shows how to run it.
#
# The build stage compiles the release binary with the Rust toolchain CI
# uses. The runtime stage is Debian slim, because the entry point and the
# health check are bash scripts. Both stages use Debian 12 (bookworm), so
# the binary runs against the same glibc it was linked with.
#
# deploy/test-entrypoint.sh reads the ENTRYPOINT, CMD, USER and COPY lines
# of this file and runs them against the release binary, so keep their
# exec (JSON array) form.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# .dockerignore lets in only the manifests, the lock file, crates/ and the
# two scripts the runtime stage copies.
COPY . .
# The cache mounts keep the crates.io downloads and the compiled
# dependencies between builds; they are not part of any image.
# The release profile keeps line tables (debug = "line-tables-only"); the
# image drops them.
# On rustc 1.95, `strip --strip-debug` takes the binary from 120 MB to
# 28 MB. Panic messages keep their file and line, and backtraces keep
# function names.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release --locked -p epro \
    && install -D -m 0755 target/release/epro /out/epro

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: the broker and webhook sinks verify TLS servers against
# the system's root certificates.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid and gid, so volumes and bind mounts can be given to it ahead
# of time: chown 10001:10001.
RUN groupadd --system --gid 10001 epro \
    && useradd --system --uid 10001 --gid epro --home-dir /var/lib/epro --no-create-home \
        --shell /usr/sbin/nologin epro \
    && install -d -m 0755 /etc/epro /etc/epro/trials \
    && install -d -m 0700 -o epro -g epro /var/lib/epro

COPY --from=build /out/epro /usr/local/bin/epro
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
COPY --chmod=0755 deploy/docker-healthcheck.sh /usr/local/bin/docker-healthcheck.sh

# The configuration is mounted here (deploy/epro.toml is a starting point),
# with the trials it names in /etc/epro/trials. The volume holds the SQLite
# database and the NDJSON outbox; a new named volume takes the directory's
# owner and mode from the image.
VOLUME /var/lib/epro
WORKDIR /var/lib/epro
USER 10001:10001

# http.listen of deploy/epro.toml.
EXPOSE 8080

# epro drains on SIGTERM: 2 s of readiness delay, then up to 30 s for the
# requests in flight, then the relay's batch and the store's queue. The
# default of 10 s of `docker stop` is too short: use `docker stop -t 90`,
# or stop_grace_period in compose (deploy/systemd/epro.service explains
# the 90 s).
STOPSIGNAL SIGTERM

# GET /readyz on port 8080; a configuration with another port needs the
# health check overridden (docker run --health-cmd, compose healthcheck).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/docker-healthcheck.sh"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["serve", "--config", "/etc/epro/epro.toml"]
