#!/usr/bin/env python3
"""Reference outputs of the PP-OCRv4 text detector from ONNX Runtime, for the
parity test of the Candle port (tests/text_detect.rs, `parity_with_onnxruntime`).

Needs a throw-away venv (not a project dependency):

    python3 -m venv target/textvenv
    target/textvenv/bin/pip install onnxruntime numpy pillow pydicom pylibjpeg pylibjpeg-libjpeg
    target/textvenv/bin/python scripts/text-parity.py target/textparity
    TEXT_PARITY_DIR=target/textparity cargo test --release --test text_detect -- --ignored parity

For every image it writes `<name>.input.bin` (the normalised BGR network input)
and `<name>.prob.bin` (ONNX Runtime's probability map); both are
`u32 height, u32 width, f32 data…`, little endian. The ONNX file is read from
the rapidocr-onnxruntime 1.4.4 wheel, downloaded with pip as the fetch script
does. It also writes the decoded ultrasound frames as PNG for inspection.
"""
import glob
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnxruntime as ort
import pydicom
from PIL import Image

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
out_dir = sys.argv[1] if len(sys.argv) > 1 else "target/textparity"
os.makedirs(out_dir, exist_ok=True)

tmp = tempfile.mkdtemp()
subprocess.check_call(
    [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp,
     "rapidocr-onnxruntime==1.4.4"]
)
wheel = glob.glob(os.path.join(tmp, "rapidocr_onnxruntime-1.4.4-*.whl"))[0]
onnx_bytes = zipfile.ZipFile(wheel).read("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx")
sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])


def dicom_rgb(path):
    a = pydicom.dcmread(path).pixel_array
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    return a.astype(np.uint8)


images = {
    "us_jpgll": dicom_rgb(os.path.join(SHARED, "dicom/us/JPGLosslessP14SV1_1s_1f_8b.dcm")),
    "us1_uncr": dicom_rgb(os.path.join(SHARED, "dicom/us/US1_UNCR.dcm")),
    "astronaut": np.asarray(Image.open(os.path.join(SHARED, "images/astronaut.png")).convert("RGB")),
}


def write(path, arr2or3):
    h, w = arr2or3.shape[-2:]
    with open(path, "wb") as f:
        f.write(np.array([h, w], dtype="<u4").tobytes())
        f.write(np.ascontiguousarray(arr2or3, dtype="<f4").tobytes())


for name, rgb in images.items():
    Image.fromarray(rgb).save(os.path.join(out_dir, f"{name}.png"))
    h, w = rgb.shape[:2]
    ratio = min(1.0, 960 / max(h, w))
    rh, rw = [max(32, int(round(int(v * ratio) / 32) * 32)) for v in (h, w)]
    resized = np.asarray(Image.fromarray(rgb).resize((rw, rh), Image.BILINEAR)).astype(np.float32)
    bgr = resized[:, :, ::-1]
    x = ((bgr / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)[None].astype(np.float32)
    prob = sess.run(None, {"x": x})[0][0, 0]
    write(os.path.join(out_dir, f"{name}.input.bin"), x[0])
    write(os.path.join(out_dir, f"{name}.prob.bin"), prob)
    print(f"{name}: {w}x{h} -> {rw}x{rh}, prob max {prob.max():.4f}, >0.3: {(prob > 0.3).mean() * 100:.2f} %")

# ---- the recogniser: a few real lines, as 3x48xW inputs and softmax outputs ----
# (tests/text_read.rs, `rec_parity_with_onnxruntime`; `<name>.rec_input.bin`
# is u32 48, u32 W, f32 3x48xW; `<name>.rec_logits.bin` u32 steps, u32
# classes, f32 softmax probabilities.)
rec_bytes = zipfile.ZipFile(wheel).read("rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx")
rec = ort.InferenceSession(rec_bytes, providers=["CPUExecutionProvider"])
lines = {
    "line_adult_echo": (images["us_jpgll"], (10, 22, 200, 52)),
    "line_asc_ao": (images["us_jpgll"], (80, 58, 340, 88)),
    "line_baptist": (images["us1_uncr"], (0, 20, 640, 60)),
}
for name, (rgb, (x0, y0, x1, y1)) in lines.items():
    crop = Image.fromarray(rgb[y0:y1, x0:x1])
    rw = min(2400, int(np.ceil(48 * (x1 - x0) / (y1 - y0))))
    line = np.asarray(crop.resize((rw, 48), Image.BILINEAR)).astype(np.float32)[:, :, ::-1]
    x = np.zeros((1, 3, 48, max(320, rw)), np.float32)
    x[0, :, :, :rw] = ((line / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    probs = rec.run(None, {"x": x})[0][0]
    write(os.path.join(out_dir, f"{name}.rec_input.bin"), x[0])
    with open(os.path.join(out_dir, f"{name}.rec_logits.bin"), "wb") as f:
        f.write(np.array(probs.shape, dtype="<u4").tobytes())
        f.write(np.ascontiguousarray(probs, dtype="<f4").tobytes())
    print(f"{name}: input 48x{x.shape[3]}, {probs.shape[0]} steps, {probs.shape[1]} classes")
