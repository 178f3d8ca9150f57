#!/usr/bin/env bash
# Head MR series through the gateway: time from "series complete" (the
# gateway logs it when the quiet period ends) to the last remodeled slice
# arriving at storescp, for one 35-slice decubitus series; next to it, the
# same files sent by storescu straight to storescp.
#
#   bash scripts/bench_mri.sh                 # HFS, stand-in model ("box")
#   MODEL=remodeler SERIES=HFDL bash scripts/bench_mri.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERIES="${SERIES:-HFS}"
MODEL="${MODEL:-box}"
IN="$PWD/../shared/data/mri/decubitus_dicom/$SERIES"
export TCP_NODELAY=1
command -v storescu >/dev/null || { echo "dcmtk missing: run scripts/test.sh once" >&2; exit 1; }
N=$(find "$IN" -type f -name '*.dcm' | wc -l)

cargo build --release --quiet
BIN="$PWD/target/release/deidgate"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/deidgate-mri.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 400); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
count() { find "$1" -type f 2>/dev/null | wc -l; }
wait_count() { while [ "$(count "$1")" -lt "$2" ]; do sleep 0.02; done; }
now() { date +%s.%N; }

# A) storescu -> storescp
P1=$(free_port); mkdir -p "$TMP/a"
storescp -aet STORESCP -od "$TMP/a" "$P1" >/dev/null 2>&1 & PIDS+=($!)
wait_port "$P1"
t0=$(now)
storescu -aec STORESCP +sd 127.0.0.1 "$P1" "$IN" >/dev/null 2>&1
wait_count "$TMP/a" "$N"
A=$(echo "$(now) - $t0" | bc -l)

# B) storescu -> deidgate (MRI route) -> storescp
P2=$(free_port); P3=$(free_port); mkdir -p "$TMP/b"
storescp -aet STORESCP -od "$TMP/b" "$P2" >/dev/null 2>&1 & PIDS+=($!)
cat > "$TMP/gw.toml" <<TOML
[node]
port = $P3
data_dir = "$TMP/gw-data"
[http]
listen = ""
[mri]
model = "$MODEL"
quiet_secs = 1
[[destination]]
name = "bench"
type = "dicom"
ae_title = "STORESCP"
host = "127.0.0.1"
port = $P2
TOML
DEIDGATE_LOG=info "$BIN" --config "$TMP/gw.toml" serve >"$TMP/gw.log" 2>&1 & GW=$!; PIDS+=($GW)
wait_port "$P3"; wait_port "$P2"
t0=$(now)
storescu -aec DEIDGATE +sd 127.0.0.1 "$P3" "$IN" >/dev/null 2>&1
t_ack=$(now)
until grep -q "head MR series complete" "$TMP/gw.log"; do
    kill -0 "$GW" 2>/dev/null || { cat "$TMP/gw.log" >&2; exit 1; }
    sleep 0.01
done
t_complete=$(now)
until [ "$(count "$TMP/b")" -ge "$N" ]; do
    if grep -q "head MR series quarantined" "$TMP/gw.log"; then
        echo "the series went to quarantine:" >&2; grep "quarantined" "$TMP/gw.log" | tail -n 1 >&2; exit 1
    fi
    sleep 0.02
done
t_done=$(now)

printf '%s: %s slices, model %s, [mri] quiet_secs = 1, %s cores\n' "$SERIES" "$N" "$MODEL" "$(nproc)"
printf '%-52s %8.2f s\n' "storescu -> storescp (direct)" "$A"
printf '%-52s %8.2f s\n' "storescu -> deidgate, all acknowledged" "$(echo "$t_ack - $t0" | bc -l)"
printf '%-52s %8.2f s\n' "series complete -> all slices forwarded to storescp" "$(echo "$t_done - $t_complete" | bc -l)"
printf '%-52s %8.2f s\n' "first byte sent -> all slices forwarded (incl. quiet)" "$(echo "$t_done - $t0" | bc -l)"
