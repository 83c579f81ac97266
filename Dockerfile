# syntax=docker/dockerfile:1
# The one `ticketing` binary (every service, migrate, nats apply, …) on a small Debian runtime.
#   docker build -t ticketing:dev .
# scripts/check-deploy checks this file against rust-toolchain.toml and the k8s manifests.

# The toolchain of rust-toolchain.toml. Bookworm, like the runtime stage, so the binary links
# against the glibc it runs with.
ARG RUST_VERSION=1.95.0
FROM rust:${RUST_VERSION}-bookworm AS builder
ARG RUST_VERSION
# Use the image's toolchain as it is: rust-toolchain.toml names the same version, and its extra
# components (rustfmt, clippy) are for development, not for building.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never
WORKDIR /src
COPY . .
# The cache mounts keep the registry and build outputs between builds on the same machine;
# the binary is copied out because a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ticketing \
    && install -D target/release/ticketing /out/ticketing

FROM debian:bookworm-slim AS runtime
# ca-certificates: the system's trusted roots, which the NATS client (a tls:// URL) and
# external-data (an https:// platform) read.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed UID, so Kubernetes can check runAsNonRoot without looking inside the image.
RUN groupadd --system --gid 10001 ticketing \
    && useradd --system --uid 10001 --gid ticketing --no-create-home --shell /usr/sbin/nologin ticketing
COPY --from=builder /out/ticketing /usr/local/bin/ticketing
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["ticketing"]
CMD ["up"]
