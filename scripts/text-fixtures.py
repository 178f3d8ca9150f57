#!/usr/bin/env python3
"""Writes tests/fixtures/text_lines.png and text_lines.txt for tests/text_detect.rs.

The PNG is an anti-aliased coverage mask (8-bit grey, 255 = ink) holding one
PHI-like line per row, rendered with DejaVu fonts at several sizes (cap
heights of about 7 to 14 px). The TXT lists, per line, the tight ink box
inside the mask: `x0 y0 x1 y1 font size text` (inclusive-exclusive). The test
composites each line onto a real ultrasound frame in a given colour, so the
committed fixture stays a few KB and the background stays real.

    python3 -m venv target/textvenv && target/textvenv/bin/pip install pillow
    target/textvenv/bin/python scripts/text-fixtures.py
"""
import os

from PIL import Image, ImageDraw, ImageFont

FONTS = "/usr/share/fonts/truetype/dejavu"
LINES = [
    ("DejaVuSans.ttf", 10, "DOE^JOHN  ID 4471920"),
    ("DejaVuSans-Bold.ttf", 12, "DOB 1961-03-14"),
    ("DejaVuSansMono.ttf", 11, "ST. MARY HOSPITAL"),
    ("DejaVuSerif.ttf", 14, "Smith, Jane"),
    ("DejaVuSans.ttf", 16, "ACC 20240518-0032"),
    ("DejaVuSansMono-Bold.ttf", 18, "MRN 88-31-0042"),
    ("DejaVuSansCondensed.ttf", 13, "Dr. A. Keller  03/14/2024"),
    ("DejaVuSans.ttf", 20, "GARCIA LOPEZ, MARIA"),
]
PAD = 6
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
out_png = os.path.join(root, "tests/fixtures/text_lines.png")
out_txt = os.path.join(root, "tests/fixtures/text_lines.txt")
os.makedirs(os.path.dirname(out_png), exist_ok=True)

rendered = []
for font, size, text in LINES:
    f = ImageFont.truetype(os.path.join(FONTS, font), size)
    l, t, r, b = f.getbbox(text)
    img = Image.new("L", (r - l + 2 * PAD, b - t + 2 * PAD), 0)
    ImageDraw.Draw(img).text((PAD - l, PAD - t), text, font=f, fill=255)
    rendered.append((font, size, text, img))

width = max(img.width for *_, img in rendered)
height = sum(img.height for *_, img in rendered)
mask = Image.new("L", (width, height), 0)
rows = []
y = 0
for font, size, text, img in rendered:
    mask.paste(img, (0, y))
    x0, y0, x1, y1 = img.getbbox()
    rows.append(f"{x0} {y + y0} {x1} {y + y1} {font} {size} {text}")
    y += img.height
mask.save(out_png, optimize=True)
with open(out_txt, "w") as fh:
    fh.write("# x0 y0 x1 y1 font size text  (ink box in text_lines.png; scripts/text-fixtures.py)\n")
    fh.write("\n".join(rows) + "\n")
print(f"{out_png}: {width}x{height}, {os.path.getsize(out_png)} bytes")
