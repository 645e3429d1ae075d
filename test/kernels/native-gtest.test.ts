// Runs the native GoogleTest suite (kernels/test/*.cc) under node:test, so `npm test` covers
// the C++ kernels too: configures build/native with CMake when it is not configured yet,
// builds it (a no-op when up to date), runs the binary and asserts exit status 0, with the
// suite's output in the failure message.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

const root = join(__dirname, '..', '..');
const buildDir = join(root, 'build', 'native');

function run(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.error) return { status: null, output: `${cmd}: ${r.error.message}` };
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

function step(what: string, cmd: string, args: string[]): void {
  const r = run(cmd, args);
  assert.equal(r.status, 0, `${what} failed (${cmd} ${args.join(' ')}):\n${r.output}`);
}

test('native GoogleTest suite (kernels/test) passes', { timeout: 600_000 }, () => {
  if (!existsSync(join(buildDir, 'CMakeCache.txt'))) {
    const ninja = run('ninja', ['--version']).status === 0;
    step('cmake configure', 'cmake', ['-S', 'kernels', '-B', buildDir, '-DCMAKE_BUILD_TYPE=Release', ...(ninja ? ['-G', 'Ninja'] : [])]);
  }
  step('cmake build', 'cmake', ['--build', buildDir, '--parallel']);
  const r = run(join(buildDir, 'sieve_tests'), ['--gtest_color=no']);
  assert.equal(r.status, 0, `GoogleTest failures:\n${r.output}`);
  assert.match(r.output, /\[ {2}PASSED {2}\] \d+ tests?\./);
});
