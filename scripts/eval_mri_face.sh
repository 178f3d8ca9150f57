#!/usr/bin/env bash
# Face-surface evaluation of the MRI face remodeling (issue 6).
# Usage: scripts/eval_mri_face.sh [OUT_DIR] [HEAD.nii[.gz] ...]
# Prints one TSV row per head and mode (CPU seconds, face voxels, changed
# voxels inside the brain mask, face rays, mean |depth difference| mm) and
# writes OUT_DIR/<head>.png (depth maps over mid-sagittal slices; columns
# input | reface | deface). Defaults: /tmp/mri_face_eval and the shared heads.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/mri_face_eval}"
shift || true
cargo build --release --example mri_face_eval
./target/release/examples/mri_face_eval "$out" "$@" | tee "$out.tsv"
