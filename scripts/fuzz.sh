#!/usr/bin/env bash
# Fuzz the receive path for a while (not part of CI):
#   FUZZ_SECS=300 FUZZ_SEED=42 bash scripts/fuzz.sh
# Runs the two ignored tests in tests/fuzz.rs: mutated files through the
# de-identification path, and mutated association byte streams against a
# live `deidgate serve`. A failure prints the seed and case number to replay.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export FUZZ_SECS="${FUZZ_SECS:-120}" FUZZ_SEED="${FUZZ_SEED:-$RANDOM}"
echo "fuzzing ${FUZZ_SECS}s per target, seed ${FUZZ_SEED}"
cargo test --release --test fuzz -- --ignored --nocapture --test-threads 1
