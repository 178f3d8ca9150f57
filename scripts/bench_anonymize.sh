#!/usr/bin/env bash
# Benchmark `deidgate anonymize` against Python de-identifiers on one corpus.
#
#   bash scripts/bench_anonymize.sh
#
# Environment:
#   N=1000            number of corpus files (built from ../shared/data/dicom/mr)
#   JOBS=             if set, passed to deidgate as --jobs "$JOBS"
#   DEIDGATE_CONFIG=  if set, passed to deidgate as --config "$DEIDGATE_CONFIG"
#   DEIDGATE_BIN=     use this prebuilt binary instead of `cargo build --release`
#                     + target/release/deidgate
#   SKIP_DEIDGATE=1   only time the Python tools (no cargo build); ratio is n/a
#   SKIP_PYTHON=1     only time deidgate
#   KEEP_TMP=1        keep the temp dir (corpus + outputs) instead of deleting it
#
# Tools timed on the same input (same temp dir, page cache warm for all):
#   deidgate (cold)   first run: creates the secrets / key store in --data-dir
#   deidgate (warm)   second run, same --data-dir, fresh output dir
#   dicognito         python -m dicognito -q -o OUT (on a copy of the input)
#   dicom-anonymizer  dicom-anonymizer IN OUT (if it installed cleanly)
# Timing: /usr/bin/time -f '%e %M %U %S' (wall s, peak RSS KB, user s, sys s).
# Output: a table on stdout and target/bench_anonymize.tsv; tool logs in
# target/bench_anonymize_logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

N="${N:-1000}"
VENV="$REPO_ROOT/target/bench-venv"
TSV="$REPO_ROOT/target/bench_anonymize.tsv"
LOGDIR="$REPO_ROOT/target/bench_anonymize_logs"
DEIDGATE="${DEIDGATE_BIN:-$REPO_ROOT/target/release/deidgate}"
SKIP_DEIDGATE="${SKIP_DEIDGATE:-0}"
SKIP_PYTHON="${SKIP_PYTHON:-0}"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench_anonymize.sh: %s\n' "$*" >&2; exit 1; }

case "$N" in ''|*[!0-9]*) die "N must be a positive integer (got '$N')";; esac
[ "$N" -ge 1 ] || die "N must be >= 1"

# ---------------------------------------------------------------- privileges
SUDO=()
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
fi
as_root() {
    if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        log "need root (or sudo) to run: $*"
        return 1
    fi
    ${SUDO[@]+"${SUDO[@]}"} "$@"
}

# ---------------------------------------------------------------- GNU time
if [ ! -x /usr/bin/time ]; then
    log "installing package 'time' (GNU time)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends time
fi
[ -x /usr/bin/time ] || die "/usr/bin/time is missing"

# ---------------------------------------------------------------- venv
HAVE_DICOGNITO=0
HAVE_DA=0
# pydicom is needed for the corpus even with SKIP_PYTHON=1.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
else
    log "reusing venv $VENV"
fi
PY="$VENV/bin/python"
if ! "$PY" -c 'import pydicom, dicognito' >/dev/null 2>&1; then
    log "pip install dicognito pydicom"
    "$PY" -m pip install --quiet dicognito pydicom
fi
"$PY" -c 'import pydicom' || die "pydicom is not importable in $VENV"
if "$PY" -c 'import dicognito' >/dev/null 2>&1; then
    HAVE_DICOGNITO=1
fi
if [ "$SKIP_PYTHON" != 1 ]; then
    if ! "$PY" -c 'import dicomanonymizer' >/dev/null 2>&1; then
        log "pip install dicom-anonymizer (optional)"
        if ! "$PY" -m pip install --quiet dicom-anonymizer; then
            echo "NOTE: dicom-anonymizer failed to install; continuing with dicognito only."
        fi
    fi
    if "$PY" -c 'import dicomanonymizer' >/dev/null 2>&1 && [ -x "$VENV/bin/dicom-anonymizer" ]; then
        HAVE_DA=1
    else
        echo "NOTE: dicom-anonymizer is not available; benchmarking dicognito only."
    fi
fi
pyver() { "$PY" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

# ---------------------------------------------------------------- build
if [ "$SKIP_DEIDGATE" != 1 ]; then
    if [ -z "${DEIDGATE_BIN:-}" ]; then
        log "cargo build --release"
        cargo build --release
    fi
    [ -x "$DEIDGATE" ] || die "$DEIDGATE is missing or not executable"
fi

# ---------------------------------------------------------------- temp dir
TMP="$(mktemp -d "${TMPDIR:-/tmp}/deidgate-bench.XXXXXX")"
cleanup() {
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "kept temp dir: $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"

# ---------------------------------------------------------------- corpus
IN="$TMP/in"
log "building corpus of $N files"
"$PY" "$REPO_ROOT/scripts/make_bench_corpus.py" "$IN" -n "$N"
n_in="$(find "$IN" -type f -name '*.dcm' | wc -l)"
[ "$n_in" -eq "$N" ] || die "corpus has $n_in files, expected $N"
in_mib="$(du -sm "$IN" | cut -f1)"

# ---------------------------------------------------------------- timing
# Each result: name, wall s, peak RSS KB, user s, sys s, exit code, output count.
ROWS=()
FAILED=0

count_dcm() {  # *.dcm files under $1, excluding anything in a quarantine dir
    [ -d "$1" ] || { echo 0; return; }
    find "$1" -type f -name '*.dcm' -not -ipath '*quarantine*' | wc -l
}

# timed NAME OUTDIR CMD...   (runs CMD under GNU time, records a row)
timed() {
    local name="$1" outdir="$2"; shift 2
    local tfile="$TMP/time.$name" logf="$LOGDIR/$name.log" rc=0
    log "timing $name: $*"
    /usr/bin/time -f '%e %M %U %S' -o "$tfile" "$@" >"$logf" 2>&1 || rc=$?
    local wall=0 rss=0 usr=0 sys=0
    # GNU time may prepend "Command exited with non-zero status N".
    if [ -s "$tfile" ]; then
        read -r wall rss usr sys < <(tail -n1 "$tfile") || true
    fi
    [ "$rc" -ne 0 ] || [ -s "$tfile" ] || rc=255
    local nout
    nout="$(count_dcm "$outdir")"
    if [ "$rc" -ne 0 ]; then
        echo "WARNING: $name exited with status $rc; last lines of $logf:"
        tail -n 15 "$logf" | sed 's/^/    /'
    fi
    ROWS+=("$name $wall $rss $usr $sys $rc $nout")
}

DG_ARGS=()
[ -n "${JOBS:-}" ] && DG_ARGS+=(--jobs "$JOBS")
[ -n "${DEIDGATE_CONFIG:-}" ] && DG_ARGS+=(--config "$DEIDGATE_CONFIG")

if [ "$SKIP_DEIDGATE" != 1 ]; then
    DG_DATA="$TMP/dg-data"
    OUT0="$TMP/out0-deidgate-cold"
    OUT1="$TMP/out1"
    timed deidgate-cold "$OUT0" \
        "$DEIDGATE" anonymize "$IN" "$OUT0" --data-dir "$DG_DATA" ${DG_ARGS[@]+"${DG_ARGS[@]}"}
    timed deidgate-warm "$OUT1" \
        "$DEIDGATE" anonymize "$IN" "$OUT1" --data-dir "$DG_DATA" ${DG_ARGS[@]+"${DG_ARGS[@]}"}
fi

if [ "$SKIP_PYTHON" != 1 ]; then
    if [ "$HAVE_DICOGNITO" = 1 ]; then
        # Separate copy so nothing a tool does can affect another's input.
        cp -r "$IN" "$TMP/in-dicognito"
        # `python -m dicognito`: the console script of dicognito 0.19.0 calls
        # main() without its required argument and crashes.
        timed dicognito "$TMP/out-dicognito" \
            "$PY" -m dicognito -q -o "$TMP/out-dicognito" "$TMP/in-dicognito"
    else
        echo "NOTE: dicognito is not importable; skipped."
    fi
    if [ "$HAVE_DA" = 1 ]; then
        cp -r "$IN" "$TMP/in-dicom-anonymizer"
        mkdir -p "$TMP/out-dicom-anonymizer"   # it requires an existing folder
        # TQDM_DISABLE: no progress bar (it only writes to the log anyway).
        TQDM_DISABLE=1 timed dicom-anonymizer "$TMP/out-dicom-anonymizer" \
            "$VENV/bin/dicom-anonymizer" "$TMP/in-dicom-anonymizer" "$TMP/out-dicom-anonymizer"
    fi
fi

# ---------------------------------------------------------------- report
DG_VERSION="-"
if [ "$SKIP_DEIDGATE" != 1 ]; then
    DG_VERSION="$("$DEIDGATE" --version 2>/dev/null | head -n1 || true)"
    [ -n "$DG_VERSION" ] || DG_VERSION="-"
fi

echo
echo "corpus: $N files, ${in_mib} MiB, $(nproc) CPU cores; deidgate: $DG_VERSION;" \
     "dicognito $( [ "$HAVE_DICOGNITO" = 1 ] && pyver dicognito || echo n/a);" \
     "dicom-anonymizer $( [ "$HAVE_DA" = 1 ] && pyver dicom-anonymizer || echo n/a);" \
     "pydicom $(pyver pydicom)"

printf '%s\n' "${ROWS[@]+"${ROWS[@]}"}" >"$TMP/rows.txt"
"$PY" - "$N" "$TSV" "$TMP/rows.txt" <<'PYEOF'
import sys
n = int(sys.argv[1]); tsv_path = sys.argv[2]
rows = []
for line in open(sys.argv[3]).read().splitlines():
    if not line.strip():
        continue
    name, wall, rss, usr, sys_, rc, nout = line.split()
    wall = float(wall); rss_mb = int(rss) / 1024.0; cpu = float(usr) + float(sys_)
    rows.append(dict(name=name, wall=wall, ms=wall * 1000.0 / n, fps=(n / wall) if wall > 0 else float("inf"),
                     rss=rss_mb, cpu=cpu, rc=int(rc), out=int(nout)))
ref = next((r for r in rows if r["name"] == "deidgate-warm" and r["rc"] == 0), None)
for r in rows:
    if r["name"].startswith("deidgate"):
        r["ratio"] = "1.00" if r is ref else "-"
    elif ref and ref["ms"] > 0 and r["rc"] == 0:
        r["ratio"] = f"{r['ms'] / ref['ms']:.2f}"
    else:
        r["ratio"] = "n/a"
    r["status"] = "ok" if r["rc"] == 0 else f"exit {r['rc']}"

hdr = ["tool", "files", "out", "wall_s", "ms_per_file", "files_per_s", "peak_rss_mb", "cpu_s", "ratio_vs_deidgate", "status"]
def cells(r):
    return [r["name"], str(n), str(r["out"]), f"{r['wall']:.2f}", f"{r['ms']:.2f}", f"{r['fps']:.1f}",
            f"{r['rss']:.1f}", f"{r['cpu']:.2f}", r["ratio"], r["status"]]
pretty = ["tool", "files", "out", "wall s", "ms/file", "files/s", "peak RSS MB", "cpu s", "ratio (x deidgate)", "status"]
table = [pretty] + [cells(r) for r in rows]
w = [max(len(row[i]) for row in table) for i in range(len(pretty))]
for k, row in enumerate(table):
    print("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(row)))
    if k == 0:
        print("  ".join("-" * x for x in w))
with open(tsv_path, "w") as f:
    f.write("\t".join(hdr) + "\n")
    for r in rows:
        f.write("\t".join(cells(r)) + "\n")
print(f"\nratio = tool ms/file / deidgate (warm) ms/file; TSV: {tsv_path}")
PYEOF

# ---------------------------------------------------------------- checks
if [ "$SKIP_DEIDGATE" != 1 ]; then
    for row in "${ROWS[@]}"; do
        read -r name _ _ _ _ rc nout <<<"$row"
        case "$name" in deidgate-*) ;; *) continue;; esac
        outdir="$OUT1"; [ "$name" = deidgate-cold ] && outdir="$OUT0"
        echo "$name: exit $rc, $nout .dcm output files (excluding quarantine) of $N"
        nq="$( { find "$outdir" "$DG_DATA" -ipath '*quarantine*' -type f 2>/dev/null || true; } | wc -l)"
        [ "$nq" -eq 0 ] || echo "  ($nq files under a quarantine path)"
        if [ "$rc" -ne 0 ] || [ "$nout" -ne "$N" ]; then
            FAILED=1
        fi
    done
fi
for row in "${ROWS[@]+"${ROWS[@]}"}"; do
    read -r name _ _ _ _ rc nout <<<"$row"
    case "$name" in deidgate-*) continue;; esac
    echo "$name: exit $rc, $nout .dcm output files of $N"
done

if [ "$FAILED" -ne 0 ]; then
    echo "FAIL: deidgate did not produce $N output files cleanly (logs: $LOGDIR)" >&2
    exit 1
fi
