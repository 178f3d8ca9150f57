#!/usr/bin/env bash
# Inference timing of the pixel models. Chest: displacement at the model size
# (the default model, distilled-64, and the paper's 256², width 32) and the field
# upsample + warp at a native radiograph size, in ms per image. On the CPU
# also: the shared NHWC convolution path against candle's own convolutions in
# the same process (chest U-Net and text detector), and the text detector per
# 640×480 frame; the photo route's detection + replacement per 1024×768
# photo (the 64 deepface photos, examples/eval_photo_detect.rs --timing); and
# the head MR route from "series complete" to the last slice forwarded, for
# the 35-slice volunteer series with the template remodeler
# (scripts/bench_mri.sh, MRI_RUNS times); and the whole `deidgate anonymize`
# of CR_N copies of the 1955×1841 chest CR RG1_UNCR.dcm (new UIDs by
# dcmodify), with the text route after the chest route (the default) and
# without it, each with the allocator keeping freed memory (the default) and
# with glibc's defaults (DEIDGATE_KEEP_FREED_MEMORY=0). The load average is printed before
# and after: other jobs on a shared machine slow every row.
# Goals: < 50 ms/image on CPU for the 256² field, < 5 ms/image on an H100;
# photo median < 100 ms; MRI series < 1 s.
# Goal for the CR: < 150 ms per image, whole anonymize.
#   DEVICE=cpu|cuda  NATIVE=2048x2500  REPS=20  MODEL=models/chest/distilled-64  MRI_RUNS=3  CR_N=10
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cpu}
NATIVE=${NATIVE:-2048x2500}
REPS=${REPS:-20}
MODEL=${MODEL:-models/chest/distilled-64}
MRI_RUNS=${MRI_RUNS:-3}
CR_N=${CR_N:-10}
features=()
if [ "$DEVICE" != cpu ]; then features=(--features cuda); fi
cargo build --release "${features[@]}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
./target/release/deidgate eval chest --bench --model "$MODEL" --native "$NATIVE" --reps "$REPS" --device "$DEVICE"
if [ "$DEVICE" = cpu ]; then
  cargo test --release --test conv_path -- --ignored timing --nocapture 2>&1 | grep -E ' ms'
  cargo test --release --test text_detect -- --ignored frame_time --nocapture 2>&1 | grep -E ' ms'
fi
if [ "$DEVICE" = cpu ]; then
  cargo run --release --quiet --example eval_photo_detect -- --timing
  for _ in $(seq 1 "$MRI_RUNS"); do
    MODEL=remodeler bash scripts/bench_mri.sh | grep -E 'series complete'
  done
fi
if [ "$DEVICE" = cpu ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/in"
  for i in $(seq 1 "$CR_N"); do
    cp ../shared/data/dicom/cr_dx/RG1_UNCR.dcm "$tmp/in/$i.dcm"
    dcmodify -nb -gin "$tmp/in/$i.dcm"
  done
  printf '[text]\nenabled = false\n' > "$tmp/text-off.toml"
  for text in on off; do
    for keep in 1 0; do
      cfg=()
      if [ "$text" = off ]; then cfg=(--config "$tmp/text-off.toml"); fi
      rm -rf "$tmp/out" "$tmp/data"
      DEIDGATE_KEEP_FREED_MEMORY=$keep /usr/bin/time -f '%e %U %S' -o "$tmp/time" \
        ./target/release/deidgate anonymize "${cfg[@]}" --data-dir "$tmp/data" "$tmp/in" "$tmp/out" >/dev/null 2>&1
      read -r wall user sys < "$tmp/time"
      awk -v n="$CR_N" -v w="$wall" -v u="$user" -v s="$sys" -v t="$text" -v k="$keep" 'BEGIN {
        printf "anonymize %d chest CRs, text route %s, keep freed memory %s: %.0f ms/CR wall, CPU %.0f ms user + %.0f ms system per CR\n",
          n, t, k, 1000 * w / n, 1000 * u / n, 1000 * s / n }'
    done
  done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
