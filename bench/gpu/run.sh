#!/usr/bin/env bash
# bench/gpu/run.sh — everything the GPU machine does for sieve in one call: the kernel checks,
# the GPU benchmarks with PyTorch's figures beside them, and the CPU-scaling comparison (C6).
#
#   bash kernels/cuda/build.sh && bash bench/cpu/build.sh     # here, where nvcc (or the pip packages) is
#   bash bench/gpu/run.sh OUT                                 # there, with build-gpu carried along
#
# The machine needs only its driver, cuBLASLt and cuSPARSELt: they are looked for on the
# loader path, then in the CUDA toolkit, then in PyTorch's wheels (which carry both). Writes
# OUT/checks.txt, OUT/bench.jsonl (our rows and PyTorch's; bench/gpu/report.ts turns them into
# bench/RESULTS.md's entry) and OUT/machine.txt. Exits non-zero when a check failed.
#
# To spend device time on part of it: BENCHES="attention train" (sieve_gpu_bench's filters),
# CHECKS="attention" (sieve_gpu_checks' filters), TORCH="train" (torch_reference.py's sections;
# "none" skips PyTorch), C6=0 (no CPU comparison). BIN=DIR runs another build's binaries (built with
# kernels/cuda/build.sh DIR), e.g. a change and its baseline side by side in one call.
# CUSPARSELT_DIR=DIR loads DIR/libcusparseLt.so.0 instead of the machine's (the bench's first gemm
# row names the version loaded), e.g. a newer release measured beside the machine's own.
# PROFILE=<a sieve_gpu_bench filter> (e.g. train_gpt2_small) also times every kernel of a few of that
# bench's steps with Nsight Compute (kernels serialised, clocks left as they are) and sums the times by
# kernel (bench/gpu/kernel_times.py): OUT/profile.txt, where a step's time goes. PROFILE_ROW=<part of
# a train row's name> (e.g. "medium S-STE") times exactly that row's last step instead of
# PROFILE_SKIP (default 3000) launches into the bench.
# E2E=1 also runs bench/gpu/e2e.yaml's stages through sieve's activity code (bench/gpu/drive.ts),
# on device cuda and then device cpu, from what bench/gpu/bundle.sh packed (OUT/e2e-*.jsonl, .log);
# E2E_DEVICES=cuda skips the CPU run.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:?usage: bench/gpu/run.sh OUT}"
BUILD="${BIN:-$ROOT/build-gpu}"
BIN="$(cd "$BUILD" 2>/dev/null && pwd)" || { echo "bench/gpu/run.sh: no build at $BUILD" >&2; exit 1; }
mkdir -p "$OUT"
cd "$ROOT"

libdir() { # the folder holding $1 (a versioned file name), searched where CUDA libraries live
  local d
  d="$(ldconfig -p | awk -v f="$1" '$1 == f { print $NF; exit }')"
  [[ -n "$d" ]] && { dirname "$d"; return; }
  find /usr/local/cuda*/ /opt /usr/lib -name "$1" -print 2>/dev/null | head -1 | xargs -r dirname
}
for f in libcublasLt.so.13 libcusparseLt.so.0; do
  d="$(libdir "$f")"
  [[ -n "$d" ]] || { echo "bench/gpu/run.sh: $f not found on this machine" >&2; exit 1; }
  export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
if [[ -n "${CUSPARSELT_DIR:-}" ]]; then  # another cuSPARSELt than the machine's, ahead of it
  [[ -f "$CUSPARSELT_DIR/libcusparseLt.so.0" ]] || { echo "bench/gpu/run.sh: no libcusparseLt.so.0 in CUSPARSELT_DIR=$CUSPARSELT_DIR" >&2; exit 1; }
  export LD_LIBRARY_PATH="$(cd "$CUSPARSELT_DIR" && pwd):$LD_LIBRARY_PATH"
fi

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem --format=csv
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), nproc $(nproc)"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
} | tee "$OUT/machine.txt"

# shellcheck disable=SC2086
"$BIN/sieve_gpu_checks" ${CHECKS:-} 2>&1 | tee "$OUT/checks.txt"
checks=${PIPESTATUS[0]}

: > "$OUT/bench.jsonl"  # this run's rows only: the bench and the PyTorch script append to it
# shellcheck disable=SC2086
"$BIN/sieve_gpu_bench" --json "$OUT/bench.jsonl" ${BENCHES:-} 2>&1 | tee "$OUT/bench.txt"
TORCH="${TORCH:-gemm sparsity train}"
if [[ "$TORCH" != none ]]; then
  # shellcheck disable=SC2086
  PYTHONUNBUFFERED=1 python3 bench/gpu/torch_reference.py --json "$OUT/bench.jsonl" $TORCH 2>&1 | tee -a "$OUT/bench.txt"
fi
if [[ "${C6:-1}" != 0 && -x "$BIN/sieve_cpu_train" ]]; then bash bench/cpu/run.sh "$OUT/bench.jsonl" 2>&1 | tee -a "$OUT/bench.txt"; fi

if [[ -n "${PROFILE:-}" ]]; then
  NCU="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
  if [[ -z "$NCU" ]]; then echo "bench/gpu/run.sh: no ncu on this machine: no profile" >&2
  else
    if [[ -n "${PROFILE_ROW:-}" ]]; then range=(--profile-from-start off)
    else range=(--launch-skip "${PROFILE_SKIP:-3000}" --launch-count 1500)  # past the first rows' warm-up: a few GPT-2 steps
    fi
    SIEVE_PROFILE_ROW="${PROFILE_ROW:-}" "$NCU" --clock-control none --metrics gpu__time_duration.sum --print-units base \
      --print-kernel-base function "${range[@]}" --csv --log-file "$OUT/ncu.csv" "$BIN/sieve_gpu_bench" "$PROFILE" > /dev/null 2>&1
    python3 bench/gpu/kernel_times.py "$OUT/ncu.csv" | tee "$OUT/profile.txt"
  fi
fi

e2e=0
if [[ "${E2E:-0}" != 0 ]]; then
  DEV="$ROOT/build/device" TMP="$(mktemp -d)"
  mkdir -p "$TMP/lib"
  xz -dc "$DEV/node.xz" > "$TMP/node" && chmod +x "$TMP/node"
  tar -xJf "$DEV/libs.tar.xz" -C "$TMP/lib"
  for device in ${E2E_DEVICES:-cuda cpu}; do
    sed "s/^device: cuda$/device: $device/" "$DEV/e2e.yaml" > "$DEV/e2e-$device.yaml"
    # sieve picks the OpenBLAS kernels for this CPU itself (the image's setting names older ones)
    env -u OPENBLAS_CORETYPE LD_LIBRARY_PATH="$TMP/lib:$LD_LIBRARY_PATH" "$TMP/node" build/sieve-drive.js \
      "$DEV/e2e-$device.yaml" "$TMP/home-$device" > "$OUT/e2e-$device.jsonl" 2> "$OUT/e2e-$device.log" || e2e=1
    grep -E "^drive" "$OUT/e2e-$device.log"; cat "$OUT/e2e-$device.jsonl"
  done
fi

echo "checks exit status: $checks, e2e: $e2e"
[[ "$e2e" == 0 ]] || exit 1
exit "$checks"
