#!/usr/bin/env bash
# Gateway throughput, measured side by side with a peer in one run:
#   A) storescu -> storescp                        (DCMTK to DCMTK, the baseline)
#   B) storescu -> deidgate serve -> storescp      (metadata de-identification on)
# Both send the same N MR instances (default 1000) over loopback with
# TCP_NODELAY=1 for DCMTK. B is timed until the last forwarded instance has
# arrived at storescp. ROUNDS (default 3) rounds alternate A and B; reports
# each round, the median rates, their ratio, deidgate's peak RSS and CPU time.
#
#   N=1000 bash scripts/bench_gateway.sh
#   MAX_PDU=131072 N=1000 bash scripts/bench_gateway.sh   # the gateway's receive PDU size (default 16384, as storescp)
#   PERF="perf record -g -o /tmp/gw.perf" N=600 bash scripts/bench_gateway.sh   # profile the gateway
#   DEIDGATE_BIN=/tmp/deidgate-before bash scripts/bench_gateway.sh   # a prebuilt binary
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-1000}"
export TCP_NODELAY=1
command -v storescu >/dev/null || { echo "dcmtk missing: run scripts/test.sh once" >&2; exit 1; }

# DEIDGATE_BIN=path: time that binary (e.g. a build of an older commit).
if [ -n "${DEIDGATE_BIN:-}" ]; then
    BIN="$DEIDGATE_BIN"
else
    cargo build --release --quiet
    BIN="$PWD/target/release/deidgate"
fi
VENV=target/bench-venv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet pydicom
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/deidgate-gw.XXXXXX")"
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; return 1; }
count() { find "$1" -type f -name '*.*' 2>/dev/null | grep -v '\.tmp' | wc -l; }
wait_count() { # dir n
    while [ "$(count "$1")" -lt "$2" ]; do sleep 0.05; done
}

"$VENV/bin/python" scripts/make_bench_corpus.py -n "$N" "$TMP/in" >/dev/null
BYTES=$(du -sb "$TMP/in" | cut -f1)

# Both servers stay up; rounds alternate A and B so that load from other
# processes on a shared machine hits both paths alike. Medians are reported.
P1=$(free_port); P2=$(free_port); P3=$(free_port); P4=$(free_port)
mkdir -p "$TMP/a" "$TMP/b"
storescp -aet STORESCP -od "$TMP/a" "$P1" >/dev/null 2>&1 & PIDS+=($!)
storescp -aet STORESCP -od "$TMP/b" "$P2" >/dev/null 2>&1 & PIDS+=($!)
cat > "$TMP/gw.toml" <<TOML
[node]
port = $P3
data_dir = "$TMP/gw-data"
[scp]
max_pdu_length = ${MAX_PDU:-16384}
[http]
listen = "127.0.0.1:$P4"
[[destination]]
name = "bench"
type = "dicom"
ae_title = "STORESCP"
host = "127.0.0.1"
port = $P2
TOML
${PERF:-} "$BIN" --config "$TMP/gw.toml" serve >"$TMP/gw.log" 2>&1 & GW=$!; PIDS+=($GW)
wait_port "$P1"; wait_port "$P2"; wait_port "$P3"; wait_port "$P4"

ROUNDS="${ROUNDS:-3}"
# Each timed phase starts with no dirty pages left by the previous one.
settle_io() { sync; sleep 1; }
A_ALL=(); B_ALL=(); ACK_ALL=()
for r in $(seq 1 "$ROUNDS"); do
    # A) DCMTK -> DCMTK
    find "$TMP/a" -type f -delete
    settle_io
    t0=$(date +%s.%N)
    storescu -aec STORESCP +sd 127.0.0.1 "$P1" "$TMP/in" >/dev/null 2>&1
    wait_count "$TMP/a" "$N"
    t1=$(date +%s.%N)
    A_ALL+=("$(echo "$t1 - $t0" | bc -l)")
    # B) DCMTK -> deidgate -> DCMTK (timed until the last one has arrived)
    find "$TMP/b" -type f -delete
    settle_io
    t0=$(date +%s.%N)
    storescu -aec DEIDGATE +sd 127.0.0.1 "$P3" "$TMP/in" >/dev/null 2>&1
    t_ack=$(date +%s.%N)
    wait_count "$TMP/b" "$N"
    t1=$(date +%s.%N)
    B_ALL+=("$(echo "$t1 - $t0" | bc -l)")
    ACK_ALL+=("$(echo "$t_ack - $t0" | bc -l)")
    printf 'round %s: direct %.2f s, via deidgate %.2f s (acked %.2f s), ratio %.2f\n' "$r" \
        "${A_ALL[-1]}" "${B_ALL[-1]}" "${ACK_ALL[-1]}" "$(echo "${A_ALL[-1]} / ${B_ALL[-1]}" | bc -l)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
A=$(median "${A_ALL[@]}"); B=$(median "${B_ALL[@]}"); B_ACK=$(median "${ACK_ALL[@]}")
RSS=$(awk '/VmHWM/ {print $2}' "/proc/$GW/status")
# CPU seconds (user + system) the gateway used over all rounds.
GW_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$GW/stat")

rate() { echo "scale=1; $N / $1" | bc -l; }
printf '%s instances, %s MB, %s cores, TCP_NODELAY=1, median of %s rounds\n' "$N" "$((BYTES / 1000000))" "$(nproc)" "$ROUNDS"
printf '%-38s %8s %10s\n' "path" "wall s" "inst/s"
printf '%-38s %8.2f %10s\n' "storescu -> storescp" "$A" "$(rate "$A")"
printf '%-38s %8.2f %10s\n' "storescu -> deidgate (all acked)" "$B_ACK" "$(rate "$B_ACK")"
printf '%-38s %8.2f %10s\n' "storescu -> deidgate -> storescp" "$B" "$(rate "$B")"
printf 'ratio (deidgate path / direct path, instances per second): %.2f\n' "$(echo "$A / $B" | bc -l)"
printf 'deidgate peak RSS: %s MB; CPU %s s (%.2f ms per instance)\n' "$((RSS / 1024))" "$GW_CPU" "$(echo "$GW_CPU * 1000 / ($N * $ROUNDS)" | bc -l)"
# The disk's share of the sender's wait: the spool log's sync before each Success.
curl -s "http://127.0.0.1:$P4/metrics" | awk '
    /^deidgate_spool_syncs_total/ {n = $2}
    /^deidgate_spool_sync_seconds_total/ {t = $2}
    END {if (n > 0) printf "spool log sync before Success: %d syncs, mean %.2f ms\n", n, t * 1000 / n}'
