// Which OpenBLAS kernels the engine asks for: from the CPU's flags, never over the user's choice,
// the loaded library really runs them (OpenBLAS names its core in its config string), and a
// user's choice of older kernels than the CPU allows is reported once.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { chooseOpenBlasCore, openBlasCoreFor, weakCoreWarning } from '../../kernels/blas-core';

const flags = (s: string) => new Set(s.split(' '));
const AVX512 = flags('sse2 avx avx2 fma avx512f avx512dq avx512bw avx512vl');
const config = (core: string) => `OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY ${core} MAX_THREADS=64`;

test('the core follows the instruction-set flags', () => {
  assert.equal(openBlasCoreFor(AVX512), 'SkylakeX');
  assert.equal(openBlasCoreFor(flags('sse2 avx avx2 fma avx512f')), 'Haswell'); // AVX-512 without BW/VL (Knights Landing)
  assert.equal(openBlasCoreFor(flags('sse2 avx avx2 fma')), 'Haswell');
  assert.equal(openBlasCoreFor(flags('sse2 avx')), null);
});

test("a user's OPENBLAS_CORETYPE is kept", () => {
  const env: NodeJS.ProcessEnv = { OPENBLAS_CORETYPE: 'Prescott' };
  chooseOpenBlasCore(env);
  assert.equal(env.OPENBLAS_CORETYPE, 'Prescott');
});

test('kernels older than the CPU allows are named, current ones are not', () => {
  assert.match(weakCoreWarning(config('Haswell'), AVX512) ?? '', /runs its Haswell kernels on a CPU that can run SkylakeX's/);
  assert.match(weakCoreWarning(config('Prescott'), flags('sse2 avx avx2 fma')) ?? '', /Prescott kernels .* Haswell's/);
  assert.equal(weakCoreWarning(config('SkylakeX'), AVX512), null);
  assert.equal(weakCoreWarning(config('SapphireRapids'), AVX512), null);
  assert.equal(weakCoreWarning(config('Haswell'), flags('sse2 avx avx2 fma')), null);
  assert.equal(weakCoreWarning(config('Prescott'), flags('sse2 avx')), null); // nothing better to offer
  assert.equal(weakCoreWarning(config('SomeFutureCore'), AVX512), null);
});

/** What a fresh process (this one may have loaded the addon already) reports as its BLAS, and its stderr. */
function loadIn(env: NodeJS.ProcessEnv): { blas: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "console.log(require('./kernels').backendInfo().blas ?? '')"], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return { blas: r.stdout.trim(), stderr: r.stderr };
}

test('the loaded OpenBLAS runs the chosen core, and says nothing', (t) => {
  const env: NodeJS.ProcessEnv = {};
  chooseOpenBlasCore(env);
  if (!env.OPENBLAS_CORETYPE) return t.skip('no AVX2 here: OpenBLAS keeps its own choice');
  const { blas, stderr } = loadIn({ OPENBLAS_CORETYPE: '' });
  if (blas === '') return t.skip('built without OpenBLAS');
  assert.match(blas, new RegExp(`\\b${env.OPENBLAS_CORETYPE}\\b`), blas);
  assert.doesNotMatch(stderr, /OpenBLAS runs its/);
});

test('an older core set by the user is reported once on stderr', (t) => {
  const env: NodeJS.ProcessEnv = {};
  chooseOpenBlasCore(env);
  if (!env.OPENBLAS_CORETYPE) return t.skip('no AVX2 here');
  const { blas, stderr } = loadIn({ OPENBLAS_CORETYPE: 'Prescott' });
  if (blas === '') return t.skip('built without OpenBLAS');
  assert.match(blas, /\bPrescott\b/);
  assert.equal(stderr.match(/OpenBLAS runs its Prescott kernels/g)?.length, 1, stderr);
});
