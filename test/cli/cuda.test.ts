// `device: cuda` where no GPU can take it, with real processes: an embedded server (whose only
// worker is this machine) refuses the recipe at once, naming what is missing, and records
// nothing; on a shared server the run is queued with a sentence saying no GPU worker serves it
// yet, and `sieve status` names the queue and the command that continues it; a host without a
// CUDA backend refuses to serve the gpu queue. SIEVE_CUDA_LIBRARY points at no library, so this
// holds on a machine where one was built too.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { lastJson, serve, sieve, startServer, stopAll, tempHome, tinyRecipe, waitFor, writeRecipe } from './helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const noCuda = { SIEVE_CUDA_LIBRARY: path.join(tempHome('no-cuda'), 'libsieve_cuda.so') };
const cudaRecipe = (dir: string) => writeRecipe(dir, 'gpu.yaml', `device: cuda\n${tinyRecipe({ name: 'gpu' })}`);
const missing = /this build of sieve has no CUDA backend \(no libsieve_cuda\.so at \S+no-cuda-\w+\/libsieve_cuda\.so; build it with kernels\/cuda\/build\.sh where nvcc exists, or set SIEVE_CUDA_LIBRARY\)/;

const serverHome = tempHome('cuda-server');
let remote: { TEMPORAL_ADDRESS: string };
let server: ChildProcess;
before(async () => {
  ({ child: server, remote } = await startServer(serverHome));
});
after(() => stopAll(server));

test('an embedded server refuses a cuda recipe on a machine without a CUDA backend, naming why, and records nothing', { timeout: 120_000 }, async () => {
  const home = tempHome('cuda-embedded');
  const r = await sieve(home, ['run', cudaRecipe(home)], noCuda);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /the recipe asks for device: cuda, but this machine cannot run it \(/);
  assert.match(r.stderr, missing);
  assert.match(r.stderr, /use device: cpu, or run it against a shared Temporal server \(TEMPORAL_ADDRESS\) that a GPU host serves with `sieve worker --queue gpu`\.$/m);
  const history = JSON.parse((await sieve(home, ['history', '--json'])).stdout) as { runs: unknown[] };
  assert.deepEqual(history.runs, [], 'no run recorded');
});

test('a host without a CUDA backend refuses to serve the gpu queue', { timeout: 60_000 }, async () => {
  const home = tempHome('cuda-worker');
  const r = await sieve(home, ['worker', '--queue', 'gpu'], { ...remote, ...noCuda });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /this machine cannot serve the gpu queue: this build of sieve has no CUDA backend/);
});

// Without SIEVE_CUDA_LIBRARY the addon (build/Release/sieve.node) looks in the checkout's build-gpu/,
// outside build/, which node-gyp deletes whenever npm rebuilds the addon.
const builtHere = existsSync(path.join(ROOT, 'build-gpu', 'libsieve_cuda.so')) && 'a CUDA backend is built in this checkout';
test('without SIEVE_CUDA_LIBRARY the CUDA backend is looked for in the checkout\'s build-gpu/', { timeout: 60_000, skip: builtHere }, async () => {
  const home = tempHome('cuda-default');
  const env = { ...remote, SIEVE_CUDA_LIBRARY: '' };
  const r = await sieve(home, ['worker', '--queue', 'gpu'], env);
  assert.equal(r.code, 1);
  const where = path.join(ROOT, 'build', 'Release', 'libsieve_cuda.so') + ', ' + path.join(ROOT, 'build-gpu', 'libsieve_cuda.so');
  assert.ok(r.stderr.includes(`no CUDA backend (no libsieve_cuda.so at ${where};`), r.stderr);
});

test('on a shared server with no GPU worker the run is queued, saying so; status names the queue and the command', { timeout: 180_000 }, async () => {
  const home = tempHome('cuda-queued');
  const worker = serve(home, ['worker'], remote);  // sieve and cpu: the workflow runs, its stage waits for gpu
  try {
    const r = await sieve(home, ['run', cudaRecipe(home), '--detach', '--json'], remote);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /no worker serves the gpu queue on \S+ yet: the run is queued, and its stages start when a GPU host runs `sieve worker --queue gpu` against this server\./);
    const { id } = lastJson<{ id: string }>(r.stdout);
    const status = await waitFor('the stage to wait on the gpu queue', async () => {
      const s = JSON.parse((await sieve(home, ['status', id, '--json'], remote)).stdout) as { orphaned: { reason: string; message: string } | null };
      return s.orphaned?.message.includes('queue gpu') ? s : null;
    });
    assert.equal(status.orphaned!.reason, 'unserved');
    assert.match(status.orphaned!.message, /^no worker serves queue gpu, where stage dense waits; `sieve worker --queue gpu` continues it/);
    const cancelled = await sieve(home, ['cancel', id], remote);
    assert.equal(cancelled.code, 0, cancelled.stderr);
  } finally {
    worker.kill('SIGTERM');
  }
});
