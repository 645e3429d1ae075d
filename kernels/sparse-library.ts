/**
 * The CUDA backend's description names the cuSPARSELt it loaded ("…, cuSPARSELt 0.8.0"), and the
 * 2:4 products' speed depends on it. NVIDIA's release notes for 0.8.1 fix performance regressions
 * on H100 that 0.8.0 introduced, and 0.8.0 is what PyTorch 2.11's wheels carry: a GPU host set up
 * for PyTorch finds the slow one first. The engine says so once, as it does when OpenBLAS runs
 * older kernels than the CPU allows (blas-core.ts).
 */

/** The warning for a CUDA backend description, or null where its cuSPARSELt is not 0.8.0 on Hopper. */
export function sparseLibraryWarning(description: string): string | null {
  const version = /\bcuSPARSELt (\d+(?:\.\d+)*)/.exec(description)?.[1];
  if (version !== '0.8.0' || !/\(sm_90\b/.test(description)) return null;
  return (
    'sieve: cuSPARSELt 0.8.0 runs on this Hopper GPU: NVIDIA fixed performance regressions on H100 ' +
    'that 0.8.0 introduced in 0.8.1, so 2:4 products may be slower than they need be. Install 0.8.1 or ' +
    'later (pip install nvidia-cusparselt-cu13) and put its lib folder first on LD_LIBRARY_PATH.\n'
  );
}
