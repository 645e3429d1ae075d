#!/usr/bin/env bash
# bench/cpu/build.sh — builds bench/cpu/train.cc with the engine (kernels/core, kernels/cpu) into
# one program that needs nothing but the C library, for the GPU machine's CPUs (target C6).
#
#   bash bench/cpu/build.sh [OUT]      (OUT defaults to build-gpu) → OUT/sieve_cpu_train
#
# The flags are the engine's own (kernels/CMakeLists.txt, binding.gyp): -O3, OpenMP, no FMA
# contraction, AVX2, and OpenBLAS; here OpenBLAS (Debian's libopenblas.a, DYNAMIC_ARCH, so it
# picks its kernels on the machine that runs it), libgomp, libstdc++ and libgcc are linked
# statically, because that machine has neither OpenBLAS nor, perhaps, libgomp. Checks with ldd
# that the result asks only for the C library's own parts. The program is ~26 MB: OpenBLAS's
# kernels for every CPU it knows come along (xz makes them ~2 MB, if carrying space is short).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/build-gpu}"
OBJ="$ROOT/build/cpu-train-obj"  # not under OUT: OUT is what travels to the GPU machine
mkdir -p "$OBJ"
cd "$ROOT"

BLAS_INCLUDE="$(node kernels/blas-probe.js include 2>/dev/null || true)"
[[ -n "$BLAS_INCLUDE" ]] || BLAS_INCLUDE=/usr/include/x86_64-linux-gnu/openblas-pthread
BLAS_A=/usr/lib/x86_64-linux-gnu/libopenblas.a
GOMP_A="$(g++ -print-file-name=libgomp.a)"
for f in "$BLAS_INCLUDE/cblas.h" "$BLAS_A" "$GOMP_A"; do
  [[ -f "$f" ]] || { echo "bench/cpu/build.sh: $f not found (apt-get install libopenblas-dev g++)" >&2; exit 1; }
done

CXXFLAGS=(-std=c++17 -O3 -fopenmp -ffp-contract=off -fno-math-errno -fno-trapping-math -mavx2
  -DSIEVE_HAVE_OPENBLAS -Ikernels/include -Ikernels -Ikernels/cpu -I"$BLAS_INCLUDE")
SOURCES=(bench/cpu/train.cc kernels/core/*.cc kernels/cpu/*.cc)
pids=()
for src in "${SOURCES[@]}"; do
  obj="$OBJ/$(echo "${src%.cc}" | tr / _).o"
  if [[ ! -f "$obj" || "$src" -nt "$obj" || -n "$(find kernels/include kernels/core kernels/cpu -name '*.h' -newer "$obj" | head -1)" ]]; then
    g++ "${CXXFLAGS[@]}" -c "$src" -o "$obj" & pids+=($!)
  fi
done
for p in "${pids[@]}"; do wait "$p"; done

# No -fopenmp at the link: it would add the shared libgomp; the static one comes by path.
g++ -s -o "$OUT/sieve_cpu_train" "$OBJ"/*.o -static-libgcc -static-libstdc++ \
  "$BLAS_A" "$GOMP_A" -lpthread -lm -ldl

extra="$(ldd "$OUT/sieve_cpu_train" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so|/lib64/ld-linux-x86-64\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so)' || true)"
if [[ -n "$extra" ]]; then
  echo "bench/cpu/build.sh: $OUT/sieve_cpu_train needs libraries the GPU machine may lack: $extra" >&2
  exit 1
fi
echo "bench/cpu/build.sh: built $OUT/sieve_cpu_train ($(ldd "$OUT/sieve_cpu_train" | awk '{print $1}' | tr '\n' ' '))"
