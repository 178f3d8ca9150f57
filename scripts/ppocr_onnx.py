#!/usr/bin/env python3
"""Convert PaddleOCR's PP-OCRv4 ONNX exports (from the rapidocr-onnxruntime
wheel) to safetensors for the Candle networks in src/models/text/.

    python3 scripts/ppocr_onnx.py det DET.onnx OUT.safetensors
    python3 scripts/ppocr_onnx.py rec REC.onnx OUT.safetensors KEYS.txt

Pure Python (a protobuf wire-format reader + struct; no onnx, no numpy), so
the fetch script runs on a fresh machine. While converting it walks the
graph and refuses any structure other than the one the Rust code implements
(det.rs: PPLCNetV3 + RSE-FPN + DB head; rec.rs: PPLCNetV3 + SVTR neck + CTC
head), and writes the weights under structured names. Scalar "learnable
affine" multipliers are stored as [scale, bias] pairs (`lab`, `act_lab`);
BatchNorm stays separate and is folded at load time. MatMul weights keep
ONNX's [in, out] layout.
"""
import array
import json
import struct
import sys


# ---- protobuf wire format (only what onnx.proto needs here) ----


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


class Graph:
    """Nodes (Constants folded into `consts`), consumers and producers."""

    def __init__(self, path):
        data = open(path, "rb").read()
        self.metadata = {}
        graph = None
        for num, _wt, val in fields(data):
            if num == 7:
                graph = val
            elif num == 14:
                kv = {n: bytes(v).decode() for n, _w, v in fields(val)}
                self.metadata[kv.get(1, "")] = kv.get(2, "")
        nodes, self.consts = [], {}
        for num, _wt, val in fields(graph):
            if num == 1:
                nodes.append(Node(val))
            elif num == 5:
                name, dims, vals = tensor(val)
                self.consts[name] = (dims, vals)
        for n in nodes:
            if n.op == "Constant":
                _name, dims, vals = n.attrs["value"]["t"]
                self.consts[n.outputs[0]] = (dims, vals)
        self.nodes = [n for n in nodes if n.op != "Constant"]
        self.consumers, self.producer = {}, {}
        for n in self.nodes:
            for i in n.inputs:
                self.consumers.setdefault(i, []).append(n)
            for o in n.outputs:
                self.producer[o] = n


G = None
out = {}


def fail(msg):
    raise SystemExit(f"unexpected graph: {msg}")


def only(x, op=None):
    cs = G.consumers.get(x, [])
    if op is not None:
        cs = [c for c in cs if c.op == op]
    if len(cs) != 1:
        fail(f"{x} has {len(cs)} consumers of type {op}")
    return cs[0]


def scalar(name):
    dims, vals = G.consts[name]
    if len(vals) != 1:
        fail(f"{name} is not a scalar")
    return vals[0]


def const_input(node):
    cs = [i for i in node.inputs if i in G.consts]
    other = [i for i in node.inputs if i not in G.consts]
    if len(cs) != 1 or len(other) != 1:
        fail(f"{node.op} -> {node.outputs} is not tensor-op-const")
    return cs[0], other[0]


def put(name, key):
    dims, vals = G.consts[key]
    out[name] = (list(dims), array.array("f", vals))


def put_vals(name, dims, vals):
    out[name] = (list(dims), array.array("f", vals))


def conv(node, name, bias=True, group=None, stride=(1, 1), pads=None):
    """A Conv node's weights; pads default to k//2 on every side."""
    if node.op != "Conv":
        fail(f"{node.op} where {name} (Conv) expected")
    k = node.attrs["kernel_shape"]["ints"]
    if node.attrs["strides"]["ints"] != list(stride):
        fail(f"{name}: strides {node.attrs['strides']['ints']}")
    want = list(pads) if pads is not None else [k[0] // 2] * 4
    if node.attrs["pads"]["ints"] != want:
        fail(f"{name}: pads {node.attrs['pads']['ints']}")
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
    adds = [c for c in G.consumers.get(x, []) if c.op == "Add"]
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


def backbone():
    """PPLCNetV3 (reparameterised) from the input `x`: the stem and every
    depthwise -> pointwise block. Returns (output, strides, taps) where
    strides are "h" or "hxw" per block and taps the (block, side conv)
    pairs that read a block's output (the detector's feature pyramid)."""
    stem = only("x", "Conv")
    x = bn(only(conv(stem, "backbone.conv1", bias=False, stride=(2, 2)), "BatchNormalization"), "backbone.conv1.bn")
    strides, taps, b = [], [], 0
    while True:
        dw = [c for c in G.consumers[x] if c.op == "Conv" and c.attrs["group"]["i"] > 1]
        side = [c for c in G.consumers[x] if c.op == "Conv" and c.attrs["group"]["i"] == 1]
        if side:
            taps.append((b - 1, side[0]))
        if not dw:
            return x, strides, taps
        dw = dw[0]
        sh, sw = dw.attrs["strides"]["ints"]
        strides.append(str(sh) if sh == sw else f"{sh}x{sw}")
        p = f"backbone.blocks.{b}"
        x = lab(conv(dw, f"{p}.dw", group=dw.attrs["group"]["i"], stride=(sh, sw)), f"{p}.dw.lab")
        y = hardswish_lab(x, f"{p}.dw.act_lab")
        # Paddle's block has its activation unless `stride == 2`, and a
        # recogniser's (2, 1) stride is not 2.
        if (y is None) != ((sh, sw) == (2, 2)):
            fail(f"{p}: activation expected exactly when the stride is not 2x2")
        x = y if y is not None else x
        if any(c.op == "GlobalAveragePool" for c in G.consumers[x]):
            x = se(x, f"{p}.se", 1.0 / 6.0)
        x = lab(conv(only(x, "Conv"), f"{p}.pw", group=1), f"{p}.pw.lab")
        x = hardswish_lab(x, f"{p}.pw.act_lab")
        if x is None:
            fail(f"{p}: pointwise activation missing")
        b += 1


def det():
    """PP-OCRv4 DBNet: backbone taps -> RSE-FPN -> DB binarisation head."""
    _x, strides, taps = backbone()
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
        add = [a for a in G.consumers[m] if a.op == "Add"]
        if len(add) != 1 or y not in add[0].inputs:
            fail(f"{name}: shortcut")
        return add[0].outputs[0]


    ins = [rse(ll[j], f"neck.ins_conv.{j}", 1) for j in range(4)]


    def resize_of(x, scale):
        r = [c for c in G.consumers[x] if c.op == "Resize"]
        if len(r) != 1 or list(G.consts[r[0].inputs[2]][1]) != [1.0, 1.0, scale, scale]:
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
        dims, vals = G.consts[bias_name]
        put_vals(f"head.conv{i}.bias", [len(vals)], vals)
        x = add.outputs[0]
        if bnname:
            x = only(bn(only(x, "BatchNormalization"), bnname), "Relu").outputs[0]
    only(x, "Sigmoid")

    return {
        "strides": ",".join(strides),
        "taps": ",".join(str(blk) for blk, _ in taps),
    }


def swish(x, name):
    """x * sigmoid(beta * x) with beta 1 (Paddle's swish)."""
    m = [c for c in G.consumers[x] if c.op == "Mul" and any(i in G.consts for i in c.inputs)]
    if len(m) != 1 or scalar(const_input(m[0])[0]) != 1.0:
        fail(f"{name}: swish expected")
    sig = only(m[0].outputs[0], "Sigmoid")
    mul = only(sig.outputs[0], "Mul")
    if x not in mul.inputs:
        fail(f"{name}: swish does not gate its input")
    return mul.outputs[0]


def conv_bn_swish(x, name, k):
    """ConvBNLayer of the SVTR neck: conv (1×k, no bias) -> BN -> swish."""
    c = only(x, "Conv")
    if c.attrs["kernel_shape"]["ints"] != [1, k]:
        fail(f"{name}: 1x{k} kernel expected")
    y = conv(c, name, bias=False, group=1, pads=[0, k // 2, 0, k // 2])
    y = bn(only(y, "BatchNormalization"), f"{name}.bn")
    return swish(y, name)


def layer_norm(x, name):
    """ReduceMean/Sub/Pow/ReduceMean/Add eps/Sqrt/Div/Mul w/Add b."""
    mean = [c for c in G.consumers[x] if c.op == "ReduceMean"]
    if len(mean) != 1 or mean[0].attrs["axes"]["ints"] != [-1]:
        fail(f"{name}: layer norm mean")
    sub = only(mean[0].outputs[0], "Sub")
    if sub.inputs != [x, mean[0].outputs[0]]:
        fail(f"{name}: layer norm centring")
    pw = only(sub.outputs[0], "Pow")
    if scalar(pw.inputs[1]) != 2.0:
        fail(f"{name}: layer norm square")
    var = only(pw.outputs[0], "ReduceMean")
    add = only(var.outputs[0], "Add")
    eps_name, _ = const_input(add)
    eps = scalar(eps_name)
    sq = only(add.outputs[0], "Sqrt")
    div = only(sq.outputs[0], "Div")
    if div.inputs != [sub.outputs[0], sq.outputs[0]]:
        fail(f"{name}: layer norm division")
    mul = only(div.outputs[0], "Mul")
    w, _ = const_input(mul)
    a = only(mul.outputs[0], "Add")
    b, _ = const_input(a)
    put(f"{name}.weight", w)
    put(f"{name}.bias", b)
    put_vals(f"{name}.eps", [1], [eps])
    return a.outputs[0], eps


def linear_from(x, name):
    """MatMul(x, W [in, out]) then Add(., b)."""
    mm = [c for c in G.consumers[x] if c.op == "MatMul" and c.inputs[1] in G.consts]
    if len(mm) != 1 or mm[0].inputs[0] != x:
        fail(f"{name}: linear layer expected")
    put(f"{name}.weight", mm[0].inputs[1])
    add = only(mm[0].outputs[0], "Add")
    b, _ = const_input(add)
    put(f"{name}.bias", b)
    return add.outputs[0]


def linear_into(y, name):
    """The linear layer whose Add produces `y` (found backwards)."""
    add = G.producer[y]
    b, z = const_input(add)
    mm = G.producer[z]
    if add.op != "Add" or mm.op != "MatMul" or mm.inputs[1] not in G.consts:
        fail(f"{name}: linear layer expected")
    put(f"{name}.weight", mm.inputs[1])
    put(f"{name}.bias", b)
    return mm.inputs[0]


def residual_add(x, name):
    """The one Add that has `x` as an input beside a computed branch."""
    adds = [c for c in G.consumers[x] if c.op == "Add" and not any(i in G.consts for i in c.inputs)]
    if len(adds) != 1:
        fail(f"{name}: residual add")
    branch = [i for i in adds[0].inputs if i != x]
    if len(branch) != 1:
        fail(f"{name}: residual branch")
    return adds[0].outputs[0], branch[0]


def svtr_block(x, name):
    """Pre-LN transformer block: x + attn(LN(x)); then x + MLP(LN(x))."""
    h, eps1 = layer_norm(x, f"{name}.norm1")
    qkv = linear_from(h, f"{name}.qkv")
    scale = None
    for n in G.nodes:
        # q is scaled by a constant before q·kᵀ; find it among qkv's descendants.
        if n.op == "Mul" and any(i in G.consts for i in n.inputs) and "slice_0" in "".join(n.inputs):
            if reaches(qkv, n):
                scale = scalar(const_input(n)[0])
                break
    if scale is None:
        fail(f"{name}: attention scale")
    x2, proj_out = residual_add(x, f"{name}.attn")
    linear_into(proj_out, f"{name}.proj")
    h2, eps2 = layer_norm(x2, f"{name}.norm2")
    f1 = linear_from(h2, f"{name}.fc1")
    f1 = swish(f1, f"{name}.mlp")
    x3, mlp_out = residual_add(x2, f"{name}.mlp")
    if linear_into(mlp_out, f"{name}.fc2") != f1:
        fail(f"{name}: mlp order")
    return x3, scale, (eps1, eps2)


def reaches(src, node, limit=12):
    """Whether `node` is at most `limit` steps downstream of tensor `src`."""
    frontier = {src}
    for _ in range(limit):
        nxt = set()
        for t in frontier:
            for c in G.consumers.get(t, []):
                if c is node:
                    return True
                nxt.update(c.outputs)
        frontier = nxt
    return False


def rec():
    """PP-OCRv4 recogniser: backbone -> 3x2 average pool -> SVTR neck ->
    linear -> softmax (CTC)."""
    x, strides, taps = backbone()
    if taps:
        fail("the recogniser's backbone has feature taps")
    pool = only(x, "AveragePool")
    if pool.attrs["kernel_shape"]["ints"] != [3, 2] or pool.attrs["strides"]["ints"] != [3, 2]:
        fail("3x2 average pool expected")
    pooled = pool.outputs[0]
    z = conv_bn_swish(pooled, "neck.conv1", 3)
    z = conv_bn_swish(z, "neck.conv2", 1)
    t = only(only(z, "Reshape").outputs[0], "Transpose")
    if t.attrs["perm"]["ints"] != [0, 2, 1]:
        fail("tokens transpose")
    x = t.outputs[0]
    blocks, scales, eps = 0, set(), set()
    while True:
        means = [c for c in G.consumers[x] if c.op == "ReduceMean"]
        adds = [c for c in G.consumers[x] if c.op == "Add"]
        if not adds:
            break  # the neck's final layer norm
        x, s, e = svtr_block(x, f"neck.blocks.{blocks}")
        scales.add(round(s, 6))
        eps.update(e)
        blocks += 1
    x, e = layer_norm(x, "neck.norm")
    eps.add(e)
    t = only(only(x, "Reshape").outputs[0], "Transpose")
    if t.attrs["perm"]["ints"] != [0, 3, 1, 2]:
        fail("tokens back to a map")
    y = conv_bn_swish(t.outputs[0], "neck.conv3", 1)
    cat = only(y, "Concat")
    if cat.inputs != [pooled, y] or cat.attrs["axis"]["i"] != 1:
        fail("shortcut concat")
    y = conv_bn_swish(cat.outputs[0], "neck.conv4", 3)
    y = conv_bn_swish(y, "neck.conv1x1", 1)
    sq = only(y, "Squeeze")
    tr = only(sq.outputs[0], "Transpose")
    logits = linear_from(tr.outputs[0], "head.fc")
    only(logits, "Softmax")
    if len(scales) != 1:
        fail(f"attention scales {scales}")
    head_dim = round(1.0 / scales.pop() ** 2)
    dim = out["neck.blocks.0.norm1.weight"][0][0]
    chars = G.metadata.get("character", "").split("\n")
    classes = out["head.fc.weight"][0][1]
    if len(chars) + 2 != classes:
        fail(f"{len(chars)} characters for {classes} classes (blank + characters + space)")
    return {
        "strides": ",".join(strides),
        "svtr_blocks": str(blocks),
        "heads": str(dim // head_dim),
        "head_dim": str(head_dim),
    }, chars


def write(path, meta):
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
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for name in names:
            vals = out[name][1]
            if sys.byteorder != "little":
                vals.byteswap()
            f.write(vals.tobytes())
    print(f"{path}: {len(names)} tensors, {offset} bytes, {meta}", file=sys.stderr)


def main(argv):
    global G
    mode, onnx_path, out_path = argv[1], argv[2], argv[3]
    G = Graph(onnx_path)
    if mode == "det":
        meta = det()
        meta["source"] = "rapidocr-onnxruntime 1.4.4, ch_PP-OCRv4_det_infer.onnx"
    elif mode == "rec":
        meta, chars = rec()
        meta["source"] = "rapidocr-onnxruntime 1.4.4, ch_PP-OCRv4_rec_infer.onnx"
        # One character per line, in class order (class 0 is CTC's blank,
        # then these, then a space).
        with open(argv[4], "w", encoding="utf-8") as f:
            f.write("\n".join(chars) + "\n")
    else:
        raise SystemExit(f"unknown mode {mode}")
    meta["licence"] = "Apache-2.0"
    write(out_path, meta)


if __name__ == "__main__":
    main(sys.argv)
