/**
 * OpenBLAS (DYNAMIC_ARCH builds, as Debian ships) picks its kernels from the CPU model number.
 * CPUs newer than the library, and VMs that hide the model, get its oldest x86-64 kernels
 * ("Prescott"): on an AVX-512 machine that made every GEMM ~4x slower (bench/RESULTS.md). The
 * instruction-set flags are still visible, so before the library loads we name the best
 * kernel family they allow. A user's own OPENBLAS_CORETYPE always wins, but when it names
 * kernels older than the CPU (an image that sets Haswell on an AVX-512 host halved training
 * speed), the engine says so once.
 */
import { readFileSync } from 'node:fs';

type Core = 'SkylakeX' | 'Haswell';

/** The OpenBLAS core for a /proc/cpuinfo `flags` line, or null where its own choice is right. */
export function openBlasCoreFor(flags: ReadonlySet<string>): Core | null {
  if (['avx512f', 'avx512dq', 'avx512bw', 'avx512vl'].every((f) => flags.has(f))) return 'SkylakeX';
  if (flags.has('avx2') && flags.has('fma')) return 'Haswell';
  return null;
}

/** This CPU's flags, or null off Linux x86-64. */
function cpuFlags(): Set<string> | null {
  if (process.arch !== 'x64') return null;
  try {
    const line = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
    return line ? new Set(line.trim().split(/\s+/)) : null;
  } catch {
    return null; // not Linux: OpenBLAS's own detection stands
  }
}

/** Sets OPENBLAS_CORETYPE for this process (and its children) unless it is set already. */
export function chooseOpenBlasCore(env: NodeJS.ProcessEnv = process.env): void {
  if (env.OPENBLAS_CORETYPE) return;
  const flags = cpuFlags();
  const core = flags && openBlasCoreFor(flags);
  if (core) env.OPENBLAS_CORETYPE = core;
}

// OpenBLAS's x86-64 cores by the widest vector instructions they use; a core not listed is
// taken as current (never warned about).
const CORE_LEVEL: Record<string, number> = {
  Prescott: 0, Core2: 0, Penryn: 0, Dunnington: 0, Nehalem: 0, Atom: 0, Nano: 0, Opteron: 0, Opteron_SSE3: 0, Barcelona: 0, Bobcat: 0,
  Sandybridge: 1, Bulldozer: 1, Piledriver: 1, Steamroller: 1, Excavator: 1,
  Haswell: 2, Zen: 2,
  SkylakeX: 3, Cooperlake: 3, SapphireRapids: 3,
};

/**
 * The warning for an OpenBLAS (its `openblas_get_config()` string, which names the core it runs)
 * whose kernels are older than the CPU's flags allow, or null.
 */
export function weakCoreWarning(blasConfig: string, flags: ReadonlySet<string>): string | null {
  const running = blasConfig.split(/\s+/).find((word) => word in CORE_LEVEL);
  const best = openBlasCoreFor(flags);
  if (!running || !best || CORE_LEVEL[running] >= CORE_LEVEL[best]) return null;
  return (
    `sieve: OpenBLAS runs its ${running} kernels on a CPU that can run ${best}'s ` +
    `(OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? 'unset'}): matrix products are slower than they need be. ` +
    `Unset OPENBLAS_CORETYPE (sieve then picks ${best}) or set it to ${best}.\n`
  );
}

/** weakCoreWarning for this process's CPU. */
export function weakCoreWarningHere(blasConfig: string): string | null {
  const flags = cpuFlags();
  return flags && weakCoreWarning(blasConfig, flags);
}
