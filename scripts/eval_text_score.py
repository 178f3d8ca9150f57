"""Scorer for scripts/eval_text.sh: one corpus file, its ground truth and one
system's output -> per-line verdicts and per-file false blanking.

A line counts as REMOVED only when both hold, in every frame it is drawn in:
 (a) pixels: the text's pattern is gone. S = share of stroke pixels (alpha >=
     0.5) whose output is within TOL of the input there; U = the same over the
     ring of background pixels around the strokes (alpha < 0.1, within 2 px).
     residual = min(S, U); removed when residual < 0.05. (A fill of any colour,
     even the text's own, changes S or U; half a line covered leaves ~0.5.)
 (b) OCR: Tesseract 5 (`--psm 7`) on the output cropped at the line's box
     (padded), upscaled x3, contrast-stretched over the whole crop and over
     its non-flat pixels (a viewer's windowing), each as is and inverted,
     reads nothing that
     fuzzy-matches the line: similarity (share of the line's alphanumerics
     found in order in the reading) < 0.5, and no token of the line with >= 4
     characters inside the reading. A reading does not count when the line's
     strokes and their ring are all one value in the output (one flat fill):
     nothing of the line is left to read, and the reading comes from the
     crop's padding (0101: the MR's faint ground texture above the fill,
     stretched to full range, read as "EEE EOE"). Such lines are counted.
False blanking: share of pixels whose value changed by more than TOL outside
every ground-truth line box (and label box) grown by 4 px ("changed"), and
the part of those that the output turned into a flat fill that was not flat in
the input ("blanked": box fills, not the chest route's deformation or the
photo route's face synthesis).
"""
import difflib
import io
import json
import os
import re
import subprocess
import tempfile

import numpy as np
import pydicom
from PIL import Image

TOL = 0.10          # of full scale (25 of 255)
RESIDUAL_MAX = 0.05
VISIBLE = 0.15      # input contrast that makes a line count (or Tesseract reads it)
SIM_MAX = 0.5
FB_MARGIN = 4


def decode(path):
    """-> float32 array (F, H, W) or (F, H, W, 3) in [0, 1], display polarity."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    pi = ds.PhotometricInterpretation
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut
        arr = apply_color_lut(arr, ds)
        arr = arr.astype(np.float32) / (65535.0 if arr.max() > 255 else 255.0)
        colour = True
    elif int(ds.SamplesPerPixel) == 3:
        arr = arr.astype(np.float32) / 255.0
        colour = True
    else:
        bits = int(ds.BitsStored)
        a = arr.astype(np.float32)
        if int(ds.get("PixelRepresentation", 0)) == 1:
            a = a - a.min() if a.min() < 0 else a
        arr = a / float((1 << bits) - 1)
        if pi == "MONOCHROME1":
            arr = 1.0 - arr
        colour = False
    if nf == 1:
        arr = arr[None]
    return np.clip(arr, 0, 1), colour


def to_grey(a):
    return a @ np.array([0.299, 0.587, 0.114], np.float32) if a.shape[-1] == 3 and a.ndim >= 3 else a


def align(inp, ic, out, oc):
    if ic != oc:
        if ic:
            inp = to_grey(inp)
        if oc:
            out = to_grey(out)
    return inp, out


def dist(a, b):
    d = np.abs(a - b)
    return d.max(axis=-1) if d.ndim == 3 else d


def flat(a):
    """Pixels whose 3x3 neighbourhood is one value (a fill), per channel."""
    a = a if a.ndim == 3 else a[..., None]
    H, W = a.shape[:2]
    p = np.pad(a, ((1, 1), (1, 1), (0, 0)), mode="edge")
    hi = lo = a
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            v = p[dy:dy + H, dx:dx + W]
            hi, lo = np.maximum(hi, v), np.minimum(lo, v)
    return ((hi - lo) <= 1.5 / 255.0).all(axis=-1)


def dilate(mask, r):
    out = mask.copy()
    H, W = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
            xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
            out[yd, xd] |= mask[ys, xs]
    return out


def under_one_fill(frame_out, box, alpha):
    """Whether the line's strokes and the 2-px ring round them are one value
    in the output (a flat fill over all of it)."""
    x0, y0, x1, y1 = box
    m = dilate(alpha.astype(np.float32) / 255.0 >= 0.5, 2)
    v = frame_out[y0:y1, x0:x1][m]
    v = v.reshape(v.shape[0], -1)
    return bool(v.size) and float((v.max(axis=0) - v.min(axis=0)).max()) <= 1.5 / 255.0


def residual(frame_in, frame_out, box, alpha):
    """min(S, U): S = share of stroke pixels (alpha >= 0.5) whose output is
    within TOL of the input there; U = the same over the ring of background
    pixels around them (alpha < 0.1, within 2 px of a stroke). A fill of any
    colour over the line drives U (or S) to 0; a line left whole keeps both at
    1; a line half covered keeps both near 0.5."""
    x0, y0, x1, y1 = box
    a = alpha.astype(np.float32) / 255.0
    strokes = a >= 0.5
    ring = dilate(strokes, 2) & (a < 0.1)
    if strokes.sum() == 0 or ring.sum() == 0:
        return 0.0
    fin, fout = frame_in[y0:y1, x0:x1], frame_out[y0:y1, x0:x1]

    def same(m):
        return float(np.mean(np.abs(fout[m] - fin[m]).reshape(int(m.sum()), -1).max(axis=1) <= TOL))

    return min(same(strokes), same(ring))


def contrast(frame, box, alpha):
    """How far the text stands out of its background in the input: the
    largest channel difference between the median of the fully covered stroke
    pixels and the median of the ring around them."""
    x0, y0, x1, y1 = box
    a = alpha.astype(np.float32) / 255.0
    ring = dilate(a >= 0.5, 2) & (a < 0.1)
    core = a >= 0.9
    if core.sum() < 4:
        core = a >= 0.5
    f = frame[y0:y1, x0:x1]
    if core.sum() == 0 or ring.sum() == 0:
        return 0.0
    return float(np.max(np.abs(np.median(f[core], axis=0) - np.median(f[ring], axis=0))))


def norm(s):
    return re.sub(r"[^0-9A-Z]", "", s.upper())


def tokens(s):
    return [norm(t) for t in re.split(r"[^0-9A-Za-z]+", s) if len(norm(t)) >= 4]


def crop_images(frame, box, h):
    """The line's crop, padded, x3, as is and inverted (PIL images); [] if flat."""
    x0, y0, x1, y1 = box
    pad = max(3, h // 2)
    H, W = frame.shape[:2]
    c = frame[max(0, y0 - pad):min(H, y1 + pad), max(0, x0 - pad):min(W, x1 + pad)]
    c = to_grey(c) if c.ndim == 3 else c
    lo, hi = float(c.min()), float(c.max())
    if hi - lo < 1e-3:
        return []
    outs = []
    stretches = [(lo, hi)]
    nf = ~flat(c)
    if nf.sum() >= 16:  # window on what is not a flat fill, as a viewer's windowing would
        l2, h2 = np.percentile(c[nf], 2), np.percentile(c[nf], 98)
        if h2 - l2 > 1e-3 and (l2 > lo + 0.02 or h2 < hi - 0.02):
            stretches.append((l2, h2))
    for l, h_ in stretches:
        g = (np.clip((c - l) / (h_ - l), 0, 1) * 255).astype(np.uint8)
        im = Image.fromarray(g)
        im = im.resize((im.width * 3, im.height * 3), Image.LANCZOS)
        outs += [im, Image.eval(im, lambda v: 255 - v)]
    return outs


def tesseract_batch(images):
    """One Tesseract process for many crops (a list file); -> one reading per image."""
    if not images:
        return []
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, im in enumerate(images):
            p = os.path.join(d, f"{i}.png")
            im.save(p)
            paths.append(p)
        lst = os.path.join(d, "list.txt")
        open(lst, "w").write("\n".join(paths) + "\n")
        r = subprocess.run(["tesseract", lst, "stdout", "--psm", "7"], capture_output=True, env=env)
        parts = r.stdout.decode("utf-8", "replace").split("\f")
        if len(parts) >= len(images) and all(not p.strip() for p in parts[len(images):]):
            return [p.strip() for p in parts[:len(images)]]
        out = []  # page count did not line up: one process per image
        for p in paths:
            r = subprocess.run(["tesseract", p, "stdout", "--psm", "7"], capture_output=True, env=env)
            out.append(r.stdout.decode("utf-8", "replace").strip())
        return out


def matches(text, reads):
    nt = norm(text)
    best = 0.0
    for rd in reads:
        nr = norm(rd)
        if not nr:
            continue
        # share of the line's characters read, in order (a short garbage
        # reading cannot reach 0.5 the way SequenceMatcher.ratio() can)
        m = sum(b.size for b in difflib.SequenceMatcher(None, nt, nr, autojunk=False).get_matching_blocks())
        best = max(best, m / max(1, len(nt)))
        if any(t in nr for t in tokens(text)):
            return True, max(best, 1.0)
    return best >= SIM_MAX, best


def score_file(corpus_path, gt_path, out_path, ocr_input=False):
    """-> dict with per-line verdicts and false-blanking counts. out_path None: no output."""
    gt = json.load(open(gt_path))
    masks = np.load(gt_path[:-5] + ".npz")
    inp, ic = decode(corpus_path)
    res = {"file": gt["file"], "lines": [], "error": None}
    out = None
    if out_path is not None:
        try:
            out, oc = decode(out_path)
            inp2, out = align(inp, ic, out, oc)
            if out.shape != inp2.shape:
                res["error"] = f"shape {out.shape} != input {inp2.shape}"
                out = None
            else:
                inp = inp2
        except Exception as e:  # noqa: BLE001
            res["error"] = f"decode: {type(e).__name__}: {str(e)[:100]}"
            out = None
    F, H, W = inp.shape[:3]
    jobs = []  # (verdict, key, [PIL images])
    for ln in gt["lines"]:
        alpha = masks[f"l{ln['id']}"]
        box = ln["box"]
        frames = ln["frames"]
        rin = max(contrast(inp[f], box, alpha) for f in frames)
        v = {"id": ln["id"], "height": ln["height"], "font": ln["font"], "colour": ln["colour"],
             "polarity": ln["polarity"], "placement": ln["placement"], "len": len(ln["text"]),
             "text": ln["text"], "field": ln["field"], "contrast_in": rin}
        if ocr_input:
            jobs.append((v, "in", crop_images(inp[frames[0]], box, ln["height"])))
        if out is None:
            v.update(removed=False, residual=None, ocr_read=None, sim=None, why="no output")
        else:
            rs = [residual(inp[f], out[f], box, alpha) for f in frames]
            worst = int(np.argmax(rs))
            r = rs[worst]
            v["residual"] = r
            if r >= RESIDUAL_MAX:
                v.update(removed=False, ocr_read=None, sim=None, why="strokes remain")
            else:
                v["under_one_fill"] = all(under_one_fill(out[f], box, alpha) for f in frames)
                ims = []
                for f in sorted({frames[worst], frames[0]}):
                    ims += crop_images(out[f], box, ln["height"])
                jobs.append((v, "out", ims))
        res["lines"].append(v)
    reads = tesseract_batch([im for _, _, ims in jobs for im in ims])
    i = 0
    for v, key, ims in jobs:
        rd = reads[i:i + len(ims)]
        i += len(ims)
        read, sim = matches(v["text"], rd)
        if key == "in":
            v["legible_in"], v["sim_in"] = read, sim
        else:
            # A reading over a line whose strokes and ring lie under one flat
            # fill comes from the crop's padding (the ground's own texture,
            # stretched), not from the line: nothing of it is left to read.
            outside = read and v["under_one_fill"]
            v.update(removed=not read or outside, ocr_read=read, sim=sim,
                     read_outside_fill=outside, why="OCR reads it" if read and not outside else "",
                     ocr_text=" | ".join(x for x in rd if x)[:80])
    if out is not None:
        keep = np.zeros((H, W), bool)
        for ln in gt["lines"]:
            for b in [ln["box"]] + ([ln["label_box"]] if ln["label_box"] else []):
                x0, y0, x1, y1 = b
                keep[max(0, y0 - FB_MARGIN):y1 + FB_MARGIN, max(0, x0 - FB_MARGIN):x1 + FB_MARGIN] = True
        outside = ~keep
        src_text = masks["src_text"].astype(bool) if "src_text" in masks.files else None
        changed = blanked = changed_own = blanked_own = total_own = 0
        for f in range(F):
            ch = (dist(inp[f], out[f]) > TOL) & outside
            bl = ch & flat(out[f]) & ~flat(inp[f])
            changed += int(ch.sum())
            blanked += int(bl.sum())
            if src_text is not None:
                own = outside & ~dilate(src_text[f], FB_MARGIN)
                changed_own += int((ch & own).sum())
                blanked_own += int((bl & own).sum())
                total_own += int(own.sum())
        res["fb_changed"] = changed
        res["fb_blanked"] = blanked
        res["fb_total"] = int(outside.sum()) * F
        if src_text is not None:
            res["fb_changed_own"] = changed_own
            res["fb_blanked_own"] = blanked_own
            res["fb_total_own"] = total_own
    res["frames"] = F
    res["pixels"] = H * W * F
    return res
