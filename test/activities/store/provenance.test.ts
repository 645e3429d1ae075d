// Machine provenance: the code version and the environment snapshot recorded with runs and stages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { loadedEngine } from '../../../activities';
import { codeVersion, environment } from '../../../activities/store/provenance';
import { backendInfo, type Backend, type Device } from '../../../kernels';
import { Environment } from '../../../schemas/records';

describe('identities', () => {
  it('codeVersion names the git commit (and a dirty tree) or the package version', () => {
    assert.match(codeVersion(), /^(git:[0-9a-f]{40}(\+dirty\.[0-9a-f]{16})?|package:\d+\.\d+\.\d+)$/);
    assert.equal(codeVersion(), codeVersion(), 'fixed for the life of the process');
  });

  it('environment is a valid snapshot and records only the listed variables', () => {
    const snapshot = Environment.parse(environment({ blas: 'OpenBLAS', gpu: null }));
    assert.equal(snapshot.blas, 'OpenBLAS');
    assert.equal(snapshot.node, process.version);
    assert.ok(Object.keys(snapshot.env).every((k) => /^(SIEVE_|TEMPORAL_|OMP_|OPENBLAS_|MKL_|CUDA_|CUBLAS_)/.test(k)));
    assert.match(snapshot.lockfile ?? '', /^[0-9a-f]{64}$/);
  });

  it("a stage's engine is the CPU's BLAS and, on cuda, the GPU backend's description in its own field", () => {
    const asked: Device[] = [];
    const info = (device: Device): Backend => {
      asked.push(device);
      return { device, name: device, blas: device === 'cpu' ? 'OpenBLAS 0.3.21' : 'NVIDIA H200 (sm_90, 140 GiB), cuSPARSELt 0.8.1', threads: 1 };
    };
    assert.deepEqual(loadedEngine('cpu', info), { blas: 'OpenBLAS 0.3.21', gpu: null });
    assert.deepEqual(asked, ['cpu'], 'a CPU stage never loads the CUDA backend');
    assert.deepEqual(loadedEngine('cuda', info), { blas: 'OpenBLAS 0.3.21', gpu: 'NVIDIA H200 (sm_90, 140 GiB), cuSPARSELt 0.8.1' });
    assert.deepEqual(loadedEngine('cpu'), { blas: backendInfo('cpu').blas, gpu: null }, 'by default, what this process loaded');
  });
});
