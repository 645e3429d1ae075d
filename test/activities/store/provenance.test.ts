// Machine provenance: the code version and the environment snapshot recorded with runs and stages.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { codeVersion, environment } from '../../../activities/store/provenance';
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
});
