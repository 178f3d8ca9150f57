#!/usr/bin/env bash
# Inference timing of the pixel models. Chest: displacement at the model size
# (the committed model and the paper's 256², width 32) and the field
# upsample + warp at a native radiograph size, in ms per image.
# Goals: < 50 ms/image on CPU for the 256² field, < 5 ms/image on an H100.
#   DEVICE=cpu|cuda  NATIVE=2048x2500  REPS=20  MODEL=models/chest
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
NATIVE=${NATIVE:-2048x2500}
REPS=${REPS:-20}
MODEL=${MODEL:-models/chest}
features=()
if [ "$DEVICE" != cpu ]; then features=(--features cuda); fi
cargo build --release "${features[@]}"
./target/release/deidgate eval chest --bench --model "$MODEL" --native "$NATIVE" --reps "$REPS" --device "$DEVICE"
