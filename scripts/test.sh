#!/usr/bin/env bash
# Install the external tools the test-suite drives (only when missing), print
# their versions, then run the whole test-suite in release mode.
#
#   bash scripts/test.sh [extra cargo test args...]
#
# Tools: dcmdump/storescu/storescp/echoscu (dcmtk), dciodvfy (dicom3tools),
# cmake (builds CharLS, the JPEG-LS codec),
# tesseract (tesseract-ocr: reads the text route's outputs back),
# Orthanc (orthanc, /usr/sbin/Orthanc), headless Chromium and chromedriver
# (chromium, chromium-driver) for the browser test. Test data is read in place from
# ../shared/data relative to the repo root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$(pwd)"

log() { printf '==> %s\n' "$*" >&2; }

# ---------------------------------------------------------------- privileges
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    fi
fi
as_root() {
    if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
        log "need root (or sudo) to run: $*"
        return 1
    fi
    ${SUDO[@]+"${SUDO[@]}"} "$@"
}

# ---------------------------------------------------------------- tools
# command -> Debian package
declare -A PKG_FOR=(
    [dcmdump]=dcmtk
    [storescu]=dcmtk
    [storescp]=dcmtk
    [echoscu]=dcmtk
    [dciodvfy]=dicom3tools
    [openssl]=openssl
    [curl]=curl
    [tesseract]=tesseract-ocr
    # Builds CharLS (the JPEG-LS codec, C++) for dicom-pixeldata.
    [cmake]=cmake
)

have_orthanc() { [ -x /usr/sbin/Orthanc ] || command -v Orthanc >/dev/null 2>&1; }
# The browser test runs these exact paths (Debian's packages).
declare -A PKG_FOR_PATH=(
    [/usr/bin/chromium]=chromium
    [/usr/bin/chromedriver]=chromium-driver
    # The replica tests: a front end over two gateways.
    [/usr/sbin/haproxy]=haproxy
)
# The replica tests start a throw-away PostgreSQL cluster (initdb, pg_ctl).
have_pg_server() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

missing_pkgs=()
add_pkg() {
    local p
    for p in "${missing_pkgs[@]+"${missing_pkgs[@]}"}"; do
        [ "$p" = "$1" ] && return 0
    done
    missing_pkgs+=("$1")
}
for cmd in dcmdump storescu storescp echoscu dciodvfy openssl curl tesseract cmake; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        log "missing: $cmd"
        add_pkg "${PKG_FOR[$cmd]}"
    fi
done
if ! have_orthanc; then
    log "missing: Orthanc"
    add_pkg orthanc
fi
# The STOW-RS tests load Orthanc's DICOMweb plugin.
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || { log "missing: orthanc-dicomweb"; add_pkg orthanc-dicomweb; }
have_pg_server || { log "missing: PostgreSQL server"; add_pkg postgresql; }
for path in "${!PKG_FOR_PATH[@]}"; do
    if [ ! -x "$path" ]; then
        log "missing: $path"
        add_pkg "${PKG_FOR_PATH[$path]}"
    fi
done

if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    log "installing: ${missing_pkgs[*]}"
    # Keep maintainer scripts from starting services (Orthanc) while we
    # install; only when no policy-rc.d is already in place.
    policy_created=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        if printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null \
            && as_root chmod 755 /usr/sbin/policy-rc.d; then
            policy_created=1
        fi
    fi
    install_rc=0
    as_root apt-get update || install_rc=$?
    if [ "$install_rc" -eq 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing_pkgs[@]}" || install_rc=$?
    fi
    if [ "$policy_created" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d || true
    fi
    if [ "$install_rc" -ne 0 ]; then
        log "apt-get failed (exit $install_rc)"
        exit "$install_rc"
    fi
    # Tests start their own Orthanc instances; a system one would hold
    # 4242/8042. Stop it if the package started one anyway.
    for p in "${missing_pkgs[@]}"; do
        if [ "$p" = orthanc ]; then
            as_root service orthanc stop >/dev/null 2>&1 || true
        fi
    done
fi

# Verify everything is present now.
fail=0
for cmd in dcmdump storescu storescp echoscu dciodvfy openssl curl tesseract cmake; do
    command -v "$cmd" >/dev/null 2>&1 || { log "still missing: $cmd"; fail=1; }
done
have_orthanc || { log "still missing: Orthanc"; fail=1; }
[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || { log "still missing: orthanc-dicomweb"; fail=1; }
have_pg_server || { log "still missing: PostgreSQL server"; fail=1; }
for path in "${!PKG_FOR_PATH[@]}"; do
    [ -x "$path" ] || { log "still missing: $path"; fail=1; }
done
[ "$fail" -eq 0 ] || exit 1

# ---------------------------------------------------------------- versions
orthanc_bin=/usr/sbin/Orthanc
[ -x "$orthanc_bin" ] || orthanc_bin="$(command -v Orthanc)"
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
first_line() { "$@" 2>&1 </dev/null | head -n1 || true; }

echo "---- tool versions ----"
echo "dcmdump:  $(first_line dcmdump --version)"
echo "storescu: $(first_line storescu --version)"
echo "storescp: $(first_line storescp --version)"
echo "echoscu:  $(first_line echoscu --version)"
# dciodvfy has no --version flag; report the package version.
echo "dciodvfy: $(command -v dciodvfy) (dicom3tools $(pkg_version dicom3tools))"
echo "tesseract: $(first_line tesseract --version)"
echo "Orthanc:  $(first_line "$orthanc_bin" --version)"
# stdout only: Debian's launcher script can warn on stderr (its /dev/shm check).
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null </dev/null | head -n1 || true) (package $(pkg_version chromium))"
echo "chromedriver: $(first_line /usr/bin/chromedriver --version)"
echo "cargo:    $(cargo --version)"
echo "rustc:    $(rustc --version)"
echo "test data: $(cd "$REPO_ROOT/.." && pwd)/shared/data $( [ -d "$REPO_ROOT/../shared/data" ] && echo '(present)' || echo '(MISSING)')"
echo "-----------------------"

# ---------------------------------------------------------------- weights
# The photo route's face detector needs its (uncommitted) MTCNN weights;
# tests/photo_detect.rs fails without them. Skips when already present.
bash "$REPO_ROOT/scripts/fetch-weights.sh"

# ---------------------------------------------------------------- tests
exec cargo test --release "$@"
