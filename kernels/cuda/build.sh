#!/usr/bin/env bash
# kernels/cuda/build.sh — builds the CUDA backend where nvcc exists (`npm install` never runs it).
#
#   bash kernels/cuda/build.sh [OUT]      (OUT defaults to build-gpu)
#
# Makes, for sm_90 (Hopper), the arch of every GPU nvidia-smi lists here (the device's own: an sm_90
# image runs on no other major arch) and SIEVE_CUDA_ARCHS if set (e.g. "sm_100"):
#   OUT/libsieve_cuda.so   kernels/cuda/*.cu: the GPU model and kernels (cuBLASLt, cuSPARSELt, our own),
#                          loaded by the addon for device cuda (core/backends.cc)
#   OUT/libsieve_cpu_ref.a kernels/core + kernels/cpu with the portable GEMM: the CPU reference
#   OUT/sieve_gpu_checks   test/gpu/*.cu: every kernel against the CPU reference (exit 1 on a failure)
#   OUT/sieve_gpu_bench    bench/gpu/*.cu: the GPU figures (prints a table, writes JSON lines)
# nvcc is looked for in $CUDA_HOME/bin, then on PATH, then in the PyPI packages' layout
# (pip install --target DIR nvidia-cuda-nvcc==13.0.88 ...; SIEVE_CUDA_PIP=DIR, default /opt/cuda-pip).
# cuBLASLt and cuSPARSELt are linked dynamically and found at run time on the loader path
# (bench/gpu/run.sh points it at the GPU machine's copies). An object is rebuilt when its
# source or any header under kernels/, test/gpu or bench/gpu is newer.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/build-gpu}"
mkdir -p "$OUT/obj"

PIP="${SIEVE_CUDA_PIP:-/opt/cuda-pip}/nvidia/cu13"
if [[ -n "${CUDA_HOME:-}" && -x "$CUDA_HOME/bin/nvcc" ]]; then NVCC="$CUDA_HOME/bin/nvcc"
elif command -v nvcc >/dev/null; then NVCC="$(command -v nvcc)"
elif [[ -x "$PIP/bin/nvcc" ]]; then NVCC="$PIP/bin/nvcc"
else
  echo "kernels/cuda/build.sh: no nvcc: set CUDA_HOME, put nvcc on PATH, or pip install nvidia-cuda-nvcc into \$SIEVE_CUDA_PIP" >&2
  exit 1
fi
CUDA_ROOT="$(cd "$(dirname "$NVCC")/.." && pwd)"
# cuSPARSELt ships apart from the toolkit: beside it in the pip layout, else under CUSPARSELT_HOME.
SPLT="${CUSPARSELT_HOME:-$CUDA_ROOT}"
[[ -f "$SPLT/include/cusparseLt.h" ]] || { echo "kernels/cuda/build.sh: no cusparseLt.h under $SPLT/include: set CUSPARSELT_HOME" >&2; exit 1; }
lib() { # the linker flags for a library that may exist only as a versioned .so
  local dir v
  for dir in "$CUDA_ROOT/lib" "$CUDA_ROOT/lib64" "$SPLT/lib" "$SPLT/lib64"; do
    [[ -e "$dir/lib$1.so" ]] && { echo "-L$dir -l$1"; return; }
    v="$(ls "$dir"/lib"$1".so.* 2>/dev/null | head -1 || true)"
    [[ -n "$v" ]] && { echo "-L$dir -l:$(basename "$v")"; return; }
  done
  echo "kernels/cuda/build.sh: lib$1 not found under $CUDA_ROOT or $SPLT" >&2
  return 1
}
CUBLASLT="$(lib cublasLt)"
CUSPARSELT="$(lib cusparseLt)"
own_archs() { # sm_XY of each GPU on this machine, from its compute capability X.Y
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | tr -d '. ' | grep -E '^[0-9]+$' | sed 's/^/sm_/'
}
ARCHS=(sm_90)
for a in ${SIEVE_CUDA_ARCHS:-} $(own_archs); do
  [[ " ${ARCHS[*]} " == *" $a "* ]] && continue
  if ! "$NVCC" --list-gpu-code | grep -qx "$a"; then
    echo "kernels/cuda/build.sh: this nvcc cannot build for $a (a GPU here, or SIEVE_CUDA_ARCHS): the backend will not load on it; use a newer CUDA toolkit" >&2
    continue
  fi
  ARCHS+=("$a")
done
GENCODE=()
for a in "${ARCHS[@]}"; do GENCODE+=("-gencode=arch=compute_${a#sm_},code=$a"); done
INCLUDES=(-I"$ROOT/kernels/include" -I"$ROOT/kernels" -I"$ROOT/kernels/cpu" -I"$SPLT/include")
NVFLAGS=(-std=c++17 -O3 "${GENCODE[@]}" -Xcompiler -fPIC,-Wall,-fopenmp "${INCLUDES[@]}")
CXXFLAGS=(-std=c++17 -O3 -fPIC -fopenmp -ffp-contract=off -fno-math-errno -fno-trapping-math "${INCLUDES[@]}")
JOBS="$(nproc)"
# Objects built with other flags (another arch list, another nvcc) are rebuilt, not reused.
FLAGS_STAMP="$OUT/obj/flags"
if [[ "$(cat "$FLAGS_STAMP" 2>/dev/null)" != "$NVCC ${NVFLAGS[*]} ${CXXFLAGS[*]}" ]]; then
  rm -f "$OUT"/obj/*.o
  echo "$NVCC ${NVFLAGS[*]} ${CXXFLAGS[*]}" > "$FLAGS_STAMP"
fi
NEWEST_HEADER="$(find "$ROOT/kernels" "$ROOT/test/gpu" "$ROOT/bench/gpu" \( -name '*.h' -o -name '*.cuh' \) -printf '%T@ %p\n' | sort -n | tail -1 | cut -d' ' -f2)"

objs=()
compile() { # compile PREFIX FILES...: objects into OUT/obj, in parallel; their paths into objs
  local prefix="$1" f o
  shift
  objs=()
  for f in "$@"; do
    o="$OUT/obj/${prefix}_$(basename "$(dirname "$f")")_$(basename "${f%.*}").o"
    objs+=("$o")
    [[ "$o" -nt "$f" && "$o" -nt "$NEWEST_HEADER" ]] && continue
    if [[ "$f" == *.cu ]]; then "$NVCC" "${NVFLAGS[@]}" -c "$f" -o "$o" & else g++ "${CXXFLAGS[@]}" -c "$f" -o "$o" & fi
    while (( $(jobs -r | wc -l) >= JOBS )); do wait -n; done
  done
  local pid
  for pid in $(jobs -p); do wait "$pid"; done
}

compile ref "$ROOT"/kernels/core/*.cc "$ROOT"/kernels/cpu/*.cc
rm -f "$OUT/libsieve_cpu_ref.a" && ar rcs "$OUT/libsieve_cpu_ref.a" "${objs[@]}"

shopt -s nullglob
# core/error.cc: the kernels report failure as sieve::Error, like the CPU backend; core/seams.cc:
# what each seam kind reads (the model plans its buffers with it); core/layout.cc: the layout's
# helpers (the linear layers of a tensor list, SLoRB's slices).
compile lib "$ROOT"/kernels/cuda/*.cu "$ROOT"/kernels/core/error.cc "$ROOT"/kernels/core/seams.cc \
  "$ROOT"/kernels/core/layout.cc
# shellcheck disable=SC2086
"$NVCC" "${NVFLAGS[@]}" -shared -o "$OUT/libsieve_cuda.so" "${objs[@]}" $CUBLASLT $CUSPARSELT
# The addon loads the library with its own symbols hidden from it (Node's dlopen is RTLD_LOCAL):
# a sieve:: function the library uses but does not hold would fail only there, at load time, while
# the checks (linked with the CPU engine) pass. Refuse to build such a library.
missing="$(nm -D --undefined-only "$OUT/libsieve_cuda.so" | c++filt | grep 'sieve::' || true)"
if [[ -n "$missing" ]]; then
  echo "kernels/cuda/build.sh: libsieve_cuda.so uses sieve:: symbols it does not define (compile their sources in):" >&2
  echo "$missing" >&2
  exit 1
fi
RUNTIME=(-L"$OUT" -lsieve_cuda $CUBLASLT $CUSPARSELT -Xlinker -rpath,'$ORIGIN' -Xcompiler -fopenmp)
compile check "$ROOT"/test/gpu/*.cu
"$NVCC" "${NVFLAGS[@]}" -o "$OUT/sieve_gpu_checks" "${objs[@]}" "$OUT/libsieve_cpu_ref.a" "${RUNTIME[@]}"
compile bench "$ROOT"/bench/gpu/*.cu
"$NVCC" "${NVFLAGS[@]}" -o "$OUT/sieve_gpu_bench" "${objs[@]}" "$OUT/libsieve_cpu_ref.a" "${RUNTIME[@]}"
echo "kernels/cuda/build.sh: built $OUT for ${ARCHS[*]} with $NVCC ($("$NVCC" --version | tail -1))"
