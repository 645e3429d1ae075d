// Which OpenBLAS kernels the engine asks for: from the CPU's flags, never over the user's choice,
// and the loaded library really runs them (OpenBLAS names its core in its config string).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';

import { chooseOpenBlasCore, openBlasCoreFor } from '../../kernels/blas-core';

const flags = (s: string) => new Set(s.split(' '));

test('the core follows the instruction-set flags', () => {
  assert.equal(openBlasCoreFor(flags('sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl')), 'SkylakeX');
  assert.equal(openBlasCoreFor(flags('sse2 avx avx2 fma avx512f')), 'Haswell'); // AVX-512 without BW/VL (Knights Landing)
  assert.equal(openBlasCoreFor(flags('sse2 avx avx2 fma')), 'Haswell');
  assert.equal(openBlasCoreFor(flags('sse2 avx')), null);
});

test("a user's OPENBLAS_CORETYPE is kept", () => {
  const env: NodeJS.ProcessEnv = { OPENBLAS_CORETYPE: 'Prescott' };
  chooseOpenBlasCore(env);
  assert.equal(env.OPENBLAS_CORETYPE, 'Prescott');
});

test('the loaded OpenBLAS runs the chosen core', (t) => {
  const env: NodeJS.ProcessEnv = {};
  chooseOpenBlasCore(env);
  if (!env.OPENBLAS_CORETYPE) return t.skip('no AVX2 here: OpenBLAS keeps its own choice');
  // A fresh process: this one may have loaded the addon already.
  const blas = execFileSync(
    process.execPath,
    ['--import', 'tsx', '-e', "console.log(require('./kernels').backendInfo().blas ?? '')"],
    { env: { ...process.env, OPENBLAS_CORETYPE: '' }, encoding: 'utf8' },
  ).trim();
  if (blas === '') return t.skip('built without OpenBLAS');
  assert.match(blas, new RegExp(`\\b${env.OPENBLAS_CORETYPE}\\b`), blas);
});
