#!/usr/bin/env bash
# Install deidgate under PREFIX in the layout the binary searches for its
# models when the configuration uses the embedded default's model folders:
#
#   PREFIX/bin/deidgate
#   PREFIX/share/deidgate/models/{chest,mri,photo,text}   weights + model cards
#   PREFIX/share/deidgate/gateway.toml                    the embedded default, to copy and edit
#   PREFIX/share/deidgate/deidgate.service                systemd unit example for this PREFIX
#
#   bash scripts/install.sh PREFIX                 cargo install --path . --root PREFIX, then the layout
#   bash scripts/install.sh --bin FILE PREFIX      copy an already built binary instead of building
#   bash scripts/install.sh --layout-only PREFIX   only PREFIX/share/deidgate
#
# Missing weights are fetched first (scripts/fetch-weights.sh, idempotent).
# Training logs and scratch files under models/ are not installed.
# Check the result with: PREFIX/bin/deidgate check
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '==> %s\n' "$*" >&2; }
usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

MODE=cargo
BIN=""
PREFIX=""
while [ $# -gt 0 ]; do
    case "$1" in
        --layout-only) MODE=layout; shift ;;
        --bin) [ $# -ge 2 ] || usage; MODE=copy; BIN="$2"; shift 2 ;;
        -h|--help) usage ;;
        -*) log "unknown option $1"; usage ;;
        *) [ -z "$PREFIX" ] || usage; PREFIX="$1"; shift ;;
    esac
done
[ -n "$PREFIX" ] || usage
mkdir -p "$PREFIX"
PREFIX="$(cd "$PREFIX" && pwd)"

# ---------------------------------------------------------------- weights
missing=0
for f in models/chest/generator.safetensors models/mri/template_2mm.nii.gz \
         models/photo/mtcnn.safetensors models/text/ppocr_det.safetensors; do
    [ -f "$ROOT/$f" ] || { log "$f is missing"; missing=1; }
done
if [ "$missing" = 1 ]; then
    bash "$ROOT/scripts/fetch-weights.sh"
fi

# ---------------------------------------------------------------- binary
case "$MODE" in
    cargo)
        bash "$ROOT/scripts/build-deps.sh"
        log "cargo install --path $ROOT --root $PREFIX"
        cargo install --locked --path "$ROOT" --root "$PREFIX"
        ;;
    copy)
        [ -x "$BIN" ] || { log "$BIN is not an executable"; exit 1; }
        log "copying $BIN to $PREFIX/bin/deidgate"
        install -D -m 0755 "$BIN" "$PREFIX/bin/deidgate"
        ;;
    layout) ;;
esac

# ---------------------------------------------------------------- layout
SHARE="$PREFIX/share/deidgate"
mkdir -p "$SHARE"
NEW="$(mktemp -d "$SHARE/.models.XXXXXX")"
trap 'rm -rf "$NEW"' EXIT
log "laying out $SHARE/models"
tar -C "$ROOT/models" \
    --exclude='*.log' --exclude='*.tmp' --exclude='*.py' --exclude='*.pyc' \
    --exclude='__pycache__' \
    -cf - . | tar -C "$NEW" -xf -
chmod -R u=rwX,go=rX "$NEW"
rm -rf "$SHARE/models"
mv "$NEW" "$SHARE/models"
trap - EXIT

install -m 0644 "$ROOT/config/gateway.toml" "$SHARE/gateway.toml"
sed "s#/usr/local/#$PREFIX/#g" \
    "$ROOT/scripts/deidgate.service" > "$SHARE/deidgate.service"
chmod 0644 "$SHARE/deidgate.service"

log "installed under $PREFIX; check it with: $PREFIX/bin/deidgate check"
