#!/usr/bin/env bash
# Run the whole gateway from a checkout: fetch the pixel models' weights that
# are missing, then start `deidgate serve` on the embedded default
# configuration (or on the --config you pass).
#
#   bash scripts/run.sh                          # embedded default
#   bash scripts/run.sh --config site.toml       # your configuration
#   bash scripts/run.sh --data-dir /srv/deidgate
#
# Arguments go to `deidgate serve`. The working directory is kept, so the
# embedded default's data_dir (./deidgate-data) and a relative --config are
# where you started it; the model folders are found wherever you start it
# (see `deidgate check`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Idempotent: does nothing (no network) when the weights are present and
# match the checksums recorded next to them.
bash "$ROOT/scripts/fetch-weights.sh"
# cmake and a C++ compiler for the codecs (installed when missing).
bash "$ROOT/scripts/build-deps.sh"

exec cargo run --release --manifest-path "$ROOT/Cargo.toml" -- serve "$@"
