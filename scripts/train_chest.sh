#!/usr/bin/env bash
# Train and evaluate the PriCheXy-Net chest deformation model: the whole
# protocol (split by patient, re-id attacker, classifier, identity
# pre-training, adversarial training for each μ, re-trained attacker on
# anonymized pairs, random elastic baseline) in one command.
#
# Environment (defaults are the paper's setting; the committed CPU weights
# used SIZE=64 WIDTH=8 SNN_WIDTH=8 CLS_GROWTH=6 CLS_LAYERS=2 BATCH=32 LR=1e-3
# EPOCHS_REID=2 EPOCHS_CLS=2 EPOCHS_IDENTITY=1 EPOCHS_GEN=1 MAX_IMAGES=500 MAX_STEPS=6):
#   SIZE=256 WIDTH=32 DEVICE=cpu|cuda|auto MUS=0.001,0.005,0.01 DEFAULT_MU=0.01
#   EPOCHS_REID EPOCHS_CLS EPOCHS_IDENTITY EPOCHS_GEN BATCH LR SEED
#   SNN_WIDTH CLS_GROWTH CLS_LAYERS MAX_IMAGES MAX_STEPS OUT=models/chest
#   DATA="../shared/data/chest/nih_cxr14_64px ../shared/data/chest/hannover_covid"
#   (add a full ChestX-ray14 folder with Data_Entry_2017*.csv to train at scale)
# Note: the NIH subset is 64 px; at SIZE>64 it is upsampled (no new detail).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-256}
WIDTH=${WIDTH:-32}
DEVICE=${DEVICE:-cpu}
MUS=${MUS:-0.001,0.005,0.01}
DEFAULT_MU=${DEFAULT_MU:-0.01}
EPOCHS_REID=${EPOCHS_REID:-10}
EPOCHS_CLS=${EPOCHS_CLS:-10}
EPOCHS_IDENTITY=${EPOCHS_IDENTITY:-2}
EPOCHS_GEN=${EPOCHS_GEN:-10}
BATCH=${BATCH:-32}
LR=${LR:-1e-4}
SEED=${SEED:-42}
SNN_WIDTH=${SNN_WIDTH:-64}
CLS_GROWTH=${CLS_GROWTH:-32}
CLS_LAYERS=${CLS_LAYERS:-6}
OUT=${OUT:-models/chest}
DATA=${DATA:-"../shared/data/chest/nih_cxr14_64px ../shared/data/chest/hannover_covid"}

features=()
if [ "$DEVICE" != cpu ]; then features=(--features cuda); fi
cargo build --release "${features[@]}"

data_args=()
for d in $DATA; do data_args+=(--data "$d"); done
extra=()
if [ -n "${MAX_IMAGES:-}" ]; then extra+=(--max-images "$MAX_IMAGES"); fi
gen_extra=()
if [ -n "${MAX_STEPS:-}" ]; then gen_extra+=(--max-steps "$MAX_STEPS"); fi
common=(--device "$DEVICE" --seed "$SEED" --batch "$BATCH" --lr "$LR"
  --epochs-reid "$EPOCHS_REID" --epochs-cls "$EPOCHS_CLS"
  --snn-width "$SNN_WIDTH" --cls-growth "$CLS_GROWTH" --cls-layers "$CLS_LAYERS")

mkdir -p "$OUT"
./target/release/deidgate train chest "${data_args[@]}" "${extra[@]}" "${common[@]}" \
  --out "$OUT" --size "$SIZE" --width "$WIDTH" --mu "$MUS" --default-mu "$DEFAULT_MU" \
  --epochs-identity "$EPOCHS_IDENTITY" --epochs-gen "$EPOCHS_GEN" "${gen_extra[@]}" \
  2>&1 | tee "$OUT/train.log"

# Re-evaluate the written default model from disk (fresh attacker, elastic
# baseline at its μ): checks that the saved weights reproduce the result.
./target/release/deidgate eval chest --model "$OUT" --out "$OUT/eval" \
  "${data_args[@]}" "${extra[@]}" "${common[@]}"
echo "results: $OUT/results.md and $OUT/eval/results.md"
