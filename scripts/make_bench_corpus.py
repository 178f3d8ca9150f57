#!/usr/bin/env python3
"""Build a benchmark corpus of N distinct DICOM files from real MR samples.

    python scripts/make_bench_corpus.py OUT_DIR [-n 1000] [--source-dir DIR]

Needs pydicom (run it inside target/bench-venv; scripts/bench_anonymize.sh does).

Sources are the uncompressed little-endian MR files in ../shared/data/dicom/mr
(relative to the repo root), used round-robin. Every copy gets:
  * a new SOPInstanceUID (and MediaStorageSOPInstanceUID), InstanceNumber;
  * a StudyInstanceUID / SeriesInstanceUID / FrameOfReferenceUID, AccessionNumber,
    StudyID per group of --study-size files (default 50);
  * fake PHI per group of --patient-size files (default 100): PatientName
    "BENCH^PATIENT^0042", PatientID "MRN0042", birth date, sex,
    referring physician, institution.
  * BodyPartExamined set to --body-part (default KNEE): the samples come from
    unrelated heads and bodies, and a "series" of them would rightly be held
    and quarantined by the head MR (face remodeling) route; these benchmarks
    measure the per-instance metadata path. scripts/bench_mri.sh measures the
    head route on a real series.
UIDs are derived deterministically from --seed, so the same arguments give the
same corpus. Files are written as OUT_DIR/000000.dcm, 000001.dcm, ... in each
source's original transfer syntax.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from collections import Counter
from pathlib import Path

try:
    import pydicom
    from pydicom.uid import generate_uid
except ImportError:  # pragma: no cover
    sys.exit("make_bench_corpus.py: pydicom is required (pip install pydicom)")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "data" / "dicom" / "mr"

# Uncompressed, little-endian MR samples that pydicom parses cleanly.
# (Big-endian and compressed variants exist there too; left out on purpose so
# the benchmark measures header de-identification, not codecs / retired TS.)
DEFAULT_SOURCES = [
    "MR_small.dcm",                       # explicit VR LE, 64x64, ~10 KB
    "MR_small_implicit.dcm",              # implicit VR LE
    "MR_small_padded.dcm",                # explicit VR LE, padded
    "emri_small.dcm",                     # Enhanced MR, 10 frames, ~84 KB
    "MR-SIEMENS-DICOM-WithOverlays.dcm",  # Siemens, private tags + overlays, ~510 KB
    "siemens_mosaic_0.dcm",               # Siemens mosaic, implicit VR, ~226 KB
]
UNCOMPRESSED_LE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def load_sources(source_dir: Path, names: list[str] | None) -> list[tuple[str, bytes]]:
    explicit = names is not None
    if names is None:
        names = DEFAULT_SOURCES
    out = []
    for name in names:
        path = Path(name) if os.path.isabs(name) else source_dir / name
        try:
            raw = path.read_bytes()
            ds = pydicom.dcmread(io.BytesIO(raw))
            ts = str(ds.file_meta.TransferSyntaxUID)
            if not explicit and ts not in UNCOMPRESSED_LE:
                print(f"skip {path.name}: transfer syntax {ts}", file=sys.stderr)
                continue
            _ = ds.SOPInstanceUID  # must have one
        except Exception as exc:  # noqa: BLE001
            print(f"skip {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        out.append((path.name, raw))
    if not out:
        sys.exit(f"make_bench_corpus.py: no usable source files in {source_dir}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("-n", "--count", type=int, default=1000, help="number of files (default 1000)")
    ap.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE_DIR)
    ap.add_argument("--sources", nargs="+", default=None,
                    help="file names in --source-dir (or absolute paths) to use instead of the default set")
    ap.add_argument("--study-size", type=int, default=50, help="files per study/series (default 50)")
    ap.add_argument("--patient-size", type=int, default=100, help="files per patient (default 100)")
    ap.add_argument("--body-part", default="KNEE",
                    help="BodyPartExamined written into every copy (default KNEE)")
    ap.add_argument("--seed", default="deidgate-bench", help="seed for deterministic UIDs")
    args = ap.parse_args()

    if args.count < 1 or args.study_size < 1 or args.patient_size < 1:
        ap.error("counts must be >= 1")

    sources = load_sources(args.source_dir, args.sources)
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def uid(*parts: object) -> str:
        return generate_uid(entropy_srcs=[args.seed, *map(str, parts)])

    used = Counter()
    total_bytes = 0
    for i in range(args.count):
        src_name, raw = sources[i % len(sources)]
        ds = pydicom.dcmread(io.BytesIO(raw))

        study = i // args.study_size
        patient = i // args.patient_size

        sop_uid = uid("sop", i)
        ds.SOPInstanceUID = sop_uid
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.StudyInstanceUID = uid("study", study)
        ds.SeriesInstanceUID = uid("series", study)
        ds.FrameOfReferenceUID = uid("for", study)
        ds.InstanceNumber = i % args.study_size + 1
        ds.SeriesNumber = 1
        ds.BodyPartExamined = args.body_part
        ds.StudyID = f"S{study:05d}"
        ds.AccessionNumber = f"ACC{study:07d}"

        ds.PatientName = f"BENCH^PATIENT^{patient:04d}"
        ds.PatientID = f"MRN{patient:04d}"
        ds.PatientBirthDate = f"{1940 + patient % 60:04d}{patient % 12 + 1:02d}{patient % 28 + 1:02d}"
        ds.PatientSex = "MF"[patient % 2]
        ds.ReferringPhysicianName = f"REFERRER^DOCTOR^{study % 37:02d}"
        ds.InstitutionName = "Bench General Hospital"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = f"2023{study % 12 + 1:02d}{study % 28 + 1:02d}"
        ds.StudyTime = "101500"

        path = args.out_dir / f"{i:06d}.dcm"
        ds.save_as(path)
        total_bytes += path.stat().st_size
        used[src_name] += 1

    n_studies = (args.count - 1) // args.study_size + 1
    n_patients = (args.count - 1) // args.patient_size + 1
    print(f"corpus: {args.count} files, {total_bytes / 1e6:.1f} MB, {n_studies} studies/series, "
          f"{n_patients} patients -> {args.out_dir}")
    for name, k in used.items():
        print(f"  {k:6d} x {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
