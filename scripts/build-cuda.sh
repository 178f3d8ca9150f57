#!/usr/bin/env bash
# Build deidgate with `--features cuda` on a machine that has no CUDA toolkit
# installed (for example a CPU-only build host that prepares a binary for a
# GPU machine). The CUDA 13.0 compiler, headers and libraries come from
# NVIDIA's PyPI wheels; the driver library (libcuda) is replaced at link time
# by a stub that only carries the symbol names, and the real one is found on
# the GPU machine at run time.
#
# Usage: scripts/build-cuda.sh [cargo build args...]
#   e.g. scripts/build-cuda.sh --bin deidgate --example cuda_check
# Environment: CUDA_SDK (default ./target/cuda-sdk), CUDA_COMPUTE_CAP (default
# 90 = Hopper: H100/H200). On a machine with a real toolkit, plain
# `cargo build --release --features cuda` is enough.
#
# Licences: the wheels are NVIDIA's (CUDA EULA); they are downloaded into the
# build folder and never committed or redistributed by this project.
set -euo pipefail
cd "$(dirname "$0")/.."
SDK=${CUDA_SDK:-$PWD/target/cuda-sdk}
CU=$SDK/x/nvidia/cu13
VER=13.0.*

if [ ! -x "$CU/bin/nvcc" ] || [ ! -x "$CU/nvvm/bin/cicc" ]; then
  mkdir -p "$SDK/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$SDK/whl" "nvidia-cuda-nvcc==$VER" "nvidia-cuda-runtime==$VER" "nvidia-cuda-crt==$VER" \
    "nvidia-cuda-cccl==$VER" "nvidia-nvvm==$VER" "nvidia-cuda-nvrtc==$VER" "nvidia-cublas==$VER" \
    "nvidia-curand>=10.4,<10.5"
  for w in "$SDK"/whl/*.whl; do unzip -q -o "$w" -d "$SDK/x"; done
  # nvcc.profile looks for headers and libraries under targets/<arch>/.
  mkdir -p "$CU/targets"
  ln -sfn .. "$CU/targets/x86_64-linux"
  (cd "$CU/lib" && for l in cublas cublasLt nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done \
    && ln -sf libcurand.so.10 libcurand.so && ln -sf libcudart.so.13 libcudart.so)
fi

if [ ! -e "$CU/lib/libcuda.so" ]; then
  cargo fetch -q
  # Link-time stand-in for the driver library: every cu* symbol cudarc's
  # bindings name, as an empty function, with the real library's soname.
  src=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -path '*cudarc-*/src/driver/sys/mod.rs' | sort | tail -1)
  grep -ohE '\bcu[A-Z][A-Za-z0-9_]*' "$src" | sort -u | sed 's/.*/void &(void){}/' >"$SDK/libcuda_stub.c"
  gcc -shared -fPIC -o "$CU/lib/libcuda.so" -Wl,-soname,libcuda.so.1 "$SDK/libcuda_stub.c"
fi

export CUDA_HOME=$CU
export PATH=$CU/bin:$PATH
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$CU/lib
export LD_LIBRARY_PATH=$CU/lib:${LD_LIBRARY_PATH:-}
exec cargo build --release --features cuda "$@"
