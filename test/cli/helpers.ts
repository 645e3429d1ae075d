// Running the real `sieve` executable in tests: a fresh SIEVE_HOME per test file, captured output,
// and small recipes that train in seconds on 2 cores.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { freePort } from '../../cli/temporal/dev-server';

export { freePort };

export const SIEVE = path.resolve(__dirname, '..', '..', 'cli', 'sieve.js');

export function tempHome(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `sieve-${label}-`));
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `sieve <args>` to completion. */
export function sieve(home: string, args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = start(home, args, env);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export function sieveSync(home: string, args: string[], env: Record<string, string> = {}): Result {
  const r = spawnSync(process.execPath, [SIEVE, ...args], { env: { ...process.env, SIEVE_HOME: home, NO_COLOR: '1', ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `sieve <args>` and returns the process (stdout/stderr piped). */
export function start(home: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [SIEVE, ...args], { env: { ...process.env, SIEVE_HOME: home, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * Starts a long-lived `sieve` process (worker, server) whose own exit is unexpected: if it exits
 * by itself, its stderr is printed, so a test waiting on it fails with the reason, not a timeout.
 */
export function serve(home: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = start(home, args, env);
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  child.on('exit', (code) => {
    if (!child.killed) console.error(`sieve ${args.join(' ')} exited by itself with code ${code}:\n${stderr}`);
  });
  return child;
}

/** The last JSON document printed on stdout (`--json` prints `{ "id": ... }` last). */
export function lastJson<T>(stdout: string): T {
  const start = stdout.lastIndexOf('\n{');
  return JSON.parse(stdout.slice(start < 0 ? 0 : start + 1)) as T;
}

export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined> | T | null | undefined, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A recipe small enough to train in a second or so: byte-level GPT-2 on part of Moby Dick. */
export function tinyRecipe(overrides: { name?: string; seed?: number; steps?: number; checkpointEvery?: number; evalFile?: string; slow?: boolean } = {}): string {
  // `slow`: ~20 ms a step on 2 cores, so a test can act while a stage is mid-way.
  const model = overrides.slow
    ? '{ family: gpt2, layers: 2, dim: 64, heads: 4, context: 64, tokenizer: bytes }'
    : '{ family: gpt2, layers: 1, dim: 32, heads: 2, context: 32, tokenizer: bytes }';
  const evalSet = overrides.evalFile
    ? `    held-out: { corpus: files, paths: [${JSON.stringify(overrides.evalFile)}] }`
    : '    tail: { corpus: moby-dick, items: [130, 138] }';
  return `name: ${overrides.name ?? 'tiny'}
seed: ${overrides.seed ?? 1}
model: ${model}
data:
  corpus: moby-dick
  train: { items: [3, 40] }
  eval:
${evalSet}
stages:
  - { id: dense, kind: pretrain, steps: ${overrides.steps ?? 40}, batch: ${overrides.slow ? 16 : 8}, lr: 3.0e-3, checkpointEvery: ${overrides.checkpointEvery ?? 10} }
  - { id: report, kind: evaluate, from: dense }
`;
}

export function writeRecipe(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

export interface SieveServer {
  child: ChildProcess;
  /** The environment that points `sieve` at it. */
  remote: { TEMPORAL_ADDRESS: string };
  uiPort: number;
}

/** Starts `sieve server` on free ports in `home`, as an operator runs it, and waits until it serves. */
export async function startServer(home: string): Promise<SieveServer> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const child = serve(home, ['server', '--port', String(port), '--ui-port', String(uiPort)]);
  let stdout = '';
  child.stdout!.on('data', (d) => (stdout += d));
  await waitFor('sieve server to be up', () => stdout.includes('Web UI'));
  return { child, remote: { TEMPORAL_ADDRESS: `127.0.0.1:${port}` }, uiPort };
}

/** Stops long-lived sieve processes (SIGTERM) and waits until each has exited. */
export async function stopAll(...children: ChildProcess[]): Promise<void> {
  for (const child of children) {
    if (child.exitCode !== null) continue;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}
