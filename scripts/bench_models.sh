#!/usr/bin/env bash
# Inference timing of the pixel models. Chest: displacement at the model size
# (the committed model and the paper's 256², width 32) and the field
# upsample + warp at a native radiograph size, in ms per image. On the CPU
# also: the shared NHWC convolution path against candle's own convolutions in
# the same process (chest U-Net and text detector), and the text detector per
# 640×480 frame. Photo detection + replacement: scripts/eval_photo_detect.sh
# --timing.
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
if [ "$DEVICE" = cpu ]; then
  cargo test --release --test conv_path -- --ignored timing --nocapture 2>&1 | grep -E ' ms'
  cargo test --release --test text_detect -- --ignored frame_time --nocapture 2>&1 | grep -E ' ms'
fi
