#!/usr/bin/env bash
# What the output guard costs, with and without it side by side in one run:
#   1) `deidgate anonymize` of N MR files (warm key store), [guard] enabled = true / false
#   2) storescu -> deidgate serve -> storescp, two gateways (guard on / off), CPU
#      seconds of each gateway process per instance (from /proc/PID/stat)
# ROUNDS (default 3) rounds alternate on and off so that load from other
# processes hits both alike; medians are reported with their ratio.
#
#   N=1000 ROUNDS=3 bash scripts/bench_guard.sh
#   DEIDGATE_BIN=/tmp/deidgate bash scripts/bench_guard.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-1000}"
ROUNDS="${ROUNDS:-3}"
export TCP_NODELAY=1
command -v storescu >/dev/null || { echo "dcmtk missing: run scripts/test.sh once" >&2; exit 1; }
if [ -n "${DEIDGATE_BIN:-}" ]; then BIN="$DEIDGATE_BIN"; else
    cargo build --release --quiet; BIN="$PWD/target/release/deidgate"; fi
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"; "$VENV/bin/pip" install --quiet pydicom
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/deidgate-guard.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
count() { find "$1" -type f 2>/dev/null | grep -cv '\.tmp' || true; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/t}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$VENV/bin/python" scripts/make_bench_corpus.py -n "$N" "$TMP/in" >/dev/null
for g in on off; do
    enabled=true; [ "$g" = off ] && enabled=false
    printf '[guard]\nenabled = %s\n' "$enabled" > "$TMP/anon-$g.toml"
    # Cold run once, so every timed run below is warm (key store known).
    "$BIN" anonymize --config "$TMP/anon-$g.toml" --data-dir "$TMP/data-$g" "$TMP/in" "$TMP/out-warmup-$g" >/dev/null 2>&1
done

# --- 1) offline anonymize
declare -A WALL CPU
for r in $(seq 1 "$ROUNDS"); do
    for g in on off; do
        rm -rf "$TMP/out-$g"
        /usr/bin/time -o "$TMP/time" -f '%e %U %S' "$BIN" anonymize --config "$TMP/anon-$g.toml" \
            --data-dir "$TMP/data-$g" "$TMP/in" "$TMP/out-$g" >/dev/null 2>&1
        read -r wall user sys < "$TMP/time"
        WALL[$g]+="$wall "; CPU[$g]+="$(echo "$user + $sys" | bc) "
        echo "anonymize round $r guard $g: wall $wall s, cpu $(echo "$user + $sys" | bc) s"
    done
done
for g in on off; do
    eval "AW_$g=$(echo "${WALL[$g]}" | tr ' ' '\n' | grep . | median)"
    eval "AC_$g=$(echo "${CPU[$g]}" | tr ' ' '\n' | grep . | median)"
done

# --- 2) gateway CPU per instance
P0=$(free_port)
mkdir -p "$TMP/scp"
storescp -aet STORESCP +uf -od "$TMP/scp" "$P0" >/dev/null 2>&1 & PIDS+=($!)
declare -A GPID GPORT
for g in on off; do
    enabled=true; [ "$g" = off ] && enabled=false
    port=$(free_port); http=$(free_port)
    cat > "$TMP/gw-$g.toml" <<TOML
[node]
port = $port
data_dir = "$TMP/gw-data-$g"
[http]
listen = "127.0.0.1:$http"
[guard]
enabled = $enabled
[[destination]]
name = "bench"
type = "dicom"
ae_title = "STORESCP"
host = "127.0.0.1"
port = $P0
TOML
    "$BIN" serve --config "$TMP/gw-$g.toml" >"$TMP/gw-$g.log" 2>&1 & GPID[$g]=$!; PIDS+=($!)
    GPORT[$g]=$port
    wait_port "$port"
done
wait_port "$P0"
declare -A GCPU
delivered=0
for r in $(seq 1 "$ROUNDS"); do
    for g in on off; do
        before=$(cpu_s "${GPID[$g]}")
        storescu -aec DEIDGATE +sd -nh 127.0.0.1 "${GPORT[$g]}" "$TMP/in" >/dev/null 2>&1
        delivered=$((delivered + N))
        while [ "$(count "$TMP/scp")" -lt "$delivered" ]; do sleep 0.05; done
        after=$(cpu_s "${GPID[$g]}")
        per=$(echo "scale=1; ($after - $before) * 1000000 / $N" | bc)
        GCPU[$g]+="$per "
        echo "gateway round $r guard $g: $per us CPU per instance"
    done
done
for g in on off; do
    eval "GC_$g=$(echo "${GCPU[$g]}" | tr ' ' '\n' | grep . | median)"
done
echo
echo "corpus: $N MR files, $(nproc) cores, $ROUNDS rounds, medians"
printf '| measure | guard on | guard off | on / off |\n|---|---|---|---|\n'
printf '| anonymize wall (s) | %s | %s | %.3f |\n' "$AW_on" "$AW_off" "$(echo "$AW_on / $AW_off" | bc -l)"
printf '| anonymize CPU (s) | %s | %s | %.3f |\n' "$AC_on" "$AC_off" "$(echo "$AC_on / $AC_off" | bc -l)"
printf '| gateway CPU per instance (us) | %s | %s | %.3f |\n' "$GC_on" "$GC_off" "$(echo "$GC_on / $GC_off" | bc -l)"
