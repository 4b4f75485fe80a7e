#!/usr/bin/env bash
# A profile-guided (PGO) release build of director, trained on bench/run.sh's director legs.
# Opt-in: `cargo build --release` (the README, the Dockerfile) does not use it. Steps:
#   1. an instrumented release build (-Cprofile-generate) in $PGO_DIR/gen;
#   2. one short round of run.sh's director legs (proxied HTTP, two buckets, FastCGI,
#      X-Sendfile, cache hits and misses, two workers) on it, which writes the profile;
#   3. llvm-profdata merges it (rustup's llvm-tools component, added if missing);
#   4. the release build again with -Cprofile-use, in $PGO_DIR/use.
# Step 2 needs what run.sh's legs need (nginx, php-fpm, wrk). About 10 minutes on 2 cores.
#
# Run from the repo root:   bash bench/pgo.sh
# Options (env vars):       PGO_DIR=target/pgo TRAIN_LEGS="director director-2b ..."
# Then compare it with the plain build in one run (bench/README.md, "Profile-guided build"):
#   DIRECTOR_BIN=target/pgo/use/release/director BASE_BIN=target/release/director \
#     ONLY="director director-base haproxy nginx" ROUNDS=5 bash bench/run.sh
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$BENCH_DIR/.." && pwd)"
PGO_DIR=${PGO_DIR:-$REPO_ROOT/target/pgo}
TRAIN_LEGS=${TRAIN_LEGS:-"director director-2b director-fcgi director-sendfile director-cache director-misscache director-w2"}

log() { printf '[pgo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

llvm_profdata() {
    local bin
    bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata"
    if [[ ! -x "$bin" ]]; then
        log "adding rustup's llvm-tools component (for llvm-profdata)"
        rustup component add llvm-tools >&2 || die "cannot add llvm-tools; llvm-profdata is needed"
    fi
    [[ -x "$bin" ]] || die "llvm-profdata not found at $bin"
    printf '%s\n' "$bin"
}

cd "$REPO_ROOT"
profdata=$(llvm_profdata)
rm -rf "$PGO_DIR/raw" && mkdir -p "$PGO_DIR/raw"

log "1/4 instrumented build in $PGO_DIR/gen"
RUSTFLAGS="-Cprofile-generate=$PGO_DIR/raw" CARGO_TARGET_DIR="$PGO_DIR/gen" \
    cargo build --release --locked --bin director

log "2/4 training: run.sh legs $TRAIN_LEGS"
DIRECTOR_BIN="$PGO_DIR/gen/release/director" ONLY="$TRAIN_LEGS" ROUNDS=1 DURATION=4 WARMUP=1 \
    RESULTS_DIR="$PGO_DIR/training" bash "$BENCH_DIR/run.sh"
compgen -G "$PGO_DIR/raw/*.profraw" >/dev/null || die "the training wrote no profile to $PGO_DIR/raw"

log "3/4 merging the profile"
"$profdata" merge -o "$PGO_DIR/director.profdata" "$PGO_DIR"/raw/*.profraw

log "4/4 optimised build in $PGO_DIR/use"
RUSTFLAGS="-Cprofile-use=$PGO_DIR/director.profdata" CARGO_TARGET_DIR="$PGO_DIR/use" \
    cargo build --release --locked --bin director
log "done: $PGO_DIR/use/release/director"
