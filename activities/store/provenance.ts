// Machine provenance: which code and which machine made a result. Stored with every run (the
// control host) and every computed stage (the worker that ran it), so a difference in results or
// speed can be traced to a code change, a dependency, a BLAS build or an environment variable.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Environment } from '../../schemas/records';
import { sha256Hex } from './hash';

const REPO_ROOT = path.resolve(__dirname, '../..');

let memoCodeVersion: string | undefined;

/**
 * The version of the code this process runs: `git:<sha>` in a clean checkout,
 * `git:<sha>+dirty.<hash>` when tracked files differ from HEAD or untracked files exist
 * (the hash covers the diff and the untracked files' contents, so two different dirty
 * trees never share a version), and `package:<version>` outside a git checkout. Computed
 * once per process: the code a long-lived worker runs is the code it loaded at start, not
 * what is on disk later.
 */
export function codeVersion(): string {
  memoCodeVersion ??= computeCodeVersion();
  return memoCodeVersion;
}

// Set by bench/gpu/bundle.sh's esbuild --define: a bundle runs where no checkout is beside it (the
// GPU machine), so the version it was built from is stamped into it.
declare const SIEVE_BUNDLED_CODE_VERSION: string | undefined;

function computeCodeVersion(): string {
  if (typeof SIEVE_BUNDLED_CODE_VERSION === 'string') return SIEVE_BUNDLED_CODE_VERSION;
  const git = (...args: string[]): Buffer =>
    execFileSync('git', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
  try {
    // Only sieve's own checkout counts, not a repository that happens to contain an installed copy.
    if (path.resolve(git('rev-parse', '--show-toplevel').toString().trim()) !== REPO_ROOT) throw new Error('not our checkout');
    const head = git('rev-parse', 'HEAD').toString().trim();
    const hash = createHash('sha256').update(git('diff', 'HEAD', '--binary'));
    const untracked = git('ls-files', '--others', '--exclude-standard', '-z').toString().split('\0').filter(Boolean).sort();
    for (const file of untracked) {
      hash.update(`\0${file}\0`);
      hash.update(readFileSync(path.join(REPO_ROOT, file)));
    }
    const dirty = git('status', '--porcelain').length > 0;
    return dirty ? `git:${head}+dirty.${hash.digest('hex').slice(0, 16)}` : `git:${head}`;
  } catch {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    return `package:${pkg.version}`;
  }
}

/** Variables that change threading, devices or where sieve keeps things; nothing else is recorded. */
const RECORDED_ENV = [
  'SIEVE_HOME',
  'TEMPORAL_ADDRESS',
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'OPENBLAS_CORETYPE',
  'MKL_NUM_THREADS',
  'CUDA_VISIBLE_DEVICES',
  'CUBLAS_WORKSPACE_CONFIG',
];

/** A snapshot of this machine. `blas` and `gpu` come from the native engine, which alone knows what it loaded. */
export function environment(engine: { blas?: string | null; gpu?: string | null } = {}): Environment {
  const lockfile = path.join(REPO_ROOT, 'package-lock.json');
  return {
    hostname: os.hostname(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    release: os.release(),
    cpu: { model: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism() },
    memoryBytes: os.totalmem(),
    blas: engine.blas ?? null,
    gpu: engine.gpu ?? null,
    lockfile: existsSync(lockfile) ? sha256Hex(readFileSync(lockfile)) : null,
    env: Object.fromEntries(RECORDED_ENV.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]]))),
  };
}
