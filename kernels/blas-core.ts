/**
 * OpenBLAS (DYNAMIC_ARCH builds, as Debian ships) picks its kernels from the CPU model number.
 * CPUs newer than the library, and VMs that hide the model, get its oldest x86-64 kernels
 * ("Prescott"): on an AVX-512 machine that made every GEMM ~4x slower (bench/RESULTS.md). The
 * instruction-set flags are still visible, so before the library loads we name the best
 * kernel family they allow. A user's own OPENBLAS_CORETYPE always wins.
 */
import { readFileSync } from 'node:fs';

/** The OpenBLAS core for a /proc/cpuinfo `flags` line, or null where its own choice is right. */
export function openBlasCoreFor(flags: ReadonlySet<string>): 'SkylakeX' | 'Haswell' | null {
  if (['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return null;
}

/** Sets OPENBLAS_CORETYPE for this process (and its children) unless it is set already. */
export function chooseOpenBlasCore(env: NodeJS.ProcessEnv = process.env): void {
  if (env.OPENBLAS_CORETYPE || process.arch !== 'x64') return;
  let cpuinfo: string;
  try {
    cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return; // not Linux: OpenBLAS's own detection stands
  }
  const line = /^flags\s*:(.*)$/m.exec(cpuinfo)?.[1];
  if (!line) return;
  const core = openBlasCoreFor(new Set(line.trim().split(/\s+/)));
  if (core) env.OPENBLAS_CORETYPE = core;
}
