#!/usr/bin/env bash
# bench/cpu/run.sh — target C6: sieve's CPU training tokens/s against PyTorch CPU eager, same
# models, same cores, at 2 and 16 threads. Runs where bench/cpu/build.sh's program was carried to
# (the GPU machine: no Node.js, no OpenBLAS, python3 with PyTorch).
#
#   bash bench/cpu/run.sh [JSONL]
#
# For each thread count n: sieve (build-gpu/sieve_cpu_train) then PyTorch (bench/cpu/torch_train.py)
# train every config on cores 0..n-1 (taskset -c 0-(n-1), OMP_NUM_THREADS=n), then prints a table
# of tokens/s and the ratio sieve / PyTorch (C6: >= 1.0 at both thread counts). With JSONL, appends
# one row per config and thread count ({"bench", "target", "what", ...}, as bench/gpu/report.ts
# reads them); every raw row of both programs goes to cpu-train.jsonl beside it.
# Without PyTorch it says so and reports sieve's figures alone.
#
# Environment: C6_THREADS (default "2 16"), C6_CONFIGS (default 0.1M,1M,10M,43M), C6_ARGS (more
# arguments for both programs, e.g. "--steps 3 --warmup 1"), C6_SGEMM=1 to add the engine's GEMMs
# against OpenBLAS's own threading at each config's shapes (C1 on this machine).
# OPENBLAS_CORETYPE defaults to SkylakeX: Debian's OpenBLAS 0.3.21 does not know recent Xeons
# (family 6 model 207) and would run its generic Prescott kernels, several times slower.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${SIEVE_CPU_TRAIN:-$ROOT/build-gpu/sieve_cpu_train}"
JSONL="${1:-}"
THREADS="${C6_THREADS:-2 16}"
CONFIGS="${C6_CONFIGS:-0.1M,1M,10M,43M}"
read -r -a EXTRA <<< "${C6_ARGS:---warmup 1 --steps 5 --max-seconds 15}"
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-SkylakeX}"
[[ -x "$BIN" ]] || { echo "bench/cpu/run.sh: $BIN not found (bash bench/cpu/build.sh)" >&2; exit 1; }

RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
cores="$(nproc --all)"
echo "== C6: CPU training, sieve vs PyTorch eager ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $cores cores, OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE)"
torch_ok=1
for n in $THREADS; do
  if (( n > cores )); then echo "bench/cpu/run.sh: $n threads asked, $cores cores here: skipped" >&2; continue; fi
  cpus="0-$((n - 1))"
  sgemm=()
  [[ "${C6_SGEMM:-0}" == 1 ]] && sgemm=(--sgemm)
  OMP_NUM_THREADS=$n taskset -c "$cpus" "$BIN" --threads "$n" --configs "$CONFIGS" "${EXTRA[@]}" "${sgemm[@]}" --json "$RAW"
  if (( torch_ok )); then
    OMP_NUM_THREADS=$n MKL_NUM_THREADS=$n taskset -c "$cpus" python3 "$ROOT/bench/cpu/torch_train.py" \
      --threads "$n" --configs "$CONFIGS" "${EXTRA[@]}" --json "$RAW"
    rc=$?
    if (( rc == 3 )); then torch_ok=0; elif (( rc != 0 )); then echo "bench/cpu/run.sh: torch_train.py failed ($rc)" >&2; fi
  fi
done

python3 - "$RAW" "$JSONL" <<'EOF'
import json, os, sys
raw, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(raw) if l.strip()]
train = {(r['engine'], r['config'], r['threads']): r for r in rows if r['bench'] == 'cpu-train'}
sgemm = {(r['config'], r['threads']): r for r in rows if r['bench'] == 'cpu-sgemm'}
keys = sorted({(c, t) for (_, c, t) in train}, key=lambda k: (k[1], ['0.1M', '1M', '10M', '43M'].index(k[0]) if k[0] in ['0.1M', '1M', '10M', '43M'] else 9))
print(f"\n{'config':>6} {'threads':>7} {'params':>11} {'B×T':>7} {'sieve tok/s':>12} {'torch tok/s':>12} {'ratio (C6)':>10} {'sieve GEMM GFLOP/s':>18} {'GEMM share':>10}")
combined = []
for c, t in keys:
    s, p = train.get(('sieve', c, t)), train.get(('torch', c, t))
    ratio = s['tokens_per_s'] / p['tokens_per_s'] if s and p else None
    ref = s or p
    print(f"{c:>6} {t:>7} {ref['params']:>11,} {str(ref['B']) + '×' + str(ref['T']):>7} "
          f"{s['tokens_per_s'] if s else float('nan'):>12,.0f} {p['tokens_per_s'] if p else float('nan'):>12,.0f} "
          f"{(f'{ratio:.2f}×' if ratio else '—'):>10} {s['gemm_gflops'] if s else float('nan'):>18.1f} "
          f"{(s['gemm_share'] if s else float('nan')):>10.0%}")
    row = {'bench': 'CPU training vs PyTorch eager (C6)', 'target': 'C6 >= 1.0', 'what': f'{c}, {t} threads',
           'params': ref['params'], 'B x T': f"{ref['B']}x{ref['T']}",
           'sieve tok/s': s['tokens_per_s'] if s else '', 'torch tok/s': p['tokens_per_s'] if p else '',
           'ratio': round(ratio, 3) if ratio else '', 'sieve GEMM GFLOP/s': s['gemm_gflops'] if s else ''}
    g = sgemm.get((c, t))
    if g:
        row['engine sgemm GFLOP/s'] = g['engine_gflops']
        row['OpenBLAS threaded GFLOP/s'] = g['openblas_threaded_gflops']
        print(f"{'':>14} GEMMs alone: engine grid {g['engine_gflops']:.1f} GFLOP/s, OpenBLAS threaded {g['openblas_threaded_gflops']:.1f} ({g['ratio']:.2f}×)")
    combined.append(row)
blas = next((r['blas'] for r in rows if r.get('engine') == 'sieve'), None)
torch = next((r['torch'] for r in rows if r.get('engine') == 'torch'), None)
print(f"\nsieve BLAS: {blas}\nPyTorch: {torch or 'not installed here: sieve figures only'}")
if out:
    with open(out, 'a') as f:
        for row in combined:
            f.write(json.dumps(row) + '\n')
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), 'cpu-train.jsonl'), 'a') as f:
        for r in rows:
            f.write(json.dumps(r) + '\n')
EOF
