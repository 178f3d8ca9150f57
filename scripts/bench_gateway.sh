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
#   MODE=tls N=1000 bash scripts/bench_gateway.sh   # adds DICOM TLS paths, on the same corpus:
#     C) storescu +tls -> storescp +tls                    (DCMTK to DCMTK over TLS)
#     D) storescu +tls -> deidgate TLS port -> storescp +tls (mutual TLS both ways,
#        a second gateway; certificates made with openssl in the temp dir)
#   MODE=stow N=1000 bash scripts/bench_gateway.sh  # adds a DICOMweb path, same corpus:
#     E) storescu -> deidgate -> Orthanc by STOW-RS (a second gateway, Orthanc
#        with Debian's orthanc-dicomweb plugin), timed until the gateway counts
#        every instance delivered (listed in the archive's STOW-RS response)
#   MODE=postgres N=1000 bash scripts/bench_gateway.sh  # adds the shared key store:
#     F) storescu -> deidgate ([keystore] backend = "postgres") -> storescp, a
#        second gateway on a throw-away PostgreSQL cluster (initdb/pg_ctl as
#        'nobody' when run as root); reports its rate over B's (sled)
#   MODE=replicas N=1000 bash scripts/bench_gateway.sh  # MODE=postgres, plus:
#     G) two storescu at once (half the corpus each) -> the postgres gateway
#     H) the same two -> HAProxy (round robin) -> two postgres gateways
#        (F's and a second replica, one data directory each); reports H over G
#   MODE=replicas CHEST_N=24 N=1000 bash scripts/bench_gateway.sh  # plus, with the
#     chest route on (the default config: chest model, then the text route):
#     I) two storescu at once (CHEST_N/2 chest CRs each) -> one postgres gateway
#     J) the same two -> HAProxy -> the two replicas
#     The CRs are copies of ../shared/data/dicom/cr_dx/RG1_UNCR.dcm (1841x1955,
#     BodyPartExamined CHEST) with new UIDs; reports instances/s, the ratio J
#     over I, and the gateways' CPU seconds per instance, from which the rate
#     on separate machines is predicted (replicas x cores / CPU s per instance).
#     CHEST_SOURCES="RG1_UNCR.dcm RG3_J2KI.dcm" picks other files of cr_dx.
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
PGDIR=""; PGRUN=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "$PGDIR" ]; then
        ${PGRUN[@]+"${PGRUN[@]}"} "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate -w stop >/dev/null 2>&1 || true
        rm -rf "$PGDIR"
    fi
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

MODE="${MODE:-plain}"
if [ "$MODE" = tls ]; then
    # A test PKI: one CA, one certificate for 127.0.0.1 used by every peer
    # (server and client auth).
    PKI="$TMP/pki"; mkdir -p "$PKI"
    (cd "$PKI"
     openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=bench CA" 2>/dev/null
     printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' > leaf.ext
     openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=localhost" 2>/dev/null
     openssl x509 -req -in leaf.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out leaf.crt -days 2 -extfile leaf.ext 2>/dev/null)
    TLS_ARGS=(+tls "$PKI/leaf.key" "$PKI/leaf.crt" +cf "$PKI/ca.crt")
    P5=$(free_port); P6=$(free_port); P7=$(free_port); P8=$(free_port); P9=$(free_port)
    mkdir -p "$TMP/c" "$TMP/d"
    storescp -aet STORESCP "${TLS_ARGS[@]}" -od "$TMP/c" "$P5" >/dev/null 2>&1 & PIDS+=($!)
    storescp -aet STORESCP "${TLS_ARGS[@]}" -od "$TMP/d" "$P6" >/dev/null 2>&1 & PIDS+=($!)
    cat > "$TMP/gw-tls.toml" <<TOML
[node]
port = $P7
data_dir = "$TMP/gw-tls-data"
[scp]
max_pdu_length = ${MAX_PDU:-16384}
tls_cert = "$PKI/leaf.crt"
tls_key = "$PKI/leaf.key"
tls_client_ca = "$PKI/ca.crt"
tls_port = $P8
[http]
listen = "127.0.0.1:$P9"
[[destination]]
name = "bench"
type = "dicom"
ae_title = "STORESCP"
host = "127.0.0.1"
port = $P6
tls = true
ca = "$PKI/ca.crt"
client_cert = "$PKI/leaf.crt"
client_key = "$PKI/leaf.key"
TOML
    "$BIN" --config "$TMP/gw-tls.toml" serve >"$TMP/gw-tls.log" 2>&1 & GW_TLS=$!; PIDS+=($GW_TLS)
    wait_port "$P5"; wait_port "$P6"; wait_port "$P7"; wait_port "$P8"
fi
if [ "$MODE" = stow ]; then
    PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so
    [ -f "$PLUGIN" ] || { echo "orthanc-dicomweb missing: run scripts/test.sh once" >&2; exit 1; }
    P10=$(free_port); P11=$(free_port); P12=$(free_port); P13=$(free_port)
    cat > "$TMP/orthanc.json" <<JSON
{"Name": "bench", "StorageDirectory": "$TMP/orthanc", "IndexDirectory": "$TMP/orthanc",
 "StorageCompression": false, "DicomAet": "ORTHANC", "DicomPort": $P10, "HttpPort": $P11,
 "RemoteAccessAllowed": false, "AuthenticationEnabled": false, "OverwriteInstances": true,
 "Plugins": ["$PLUGIN"], "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
JSON
    Orthanc "$TMP/orthanc.json" >/dev/null 2>"$TMP/orthanc.log" & PIDS+=($!)
    cat > "$TMP/gw-stow.toml" <<TOML
[node]
port = $P12
data_dir = "$TMP/gw-stow-data"
[scp]
max_pdu_length = ${MAX_PDU:-16384}
[http]
listen = "127.0.0.1:$P13"
[[destination]]
name = "bench"
type = "stow"
url = "http://127.0.0.1:$P11/dicom-web"
TOML
    "$BIN" --config "$TMP/gw-stow.toml" serve >"$TMP/gw-stow.log" 2>&1 & GW_STOW=$!; PIDS+=($GW_STOW)
    wait_port "$P11"; wait_port "$P12"; wait_port "$P13"
fi
if [ "$MODE" = postgres ] || [ "$MODE" = replicas ]; then
    PGBIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
    [ -x "$PGBIN/initdb" ] || { echo "postgresql missing: run scripts/test.sh once" >&2; exit 1; }
    # Outside $TMP (mode 0700): the server runs as 'nobody' when we are root.
    PGDIR="$(mktemp -d /tmp/deidgate-bench-pg.XXXXXX)"
    printf 'bench\n' > "$PGDIR/pw"
    if [ "$(id -u)" -eq 0 ]; then chown -R nobody:nogroup "$PGDIR"; PGRUN=(runuser -u nobody --); fi
    ${PGRUN[@]+"${PGRUN[@]}"} "$PGBIN/initdb" -D "$PGDIR/data" -U deidgate --auth=scram-sha-256 \
        --pwfile "$PGDIR/pw" -E UTF8 --no-locale >/dev/null
    PGPORT=$(free_port); P14=$(free_port); P15=$(free_port); P16=$(free_port)
    ${PGRUN[@]+"${PGRUN[@]}"} "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" \
        -o "-p $PGPORT -c listen_addresses=127.0.0.1 -k $PGDIR" -w start >/dev/null
    printf 'bench\n' > "$TMP/pgpass"; chmod 600 "$TMP/pgpass"
    mkdir -p "$TMP/f"
    storescp -aet STORESCP -od "$TMP/f" "$P14" >/dev/null 2>&1 & PIDS+=($!)
    cat > "$TMP/gw-pg.toml" <<TOML
[node]
port = $P15
data_dir = "$TMP/gw-pg-data"
[scp]
max_pdu_length = ${MAX_PDU:-16384}
[http]
listen = "127.0.0.1:$P16"
[keystore]
backend = "postgres"
url = "postgres://deidgate@127.0.0.1:$PGPORT/postgres"
password_file = "$TMP/pgpass"
[[destination]]
name = "bench"
type = "dicom"
ae_title = "STORESCP"
host = "127.0.0.1"
port = $P14
TOML
    "$BIN" --config "$TMP/gw-pg.toml" serve >"$TMP/gw-pg.log" 2>&1 & GW_PG=$!; PIDS+=($GW_PG)
    wait_port "$P14"; wait_port "$P15"; wait_port "$P16"
fi
if [ "$MODE" = replicas ]; then
    command -v haproxy >/dev/null || { echo "haproxy missing: run scripts/test.sh once" >&2; exit 1; }
    P17=$(free_port); P18=$(free_port); P19=$(free_port)
    # The second replica: the same config but for its data directory and ports.
    sed -e "s/^port = $P15\$/port = $P17/" -e "s#gw-pg-data#gw-pg2-data#" \
        -e "s/127.0.0.1:$P16/127.0.0.1:$P18/" "$TMP/gw-pg.toml" > "$TMP/gw-pg2.toml"
    # Both replicas share the secrets file: the first one's (created at its start).
    printf '[secrets]\npath = "%s"\n' "$TMP/gw-pg-data/secrets.toml" >> "$TMP/gw-pg2.toml"
    "$BIN" --config "$TMP/gw-pg2.toml" serve >"$TMP/gw-pg2.log" 2>&1 & GW_PG2=$!; PIDS+=($GW_PG2)
    cat > "$TMP/haproxy.cfg" <<CFG
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend dicom
    bind 127.0.0.1:$P19
    default_backend gateways
backend gateways
    balance roundrobin
    server r1 127.0.0.1:$P15
    server r2 127.0.0.1:$P17
CFG
    haproxy -db -f "$TMP/haproxy.cfg" >/dev/null 2>&1 & PIDS+=($!)
    wait_port "$P17"; wait_port "$P19"
    mkdir -p "$TMP/in1" "$TMP/in2"
    i=0
    for f in "$TMP"/in/*; do
        if [ $((i % 2)) -eq 0 ]; then ln "$f" "$TMP/in1/"; else ln "$f" "$TMP/in2/"; fi
        i=$((i + 1))
    done
fi
CHEST_N="${CHEST_N:-0}"
if [ "$MODE" = replicas ] && [ "$CHEST_N" -gt 0 ]; then
    # Chest radiographs, half for each sender.
    # shellcheck disable=SC2086
    "$VENV/bin/python" scripts/make_bench_corpus.py -n "$CHEST_N" "$TMP/chest" \
        --source-dir ../shared/data/dicom/cr_dx --sources ${CHEST_SOURCES:-RG1_UNCR.dcm} \
        --body-part CHEST --study-size 1 --patient-size 1 --seed deidgate-chest >/dev/null
    mkdir -p "$TMP/chest1" "$TMP/chest2"
    i=0
    for f in "$TMP"/chest/*; do
        if [ $((i % 2)) -eq 0 ]; then ln "$f" "$TMP/chest1/"; else ln "$f" "$TMP/chest2/"; fi
        i=$((i + 1))
    done
    CHEST_BYTES=$(du -sb "$TMP/chest" | cut -f1)
fi
# Two storescu at once, one association each, to port $1 (from $2 1 and 2).
send_two() {
    local src="${2:-in}"
    storescu -aec DEIDGATE +sd 127.0.0.1 "$1" "$TMP/${src}1" >/dev/null 2>&1 & local s1=$!
    storescu -aec DEIDGATE +sd 127.0.0.1 "$1" "$TMP/${src}2" >/dev/null 2>&1 & local s2=$!
    wait "$s1" "$s2"
}
# CPU ticks (user + system) of the processes $@.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
HZ=$(getconf CLK_TCK)
stow_delivered() {
    curl -s "http://127.0.0.1:$P13/metrics" | awk '/^deidgate_forward_delivered_total\{destination="bench"\}/ {print $2}'
}

ROUNDS="${ROUNDS:-3}"
# Each timed phase starts with no dirty pages left by the previous one.
settle_io() { sync; sleep 1; }
# Two senders to PORT, from an empty archive folder until N files arrived:
# prints the wall seconds and the CPU seconds per file of both PostgreSQL
# gateways. timed_two PORT N [send_two's set]
timed_two() {
    local c0 c1 t0 t1
    find "$TMP/f" -type f -delete
    settle_io
    c0=$(cpu_ticks "$GW_PG" "$GW_PG2"); t0=$(date +%s.%N)
    send_two "$1" ${3:+"$3"} >&2
    wait_count "$TMP/f" "$2" >&2
    t1=$(date +%s.%N); c1=$(cpu_ticks "$GW_PG" "$GW_PG2")
    echo "$(echo "$t1 - $t0" | bc -l) $(echo "($c1 - $c0) / $HZ / $2" | bc -l)"
}
G_ALL=(); H_ALL=(); I_ALL=(); J_ALL=(); ICPU_ALL=(); JCPU_ALL=(); F_ALL=(); FACK_ALL=(); A_ALL=(); B_ALL=(); ACK_ALL=(); C_ALL=(); D_ALL=(); DACK_ALL=(); E_ALL=(); EACK_ALL=()
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
    if [ "$MODE" = stow ]; then
        # E) DCMTK -> deidgate -> Orthanc (STOW-RS)
        settle_io
        want=$((r * N))
        t0=$(date +%s.%N)
        storescu -aec DEIDGATE +sd 127.0.0.1 "$P12" "$TMP/in" >/dev/null 2>&1
        t_ack=$(date +%s.%N)
        while [ "$(stow_delivered)" != "$want" ]; do sleep 0.05; done
        t1=$(date +%s.%N)
        E_ALL+=("$(echo "$t1 - $t0" | bc -l)")
        EACK_ALL+=("$(echo "$t_ack - $t0" | bc -l)")
        printf 'round %s STOW-RS: via deidgate to Orthanc %.2f s (acked %.2f s), ratio to C-STORE path %.2f\n' "$r" \
            "${E_ALL[-1]}" "${EACK_ALL[-1]}" "$(echo "${B_ALL[-1]} / ${E_ALL[-1]}" | bc -l)"
    fi
    if [ "$MODE" = replicas ]; then
        # G) two senders -> one postgres gateway; H) two senders -> HAProxy -> two
        read -r wall _ < <(timed_two "$P15" "$N")
        G_ALL+=("$wall")
        read -r wall _ < <(timed_two "$P19" "$N")
        H_ALL+=("$wall")
        printf 'round %s replicas: one gateway %.2f s, two behind HAProxy %.2f s, ratio %.2f\n' "$r" \
            "${G_ALL[-1]}" "${H_ALL[-1]}" "$(echo "${G_ALL[-1]} / ${H_ALL[-1]}" | bc -l)"
    fi
    if [ "$MODE" = replicas ] && [ "$CHEST_N" -gt 0 ]; then
        # I) chest CRs: two senders -> one gateway; J) -> HAProxy -> two.
        read -r wall cpu < <(timed_two "$P15" "$CHEST_N" chest)
        I_ALL+=("$wall"); ICPU_ALL+=("$cpu")
        read -r wall cpu < <(timed_two "$P19" "$CHEST_N" chest)
        J_ALL+=("$wall"); JCPU_ALL+=("$cpu")
        printf 'round %s chest replicas: one gateway %.2f s (%.2f CPU s/CR), two behind HAProxy %.2f s (%.2f CPU s/CR), ratio %.2f\n' "$r" \
            "${I_ALL[-1]}" "${ICPU_ALL[-1]}" "${J_ALL[-1]}" "${JCPU_ALL[-1]}" "$(echo "${I_ALL[-1]} / ${J_ALL[-1]}" | bc -l)"
    fi
    if [ "$MODE" = postgres ] || [ "$MODE" = replicas ]; then
        # F) DCMTK -> deidgate on PostgreSQL -> DCMTK
        find "$TMP/f" -type f -delete
        settle_io
        t0=$(date +%s.%N)
        storescu -aec DEIDGATE +sd 127.0.0.1 "$P15" "$TMP/in" >/dev/null 2>&1
        t_ack=$(date +%s.%N)
        wait_count "$TMP/f" "$N"
        t1=$(date +%s.%N)
        F_ALL+=("$(echo "$t1 - $t0" | bc -l)")
        FACK_ALL+=("$(echo "$t_ack - $t0" | bc -l)")
        printf 'round %s PostgreSQL: via deidgate %.2f s (acked %.2f s), rate over the sled gateway %.2f\n' "$r" \
            "${F_ALL[-1]}" "${FACK_ALL[-1]}" "$(echo "${B_ALL[-1]} / ${F_ALL[-1]}" | bc -l)"
    fi
    [ "$MODE" = tls ] || continue
    # C) DCMTK -> DCMTK over TLS
    find "$TMP/c" -type f -delete
    settle_io
    t0=$(date +%s.%N)
    storescu -aec STORESCP "${TLS_ARGS[@]}" +sd 127.0.0.1 "$P5" "$TMP/in" >/dev/null 2>&1
    wait_count "$TMP/c" "$N"
    t1=$(date +%s.%N)
    C_ALL+=("$(echo "$t1 - $t0" | bc -l)")
    # D) DCMTK -> deidgate -> DCMTK, TLS on both hops
    find "$TMP/d" -type f -delete
    settle_io
    t0=$(date +%s.%N)
    storescu -aec DEIDGATE "${TLS_ARGS[@]}" +sd 127.0.0.1 "$P8" "$TMP/in" >/dev/null 2>&1
    t_ack=$(date +%s.%N)
    wait_count "$TMP/d" "$N"
    t1=$(date +%s.%N)
    D_ALL+=("$(echo "$t1 - $t0" | bc -l)")
    DACK_ALL+=("$(echo "$t_ack - $t0" | bc -l)")
    printf 'round %s TLS: direct %.2f s, via deidgate %.2f s (acked %.2f s), ratio %.2f\n' "$r" \
        "${C_ALL[-1]}" "${D_ALL[-1]}" "${DACK_ALL[-1]}" "$(echo "${C_ALL[-1]} / ${D_ALL[-1]}" | bc -l)"
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
if [ "$MODE" = tls ]; then
    C=$(median "${C_ALL[@]}"); D=$(median "${D_ALL[@]}"); D_ACK=$(median "${DACK_ALL[@]}")
    printf '%-38s %8.2f %10s\n' "storescu -> storescp (TLS)" "$C" "$(rate "$C")"
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate (TLS, all acked)" "$D_ACK" "$(rate "$D_ACK")"
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate -> storescp (TLS)" "$D" "$(rate "$D")"
    printf 'ratio TLS deidgate path / plain deidgate path: %.2f\n' "$(echo "$B / $D" | bc -l)"
    printf 'ratio TLS deidgate path / TLS direct path: %.2f\n' "$(echo "$C / $D" | bc -l)"
    printf 'ratio TLS direct / plain direct: %.2f\n' "$(echo "$A / $C" | bc -l)"
    RSS_TLS=$(awk '/VmHWM/ {print $2}' "/proc/$GW_TLS/status")
    printf 'deidgate (TLS) peak RSS: %s MB\n' "$((RSS_TLS / 1024))"
fi
if [ "$MODE" = stow ]; then
    E=$(median "${E_ALL[@]}"); E_ACK=$(median "${EACK_ALL[@]}")
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate (STOW, all acked)" "$E_ACK" "$(rate "$E_ACK")"
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate -> Orthanc STOW" "$E" "$(rate "$E")"
    printf 'ratio STOW-RS deidgate path / C-STORE deidgate path (instances per second): %.2f\n' "$(echo "$B / $E" | bc -l)"
    printf 'ratio STOW-RS deidgate path / direct path: %.2f\n' "$(echo "$A / $E" | bc -l)"
    RSS_STOW=$(awk '/VmHWM/ {print $2}' "/proc/$GW_STOW/status")
    printf 'deidgate (STOW) peak RSS: %s MB\n' "$((RSS_STOW / 1024))"
fi
if [ "$MODE" = replicas ]; then
    G=$(median "${G_ALL[@]}"); H=$(median "${H_ALL[@]}")
    printf '%-38s %8.2f %10s\n' "2 x storescu -> 1 deidgate/pg" "$G" "$(rate "$G")"
    printf '%-38s %8.2f %10s\n' "2 x storescu -> HAProxy -> 2 deidgate/pg" "$H" "$(rate "$H")"
    printf 'ratio two replicas / one (instances per second): %.2f\n' "$(echo "$G / $H" | bc -l)"
    if [ "$CHEST_N" -gt 0 ]; then
        I=$(median "${I_ALL[@]}"); J=$(median "${J_ALL[@]}")
        ICPU=$(median "${ICPU_ALL[@]}"); JCPU=$(median "${JCPU_ALL[@]}")
        crate() { echo "scale=2; $CHEST_N / $1" | bc -l; }
        printf 'chest route on: %s CRs, %s MB per round\n' "$CHEST_N" "$((CHEST_BYTES / 1000000))"
        printf '%-38s %8.2f %10.2f\n' "2 x storescu -> 1 deidgate/pg (chest)" "$I" "$(crate "$I")"
        printf '%-38s %8.2f %10.2f\n' "2 x storescu -> HAProxy -> 2 (chest)" "$J" "$(crate "$J")"
        printf 'ratio two replicas / one, chest (instances per second): %.2f\n' "$(echo "$I / $J" | bc -l)"
        printf 'gateway CPU per chest CR: %.2f s with one replica, %.2f s with two (both on these %s cores)\n' \
            "$ICPU" "$JCPU" "$(nproc)"
        printf 'predicted on separate %s-core machines: one replica <= %.2f CR/s (cores / CPU s per CR), two <= %.2f CR/s\n' \
            "$(nproc)" "$(echo "$(nproc) / $ICPU" | bc -l)" "$(echo "2 * $(nproc) / $ICPU" | bc -l)"
    fi
fi
if [ "$MODE" = postgres ] || [ "$MODE" = replicas ]; then
    F=$(median "${F_ALL[@]}"); F_ACK=$(median "${FACK_ALL[@]}")
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate/pg (all acked)" "$F_ACK" "$(rate "$F_ACK")"
    printf '%-38s %8.2f %10s\n' "storescu -> deidgate/pg -> storescp" "$F" "$(rate "$F")"
    printf 'ratio PostgreSQL key store / sled key store (instances per second): %.2f\n' "$(echo "$B / $F" | bc -l)"
fi
printf 'deidgate peak RSS: %s MB; CPU %s s (%.2f ms per instance)\n' "$((RSS / 1024))" "$GW_CPU" "$(echo "$GW_CPU * 1000 / ($N * $ROUNDS)" | bc -l)"
# The disk's share of the sender's wait: the spool log's sync before each Success.
curl -s "http://127.0.0.1:$P4/metrics" | awk '
    /^deidgate_spool_syncs_total/ {n = $2}
    /^deidgate_spool_sync_seconds_total/ {t = $2}
    END {if (n > 0) printf "spool log sync before Success: %d syncs, mean %.2f ms\n", n, t * 1000 / n}'
