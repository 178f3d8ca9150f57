#!/usr/bin/env bash
# Identity leakage of the photo route's face replacement, measured with a face
# matcher nobody here trained: dlib's ResNet face embeddings (99.38 % on LFW),
# from the registry packages dlib-bin and face-recognition-models, in a venv.
#
#   bash scripts/eval_photo.sh [WORK_DIR]
#
# WORK_DIR (default: a temp dir, removed afterwards) receives the de-identified
# deepface photos; it must lie outside the repository, since those photos are
# for internal evaluation only. Prints, per method (ours, ours with the
# periocular region kept, ours with the perioral region kept, Gaussian blur
# sigma 8, 8-pixel pixelation, all on the same area):
#   matched  share of faces whose embedding lies within 0.6 of the original's
#            (dlib's threshold), the attacker reusing the original alignment;
#   rank-1   identification against the originals of the other photos of the
#            13 identities, with the chance level for comparison.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

VENV="${DEIDGATE_EVAL_VENV:-$HOME/.cache/deidgate/eval-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import dlib, face_recognition_models' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet dlib-bin face-recognition-models numpy pillow
fi

WORK="${1:-}"
if [ -z "$WORK" ]; then
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi

bash scripts/fetch-weights.sh
cargo run --release --example photo_deid_dump -- "$WORK"

"$VENV/bin/python" - "$WORK" <<'PYEOF'
import os
import sys

import dlib
import face_recognition_models as frm
import numpy as np
from PIL import Image

work = sys.argv[1]
sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
rec = dlib.face_recognition_model_v1(frm.face_recognition_model_location())

rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(work, "faces.tsv"))][1:]


def load(method, name):
    return np.ascontiguousarray(np.asarray(Image.open(os.path.join(work, method, name)).convert("RGB")))


names, ids, shapes, orig = [], [], [], []
for name, ident, x1, y1, x2, y2 in rows:
    img = load("orig", name)
    # Align on the MTCNN box of the labelled face; the same landmarks are then
    # reused on the de-identified image (worst case for the defender).
    rect = dlib.rectangle(int(float(x1)), int(float(y1)), int(float(x2)), int(float(y2)))
    shape = sp(img, rect)
    names.append(name)
    ids.append(ident)
    shapes.append(shape)
    orig.append(np.array(rec.compute_face_descriptor(img, shape)))
orig = np.stack(orig)
ids = np.array(ids)
n = len(names)


def rank1(queries):
    hits, chance = 0, 0.0
    for i in range(n):
        others = [j for j in range(n) if j != i]
        d = np.linalg.norm(orig[others] - queries[i], axis=1)
        hits += ids[others][int(np.argmin(d))] == ids[i]
        chance += np.mean(ids[others] == ids[i])
    return hits / n, chance / n


print(f"{n} labelled photos, {len(set(ids))} identities")
r, chance = rank1(orig)
print(f"{'original':10s}  matched  100.0 %  rank-1 {100 * r:5.1f} %  (chance {100 * chance:.1f} %)")
for method in ["ours", "ours_eyes", "ours_mouth", "blur", "pixel", "blur_rel", "pixel_rel"]:
    emb = np.stack([np.array(rec.compute_face_descriptor(load(method, nm), sh)) for nm, sh in zip(names, shapes)])
    dist = np.linalg.norm(emb - orig, axis=1)
    matched = np.mean(dist < 0.6)
    r, _ = rank1(emb)
    print(f"{method:10s}  matched {100 * matched:5.1f} %  rank-1 {100 * r:5.1f} %  "
          f"median distance {np.median(dist):.3f}")
PYEOF
