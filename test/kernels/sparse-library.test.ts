// The CUDA backend's cuSPARSELt, as its description names it: 0.8.0 on a Hopper GPU (NVIDIA's
// release notes: H100 regressions, fixed in 0.8.1) is reported; any other version or GPU is not.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { sparseLibraryWarning } from '../../kernels/sparse-library';

const description = (gpu: string, sm: string, library: string) =>
  `${gpu} (sm_${sm}, 79 GiB), CUDA runtime 13.0, cuBLASLt 130000, ${library}`;

test('cuSPARSELt 0.8.0 on Hopper is reported, naming the fix and how to load another', () => {
  for (const gpu of ['NVIDIA H100 80GB HBM3', 'NVIDIA H200']) {
    const warning = sparseLibraryWarning(description(gpu, '90', 'cuSPARSELt 0.8.0'));
    assert.match(warning ?? '', /^sieve: cuSPARSELt 0\.8\.0 runs on this Hopper GPU: .* fixed .* in 0\.8\.1/);
    assert.match(warning ?? '', /pip install nvidia-cusparselt-cu13\) and put its lib folder first on LD_LIBRARY_PATH\.\n$/);
  }
});

test('other versions, other GPUs and an unknown version are not reported', () => {
  assert.equal(sparseLibraryWarning(description('NVIDIA H100 80GB HBM3', '90', 'cuSPARSELt 0.8.1')), null);
  assert.equal(sparseLibraryWarning(description('NVIDIA H100 80GB HBM3', '90', 'cuSPARSELt 0.10.0')), null);
  assert.equal(sparseLibraryWarning(description('NVIDIA H100 80GB HBM3', '90', 'cuSPARSELt 0.8.0.1')), null);
  assert.equal(sparseLibraryWarning(description('NVIDIA A100-SXM4-80GB', '80', 'cuSPARSELt 0.8.0')), null);
  assert.equal(sparseLibraryWarning(description('NVIDIA B200', '100', 'cuSPARSELt 0.8.0')), null);
  assert.equal(sparseLibraryWarning(description('NVIDIA H100 80GB HBM3', '90', 'cuSPARSELt (version unknown)')), null);
});
