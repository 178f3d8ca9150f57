#!/usr/bin/env bash
# Make sure the tools the build itself needs are present: a C/C++ compiler
# (openjpeg and CharLS are C/C++ sources built by their -sys crates) and
# cmake (CharLS, the JPEG-LS codec of dicom-pixeldata, builds with it).
# Installs Debian's packages when missing and we are root or have sudo;
# otherwise says what to install and stops. Idempotent: nothing is done
# (no network) when they are already there.
#
#   bash scripts/build-deps.sh
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
[ "${#missing[@]}" -eq 0 ] && exit 0

log "the build needs: ${missing[*]}"
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        log "install them (Debian: apt-get install ${missing[*]}) and run this again"
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get here: install ${missing[*]} with this system's package manager"
    exit 1
fi
${SUDO[@]+"${SUDO[@]}"} apt-get update
${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
