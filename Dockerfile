# director in a container: `docker build -t director .` (see README.md, "Running in Docker").

# ---- build ----------------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first, in a layer that is rebuilt only when Cargo.toml or Cargo.lock change: a
# stand-in crate with the real manifest builds every dependency.
COPY Cargo.toml Cargo.lock ./
# The patched actix-http that [patch.crates-io] names (vendor/README.md).
COPY vendor ./vendor
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/admission.rs \
    && cargo build --release --locked \
    && rm -rf src benches

# The real sources (.dockerignore keeps target/, .git/ and what only the tests use out).
COPY . .
# touch: the stand-in's build outputs must not look newer than the real sources.
RUN touch src/lib.rs src/main.rs \
    && cargo build --release --locked --bin director \
    && cp target/release/director /usr/local/bin/director

# ---- runtime --------------------------------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates is left unpinned on purpose: the version is the one of the current bookworm
# point release, and a pin would break the build as soon as Debian replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 director \
    && useradd --system --no-log-init --uid 10001 --gid director \
        --home-dir /nonexistent --shell /usr/sbin/nologin director \
    && install -d -o director -g director /etc/director

COPY --from=build /usr/local/bin/director /usr/local/bin/director
# The default configuration; mount your own directory over /etc/director.
COPY --chown=director:director config.yaml /etc/director/config.yaml

# The shipped config.yaml reads the admin listener from DIRECTOR_ADMIN_LISTEN. Off loopback,
# director refuses to start without DIRECTOR_ADMIN_TOKEN (at least 16 characters).
ENV DIRECTOR_ADMIN_LISTEN=0.0.0.0:8081 \
    RUST_LOG=info
# A relative state_file (the shipped one: director-state.json) lands in the mounted directory.
WORKDIR /etc/director
USER 10001:10001
EXPOSE 8080 8081

# director's own probe (no curl in the image): GET the HAProxy-style monitor URI with the token
# from DIRECTOR_ADMIN_TOKEN; exit 0 on 2xx.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/director", "--health-check", "http://127.0.0.1:8081/haproxy/monitor"]

# Exec form, no shell: director is PID 1 and gets SIGTERM (graceful stop) and SIGHUP (reload).
ENTRYPOINT ["/usr/local/bin/director"]
CMD ["--config", "/etc/director/config.yaml"]
