#!/usr/bin/env bash
# Measure the photo route's face detector: recall on the deepface photos,
# the astronaut and the derived VL photos, and CPU time per 1024x768 photo for
# detection + replacement. Prints numbers only; writes nothing derived from
# the (uncleared) deepface photos.
#
#   bash scripts/eval_photo_detect.sh [--verbose]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/fetch-weights.sh
exec cargo run --release --example eval_photo_detect -- "$@"
