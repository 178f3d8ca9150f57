"""Corpus for scripts/eval_text.sh: real images from ../shared/data with
synthetic PHI lines rendered onto them, written as DICOM, plus ground truth.

Every choice comes from one random.Random(SEED), so the same SEED and N give
the same corpus (file for file, pixel for pixel) on any machine with the same
fonts and Pillow.

Layout of OUT:
  corpus/NNNN.dcm      the DICOM files handed to the gateway and the peer
  gt/NNNN.json         ground truth: source, kind, lines (text, box, font, ...)
  gt/NNNN.npz          per line: its stroke alpha (uint8, cropped to its box);
                       "src_text": the source's own text (uint8 F x H x W, 1 = text),
                       from eval_text_source_text.json, moved as the image is
  sources.json         sources used, sources skipped (and why)
"""
import copy
import glob
import hashlib
import json
import os
import random
import subprocess
import sys

import numpy as np
import pydicom
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTI = "1.2.840.10008.5.1.4.1.1.3.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"

# Sources whose pixels carry no burned-in text of their own (checked by eye on
# a contact sheet): changes outside the synthetic lines on these are false
# blanking for certain. US files, the CR/DX with "R" markers and the astronaut
# photo (name badge) carry real text of their own.
CLEAN_SOURCES = {
    "dicom/cr_dx/RG1_UNCR.dcm", "dicom/cr_dx/RG1_J2KI.dcm", "dicom/cr_dx/RG1_J2KR.dcm",
    "dicom/ct/CT_small.dcm", "dicom/ct/J2K_pixelrep_mismatch.dcm", "dicom/ct/eCT_Supplemental.dcm",
    "dicom/mr/MR-SIEMENS-DICOM-WithOverlays.dcm", "dicom/mr/MR2_J2KI.dcm", "dicom/mr/MR_small.dcm",
    "dicom/mr/emri_small.dcm", "dicom/photo_sc/cookie_image1.dcm", "dicom/photo_sc/ctbrain1.dcm",
    "derived/OT-PAL-8-face_part10.dcm",
}
CLEAN_PREFIX = ("derived/head_mr_t1_sag_lowres/",)


def is_clean_source(rel):
    return rel in CLEAN_SOURCES or rel.startswith(CLEAN_PREFIX)


# Boxes of each source's own text, drawn by eye (see the file's "_about").
SOURCE_TEXT = {k: v for k, v in json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                             "eval_text_source_text.json"))).items()
               if not k.startswith("_")}


def source_text_mask(rel, shape):
    """-> float32 H x W, 1 inside the source's own text boxes (all 0 for a clean source)."""
    m = np.zeros(shape[:2], np.float32)
    for x0, y0, x1, y1 in SOURCE_TEXT.get(rel, []):
        m[y0:y1, x0:x1] = 1.0
    return m


FONT_FILES = {
    "DejaVuSans": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "DejaVuSansMono": "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "DejaVuSerif": "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "LiberationSans": "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "LiberationMono": "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
}
BITMAP = "PIL-bitmap"
FONTS = list(FONT_FILES) + [BITMAP]

COLOURS = {  # display RGB; grey images use the luminance
    "white": (255, 255, 255),
    "yellow": (255, 255, 0),
    "green": (0, 255, 0),
    "cyan": (0, 255, 255),
    "black": (0, 0, 0),
}

FAMILY = ["ROE", "DOE", "MILLER", "NGUYEN", "SCHMIDT", "OKAFOR", "ROSSI", "KOWALSKI", "GARCIA",
          "JOHANSSON", "TANAKA", "DUBOIS", "MURPHY", "PETROV", "SILVA", "BERGSTROM"]
GIVEN = ["JANE", "JOHN", "ANNA", "PETER", "MARIA", "AHMED", "LUCIA", "TOMAS", "GRACE", "KENJI",
         "SOFIA", "DAVID", "ELENA", "MARCUS", "INGRID", "OMAR"]
HOSPITALS = ["St. Mary General Hospital", "Riverside Medical Center", "UNIV. CLINIC NORTH",
             "Lakeview Community Hospital", "Mercy Heart Institute", "CITY IMAGING CENTRE",
             "Kantonsspital Westfeld", "Northgate Children's Hospital"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class Phi:
    """One synthetic patient: the values drawn onto the image and written to the header."""

    def __init__(self, rng):
        self.family = rng.choice(FAMILY)
        self.given = rng.choice(GIVEN)
        self.pid = (str(rng.randint(10 ** 5, 10 ** 9)) if rng.random() < 0.5 else
                    "%s%02d%s%05d" % (rng.choice("ABCDHKMPRZ"), rng.randint(0, 99),
                                      rng.choice("ABCDEFGHJK"), rng.randint(0, 99999)))
        self.by, self.bm, self.bd = rng.randint(1931, 2019), rng.randint(1, 12), rng.randint(1, 28)
        self.acc = rng.choice(["%d%s%07d" % (rng.randint(2015, 2025), rng.choice("ABRX"), rng.randint(0, 10 ** 7)),
                               "RAD%06d" % rng.randint(0, 10 ** 6), "%010d" % rng.randint(0, 10 ** 10)])
        self.hospital = rng.choice(HOSPITALS)
        self.sy, self.sm, self.sd = rng.randint(2010, 2025), rng.randint(1, 12), rng.randint(1, 28)
        self.hh, self.mi, self.ss = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)

    def lines(self, rng, k):
        g, f = self.given, self.family
        name = rng.choice([f"{f}^{g}", f"{f}, {g}", f"{g.title()} {f.title()}", f"Name: {f}^{g}",
                           f"{f.title()}, {g.title()}", f"PATIENT: {g} {f}"])
        pid = rng.choice([self.pid, f"ID: {self.pid}", f"MRN {self.pid}", f"PID:{self.pid}"])
        y, m, d = self.by, self.bm, self.bd
        dob = rng.choice([f"DOB {y:04d}-{m:02d}-{d:02d}", f"{m:02d}/{d:02d}/{y:04d}", f"{d:02d}.{m:02d}.{y:04d}",
                          f"{y:04d}{m:02d}{d:02d}", f"Born {d:02d}-{MONTHS[m - 1]}-{y:04d}",
                          f"DOB: {d}/{m}/{y}"])
        acc = rng.choice([f"ACC {self.acc}", f"Acc#: {self.acc}", f"Accession {self.acc}"])
        hosp = self.hospital
        y, m, d = self.sy, self.sm, self.sd
        when = rng.choice([f"{y:04d}-{m:02d}-{d:02d} {self.hh:02d}:{self.mi:02d}:{self.ss:02d}",
                           f"{d:02d}/{m:02d}/{y:04d} {(self.hh % 12) or 12}:{self.mi:02d} {'AM' if self.hh < 12 else 'PM'}",
                           f"{d:02d}-{MONTHS[m - 1]}-{y:04d}  {self.hh:02d}:{self.mi:02d}"])
        pool = [("name", name), ("id", pid), ("dob", dob), ("accession", acc), ("hospital", hosp), ("datetime", when)]
        first = pool[:1]  # every image carries the name
        rest = pool[1:]
        rng.shuffle(rest)
        return (first + rest)[:k]

    def header(self, ds):
        ds.PatientName = f"{self.family}^{self.given}"
        ds.PatientID = self.pid
        ds.PatientBirthDate = f"{self.by:04d}{self.bm:02d}{self.bd:02d}"
        ds.AccessionNumber = self.acc[:16]
        ds.InstitutionName = self.hospital
        ds.StudyDate = f"{self.sy:04d}{self.sm:02d}{self.sd:02d}"


# --------------------------------------------------------------------------- sources

def list_sources(data):
    pats = ["dicom/us/*", "dicom/cr_dx/*", "dicom/ct/*", "dicom/mr/*", "dicom/photo_sc/*", "derived/*.dcm",
            "derived/head_mr_t1_sag_lowres/*.dcm"]
    out = []
    for p in pats:
        out += sorted(glob.glob(os.path.join(data, p)))
    # A few central slices of the 88-slice head series, not all of them.
    out = [f for f in out if "head_mr_t1_sag_lowres" not in f or os.path.basename(f) in
           ("IM0030.dcm", "IM0044.dcm", "IM0058.dcm")]
    return [f for f in out if os.path.isfile(f)]


def decode_source(path):
    """-> (display image: float32 HxW (grey) or HxWx3 (RGB), in [0, 1]; info dict; dataset)."""
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    pi = ds.PhotometricInterpretation
    nf = int(ds.get("NumberOfFrames", 1) or 1)
    if nf > 1:
        arr = arr[0]
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut
        arr = apply_color_lut(arr, ds).astype(np.float32)
        img = arr / (65535.0 if arr.max() > 255 else 255.0)
        return np.clip(img, 0, 1), {"colour": True, "bits": 8}, ds
    if arr.ndim == 3:  # RGB (pydicom converts YBR to RGB)
        return arr.astype(np.float32) / 255.0, {"colour": True, "bits": 8}, ds
    a = arr.astype(np.float32)
    bits = int(ds.get("BitsStored", 8))
    lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.8)
    img = np.clip((a - lo) / max(hi - lo, 1e-6), 0, 1)
    if pi == "MONOCHROME1":
        img = 1.0 - img
    return img, {"colour": False, "bits": bits, "mono1": pi == "MONOCHROME1"}, ds


def load_sources(data, log):
    good, skipped, seen = [], [], set()
    for f in list_sources(data):
        rel = os.path.relpath(f, data)
        if "siemens_mosaic" in rel:
            skipped.append((rel, "test pattern (stripes), not an image"))
            continue
        try:
            img, info, ds = decode_source(f)
        except Exception as e:  # noqa: BLE001
            skipped.append((rel, f"{type(e).__name__}: {str(e)[:120]}"))
            continue
        h = hashlib.sha1(np.ascontiguousarray((img * 255).astype(np.uint8)).tobytes()).hexdigest()
        if h in seen:
            skipped.append((rel, "same pixels as an earlier source"))
            continue
        seen.add(h)
        group = rel.split("/")[1] if rel.startswith("dicom/") else "derived"
        if rel.startswith("derived/head_mr"):
            group = "mr"
        elif rel.startswith("derived/"):
            group = "photo"
        if rel.endswith("ctbrain1.dcm"):
            group = "ct"  # a secondary capture of a drawing, no photo
        if rel.endswith("cookie_image1.dcm"):
            group = "photo"
        good.append({"rel": rel, "path": f, "group": group, "img": img, "info": info, "ds": ds})
    log(f"sources: {len(good)} decoded, {len(skipped)} skipped")
    return good, skipped


# --------------------------------------------------------------------------- rendering

_font_cache = {}


def get_font(name, size):
    key = (name, size)
    if key not in _font_cache:
        _font_cache[key] = (ImageFont.load_default_imagefont() if name == BITMAP
                            else ImageFont.truetype(FONT_FILES[name], size))
    return _font_cache[key]


def render_mask(text, font_name, size, antialias, scale=1):
    """-> uint8 alpha cropped to its ink bbox."""
    font = get_font(font_name, size)
    w = int(len(text) * max(size, 8) * 1.2) + 20
    h = int(max(size, 12) * 2.2) + 10
    im = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(im)
    d.fontmode = "L" if antialias else "1"
    d.text((6, 4), text, fill=255, font=font)
    a = np.asarray(im)
    ys, xs = np.nonzero(a)
    a = a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    if scale > 1:
        a = np.kron(a, np.ones((scale, scale), np.uint8))
    return a


def render_line(rng, text, font_name, target_h):
    antialias = font_name != BITMAP and rng.random() < 0.6
    if font_name == BITMAP:
        scale = 1 if target_h < 15 else 2
        return render_mask(text, BITMAP, 0, False, scale), {"size": 11 * scale, "antialias": False}
    best = None
    for s in range(5, 40):
        m = render_mask(text, font_name, s, antialias)
        err = abs(m.shape[0] - target_h)
        if best is None or err < best[0]:
            best = (err, s, m)
        if m.shape[0] > target_h + 2:
            break
    return best[2], {"size": best[1], "antialias": antialias}


def grey_of(rgb):
    r, g, b = rgb
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


# --------------------------------------------------------------------------- layout

def place_lines(rng, H, W, lines_spec, colour_img):
    """lines_spec: list of (field, text, mask, meta). Decide bands and positions.
    Returns (bands, placed) with bands [(y0, y1, level)] and placed line dicts."""
    slots = []
    for spec in lines_spec:
        r = rng.random()
        slots.append("top" if r < 0.35 else "bottom" if r < 0.6 else "content")
    placed, bands, occupied = [], [], []
    for where in ("top", "bottom"):
        idx = [i for i, s in enumerate(slots) if s == where]
        if not idx:
            continue
        light_band = rng.random() < 0.2
        gap = rng.randint(2, 6)
        total = sum(lines_spec[i][2].shape[0] for i in idx) + gap * (len(idx) + 1) + 4
        if total > H // 3:  # no room: move to content
            for i in idx:
                slots[i] = "content"
            continue
        y0 = 0 if where == "top" else H - total
        level = rng.uniform(0.85, 0.96) if light_band else rng.uniform(0.0, 0.06)
        bands.append((y0, y0 + total, level))
        occupied.append((0, y0, W, y0 + total))
        y = y0 + gap + 2
        right = rng.random() < 0.3
        for i in idx:
            field, text, mask, meta = lines_spec[i]
            mh, mw = mask.shape
            if mw > W - 8:
                y += mh + gap
                continue
            x = (W - mw - rng.randint(4, 30)) if right else rng.randint(4, min(40, max(5, W - mw - 4)))
            x = max(2, min(x, W - mw - 2))
            colour = "black" if light_band else rng.choice(["white", "white", "yellow", "green", "cyan"])
            placed.append(dict(field=field, text=text, mask=mask, meta=meta, x=x, y=y, colour=colour,
                               placement=f"{where}-band", polarity="dark-on-light" if light_band else "light-on-dark",
                               label=None))
            y += mh + gap
    for i, s in enumerate(slots):
        if s != "content":
            continue
        field, text, mask, meta = lines_spec[i]
        mh, mw = mask.shape
        if mw > W - 8 or mh > H - 8:
            continue
        dark_on_light = rng.random() < 0.3
        for _ in range(200):
            x, y = rng.randint(4, W - mw - 4), rng.randint(4, H - mh - 4)
            box = (x - 8, y - 8, x + mw + 8, y + mh + 8)
            if all(box[2] <= o[0] or box[0] >= o[2] or box[3] <= o[1] or box[1] >= o[3] for o in occupied):
                break
        else:
            continue
        occupied.append(box)
        if dark_on_light:
            colour, polarity = "black", "dark-on-light"
            label = (x - 3, y - 3, x + mw + 3, y + mh + 3, rng.uniform(0.85, 0.97))
        else:
            colour, polarity, label = rng.choice(["white", "white", "yellow", "green", "cyan"]), "light-on-dark", None
        placed.append(dict(field=field, text=text, mask=mask, meta=meta, x=x, y=y, colour=colour,
                           placement="content", polarity=polarity, label=label))
    return bands, placed


def compose(bg, bands, placed, colour_img, frame_index=None):
    """bg: HxW or HxWx3 float [0,1]; returns the composed frame (float)."""
    img = bg.copy()
    for y0, y1, level in bands:
        img[y0:y1] = level
    for ln in placed:
        if frame_index is not None and ln.get("frames") is not None and frame_index not in ln["frames"]:
            continue
        if ln["label"] is not None:
            x0, y0, x1, y1, lv = ln["label"]
            img[max(0, y0):y1, max(0, x0):x1] = lv
        mh, mw = ln["mask"].shape
        a = ln["mask"].astype(np.float32) / 255.0
        rgb = COLOURS[ln["colour"]]
        sl = img[ln["y"]:ln["y"] + mh, ln["x"]:ln["x"] + mw]
        if colour_img:
            c = np.array(rgb, np.float32) / 255.0
            sl[:] = sl * (1 - a[..., None]) + c * a[..., None]
        else:
            sl[:] = sl * (1 - a) + grey_of(rgb) * a
    return img


# --------------------------------------------------------------------------- DICOM

DROP_GROUPS = {0x0028, 0x7FE0, 0x0088, 0x5200}


def new_dataset(src, idx, seed, sop_class, modality, phi, rng):
    ds = Dataset()
    for el in src:
        g = el.tag.group
        if g in DROP_GROUPS or 0x6000 <= g <= 0x60FF or g == 0x0002 or el.tag.is_private:
            continue
        if el.tag in (0x00181063, 0x00181065, 0x00280009, 0x00209222, 0x00209221):
            continue
        ds.add(copy.deepcopy(el))
    uid = generate_uid(entropy_srcs=[f"eval-text-{seed}-{idx}"])
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = uid
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"eval-text-series-{seed}-{idx}"])
    if "StudyInstanceUID" not in ds:
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"eval-text-study-{seed}-{idx}"])
    ds.Modality = modality
    ds.InstanceNumber = idx
    ds.SeriesNumber = 9000 + idx % 1000
    if sop_class == SC_IMAGE:
        ds.ConversionType = "WSD"
        for kw in ("ImageType",):
            if kw in ds:
                del ds[kw]
        ds.ImageType = ["DERIVED", "SECONDARY"]
    b = rng.random()
    if b < 0.4:
        ds.BurnedInAnnotation = "NO"
    elif b < 0.7:
        ds.BurnedInAnnotation = "YES"
    elif "BurnedInAnnotation" in ds:
        del ds.BurnedInAnnotation
    phi.header(ds)
    ds.SpecificCharacterSet = "ISO_IR 100"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def set_pixels(ds, frames, colour, bits, mono1=False):
    """frames: list of float [0,1] arrays (display space)."""
    H, W = frames[0].shape[:2]
    ds.Rows, ds.Columns = H, W
    if colour:
        arr = np.stack([np.clip(np.rint(f * 255), 0, 255).astype(np.uint8) for f in frames])
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    else:
        ds.SamplesPerPixel = 1
        top = (1 << bits) - 1
        dt = np.uint8 if bits <= 8 else np.uint16
        arr = np.stack([np.clip(np.rint(f * top), 0, top).astype(dt) for f in frames])
        if mono1:
            arr = (top - arr).astype(dt)
        ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
        ds.BitsAllocated = 8 if bits <= 8 else 16
        ds.BitsStored, ds.HighBit = bits, bits - 1
        if bits > 8:
            ds.WindowCenter, ds.WindowWidth = top / 2.0, float(top + 1)
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = 33.3
        ds.FrameIncrementPointer = 0x00181063
    ds.PixelData = arr.tobytes()
    return arr


def fit_size(img, max_side):
    H, W = img.shape[:2]
    f = max(H, W) / max_side
    if f <= 1:
        return img
    k = int(np.ceil(f))
    Hn, Wn = H // k, W // k
    im = img[: Hn * k, : Wn * k]
    shape = (Hn, k, Wn, k) + im.shape[2:]
    return im.reshape(shape).mean(axis=(1, 3))


def move_content(img, f, nframes, amp_x, amp_y):
    """Cine motion: the central part of the image (where the sector is) moves
    back and forth (breathing, probe motion); the chrome around it stays."""
    H, W = img.shape[:2]
    y0, y1, x0, x1 = int(H * 0.15), int(H * 0.85), int(W * 0.12), int(W * 0.88)
    ph = 2 * np.pi * f / nframes
    dx, dy = int(round(amp_x * np.sin(ph))), int(round(amp_y * np.sin(2 * ph)))
    out = img.copy()
    reg = img[y0:y1, x0:x1]
    h, w = reg.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    out[y0:y1, x0:x1] = reg[ys][:, xs]
    return out


def screen_capture(rng, img):
    """CT/MR slice -> 8-bit 'screen' canvas, image scaled to fit, dark margins."""
    cw, ch = rng.choice([(512, 512), (640, 480), (800, 600)])
    H, W = img.shape[:2]
    s = min((ch - 80) / H, (cw - 40) / W)
    nh, nw = max(8, int(H * s)), max(8, int(W * s))
    pim = Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).resize((nw, nh), Image.BILINEAR)
    canvas = np.zeros((ch, cw) + img.shape[2:], np.float32)
    y0, x0 = (ch - nh) // 2, (cw - nw) // 2
    canvas[y0:y0 + nh, x0:x0 + nw] = np.asarray(pim, np.float32) / 255.0
    return canvas


# --------------------------------------------------------------------------- encoders

ENCODINGS = ["jpeg-lossless", "jpeg-baseline", "rle", "jpeg-ls", "j2k-lossless"]


def encode(kind, src, dst):
    if kind == "jpeg-lossless":
        cmd = ["dcmcjpeg", "+e1", src, dst]
    elif kind == "jpeg-baseline":
        cmd = ["dcmcjpeg", "+eb", "+q", "90", src, dst]
    elif kind == "rle":
        cmd = ["dcmcrle", src, dst]
    elif kind == "jpeg-ls":
        cmd = ["dcmcjpls", src, dst]
    elif kind == "j2k-lossless":
        from pydicom.uid import JPEG2000Lossless
        ds = pydicom.dcmread(src)
        ds.compress(JPEG2000Lossless)
        ds.save_as(dst, enforce_file_format=True)
        return
    else:
        raise ValueError(kind)
    subprocess.run(cmd, check=True, capture_output=True)


# --------------------------------------------------------------------------- main

KIND_SHARE = [("US", 0.20), ("CR/DX", 0.12), ("SC/OT", 0.20), ("photo", 0.10), ("multi-frame", 0.15),
              ("encoded", 0.23)]


def plan_kinds(n, rng):
    kinds = []
    for k, share in KIND_SHARE:
        kinds += [k] * max(1, round(n * share))
    while len(kinds) < n:
        kinds.append("US")
    kinds = kinds[:n]
    rng.shuffle(kinds)
    return kinds


def build(data, out, n, seed, log=print):
    rng = random.Random(seed)
    sources, skipped = load_sources(data, log)
    by_group = {}
    for s in sources:
        by_group.setdefault(s["group"], []).append(s)
    os.makedirs(os.path.join(out, "corpus"), exist_ok=True)
    os.makedirs(os.path.join(out, "gt"), exist_ok=True)
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    kinds = plan_kinds(n, rng)
    enc_cycle = 0
    partial_done = 0
    for idx, kind in enumerate(kinds, start=1):
        r = random.Random(f"{seed}-{idx}")
        phi = Phi(r)
        encoding = None
        base_kind = kind
        if kind == "encoded":
            encoding = ENCODINGS[enc_cycle % len(ENCODINGS)]
            enc_cycle += 1
            base_kind = r.choice(["US", "US", "CR/DX", "SC/OT", "photo", "multi-frame"])
            if encoding == "jpeg-baseline" and base_kind == "CR/DX":
                base_kind = "SC/OT"
        # ---- source and canvas
        if base_kind in ("US", "multi-frame"):
            src = r.choice(by_group["us"])
        elif base_kind == "CR/DX":
            src = r.choice(by_group["cr_dx"])
        elif base_kind == "SC/OT":
            src = r.choice(by_group["ct"] + by_group["mr"])
        else:
            src = r.choice(by_group["photo"])
        img, info = src["img"], dict(src["info"])
        stext = source_text_mask(src["rel"], img.shape)  # follows every move of img below
        colour = info["colour"]
        bits = 8
        mono1 = False
        modality = src["ds"].get("Modality") or "OT"
        sop = src["ds"].SOPClassUID
        if base_kind == "US":
            sop, modality = US_IMAGE, "US"
            if not colour and r.random() < 0.3:
                pass
        elif base_kind == "multi-frame":
            sop, modality = US_MULTI, "US"
            img, stext = fit_size(img, 640), fit_size(stext, 640)
        elif base_kind == "CR/DX":
            img, stext = fit_size(img, 1024), fit_size(stext, 1024)
            bits = info["bits"] if (encoding != "jpeg-baseline") else 8
            mono1 = info.get("mono1", False) and r.random() < 0.7
        elif base_kind == "SC/OT":
            if src["group"] in ("ct", "mr") and src["ds"].SOPClassUID != SC_IMAGE:
                assert not stext.any(), "screen captures are made of sources without text"
                img = screen_capture(r, img)
                stext = np.zeros(img.shape[:2], np.float32)
            sop, modality = SC_IMAGE, "OT"
            if not colour:
                bits = 12 if (r.random() < 0.25 and encoding != "jpeg-baseline") else 8
            if not colour and r.random() < 0.3 and encoding != "jpeg-baseline":
                pass
        else:  # photo
            img, stext = fit_size(img, 1024), fit_size(stext, 1024)
            if modality not in ("XC", "OT", "SC", "ES"):
                modality = "OT"
        if encoding == "jpeg-baseline":
            bits = 8
        if colour and base_kind == "US" and encoding == "jpeg-baseline":
            pass
        H, W = img.shape[:2]
        # ---- lines
        k = r.randint(2, 6)
        specs = []
        for field, text in phi.lines(r, k):
            font = r.choice(FONTS)
            target_h = r.randint(7, 20)
            mask, meta = render_line(r, text, font, target_h)
            meta["font"] = font
            specs.append((field, text, mask, meta))
        bands, placed = place_lines(r, H, W, specs, colour)
        # ---- frames
        nframes = 1
        if base_kind == "multi-frame":
            nframes = r.randint(5, 20)
            if base_kind == "multi-frame" and (partial_done < 2 or r.random() < 0.25) and len(placed) >= 2:
                ln = r.choice(placed)
                a = r.randint(1, nframes // 2)
                b = r.randint(a + 1, nframes - 1)
                ln["frames"] = list(range(a, b))
                partial_done += 1
        frames = []
        src_text = []
        amp_x, amp_y = r.randint(3, 8), r.randint(0, 4)
        for f in range(nframes):
            bg = move_content(img, f, nframes, amp_x, amp_y) if nframes > 1 else img
            frames.append(compose(bg, bands, placed, colour, f if nframes > 1 else None))
            st = move_content(stext, f, nframes, amp_x, amp_y) if nframes > 1 else stext
            src_text.append(st > 0)
        # ---- DICOM
        ds = new_dataset(src["ds"], idx, seed, sop, modality, phi, r)
        set_pixels(ds, frames, colour, bits, mono1)
        name = f"{idx:04d}.dcm"
        dst = os.path.join(out, "corpus", name)
        if encoding:
            tmp = os.path.join(out, "tmp", name)
            ds.save_as(tmp, enforce_file_format=True)
            try:
                encode(encoding, tmp, dst)
            except Exception as e:  # noqa: BLE001
                log(f"  {name}: {encoding} failed ({e}); written native")
                os.replace(tmp, dst)
                encoding = None
            else:
                os.remove(tmp)
        else:
            ds.save_as(dst, enforce_file_format=True)
        gt = {
            "file": name, "index": idx, "kind": kind, "base_kind": base_kind, "encoding": encoding,
            "source": src["rel"], "clean_source": is_clean_source(src["rel"]),
            "modality": modality, "sop_class": str(sop), "rows": H, "cols": W, "frames": nframes,
            "colour": colour, "bits": bits, "mono1": mono1,
            "burned_in_flag": ds.get("BurnedInAnnotation"),
            "bands": [list(b) for b in bands],
            "lines": [],
        }
        masks = {"src_text": np.stack(src_text).astype(np.uint8)}
        for j, ln in enumerate(placed):
            mh, mw = ln["mask"].shape
            gt["lines"].append({
                "id": j, "field": ln["field"], "text": ln["text"],
                "box": [ln["x"], ln["y"], ln["x"] + mw, ln["y"] + mh],
                "label_box": list(ln["label"][:4]) if ln["label"] else None,
                "font": ln["meta"]["font"], "font_size": ln["meta"]["size"], "height": mh,
                "antialias": ln["meta"]["antialias"], "colour": ln["colour"], "polarity": ln["polarity"],
                "placement": ln["placement"],
                "frames": ln.get("frames") if ln.get("frames") is not None else list(range(nframes)),
            })
            masks[f"l{j}"] = ln["mask"]
        with open(os.path.join(out, "gt", f"{idx:04d}.json"), "w") as fh:
            json.dump(gt, fh, indent=1)
        np.savez_compressed(os.path.join(out, "gt", f"{idx:04d}.npz"), **masks)
    os.rmdir(os.path.join(out, "tmp"))
    with open(os.path.join(out, "sources.json"), "w") as fh:
        json.dump({"used": sorted({s["rel"] for s in sources}), "skipped": skipped,
                   "clean": sorted(s["rel"] for s in sources if is_clean_source(s["rel"]))}, fh, indent=1)
    log(f"corpus: {n} files in {out}/corpus")


if __name__ == "__main__":
    build(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
