# tagpilot in a container (sidecar or standalone). Multi-stage: build with the Rust toolchain,
# run from a slim image as a non-root user with only the CA bundle added.
#   docker build -t tagpilot .
#   docker run --rm -v $PWD/config/clusters/my-cluster:/config:ro tagpilot run --once
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tagpilot \
 && install -D -m 0755 target/release/tagpilot /out/tagpilot

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/tagpilot && chown 65532:65532 /var/lib/tagpilot
COPY --from=build /out/tagpilot /usr/local/bin/tagpilot
USER 65532:65532
# MALLOC_ARENA_MAX: two glibc heaps, not one per thread: less RSS for the same work (see the
# systemd unit).
ENV TAGPILOT_CONFIG_DIR=/config \
    TAGPILOT_STATE_DIR=/var/lib/tagpilot \
    TAGPILOT_SECRETS_DIR=/secrets \
    TAGPILOT_API_ADDRESS=0.0.0.0:9480 \
    TAGPILOT_WEBHOOK_ADDRESS=0.0.0.0:9292 \
    RUST_LOG=info \
    MALLOC_ARENA_MAX=2
VOLUME ["/var/lib/tagpilot"]
EXPOSE 9480 9292
ENTRYPOINT ["/usr/local/bin/tagpilot"]
CMD ["run"]
