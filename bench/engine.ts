// bench/engine.ts — the CPU engine benchmark (DESIGN.md targets C1 and C2).
//
//   node --import tsx bench/engine.ts [--steps N] [--no-write]
//
// For GPT-2 models of about 0.1M, 1M and 10M parameters (byte vocabulary), in one run and at
// one thread count:
//   - reference: OpenBLAS's own multithreaded sgemm, alone, at every GEMM shape of a training
//     step (linear layers and LM head: forward, input gradient, weight gradient), weighted by
//     how often the step runs each shape → the reference FLOP/s;
//   - training tokens/s, and MFU = 6 · params · tokens/s over the reference FLOP/s (C2);
//   - C1: FLOP/s of those same GEMMs inside the training step (the engine's timers) over the
//     reference; also the engine's own split GEMM alone, to separate GEMM cost from
//     interference inside the step;
//   - the share of step time spent in GEMMs, in attention, and elsewhere;
//   - evaluation tokens/s (evalNll over windows of the model's context).
// The machine may be shared, so each figure is the best of five interleaved rounds, and the
// load average before and after the run is recorded with the figures.
// Appends a dated entry under "## Engine (CPU)" in bench/RESULTS.md (machine, OpenBLAS, command).
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

import { backendInfo, benchSgemm, Model, type ModelConfig } from '../kernels';
import { appendResults, machine } from './results';

interface Case {
  name: string;
  config: ModelConfig;
  B: number;
  T: number;
}

const base = { family: 'gpt2' as const, vocab: 256, normEps: 1e-5, ropeTheta: null, adapters: null };
const CASES: Case[] = [
  { name: '0.1M', config: { ...base, layers: 2, dim: 64, heads: 4, context: 128, mlpHidden: 256 }, B: 32, T: 128 },
  { name: '1M', config: { ...base, layers: 5, dim: 128, heads: 4, context: 128, mlpHidden: 512 }, B: 32, T: 128 },
  { name: '10M', config: { ...base, layers: 6, dim: 384, heads: 6, context: 256, mlpHidden: 1536 }, B: 16, T: 256 },
];

const args = process.argv.slice(2);
const stepsArg = args.indexOf('--steps');
const ROUNDS = 5;
const ROUND_SECONDS = 1.5;
const fixedSteps = stepsArg >= 0 ? Number(args[stepsArg + 1]) : null;
const write = !args.includes('--no-write');
const cpu = backendInfo('cpu');
const threads = cpu.threads;

interface Shape {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  count: number;
}

/** Every GEMM of one GPT-2 training step: per linear layer forward, input gradient, weight gradient. */
function stepShapes(c: ModelConfig, tokens: number): Shape[] {
  const C = c.dim;
  const H = c.mlpHidden;
  const linears: [number, number, number][] = [
    [3 * C, C, c.layers],
    [C, C, c.layers],
    [H, C, c.layers],
    [C, H, c.layers],
    [c.vocab, C, 1], // LM head (tied)
  ];
  const shapes: Shape[] = [];
  for (const [OC, IC, count] of linears) {
    shapes.push({ transA: false, transB: true, M: tokens, N: OC, K: IC, count }); // forward
    shapes.push({ transA: false, transB: false, M: tokens, N: IC, K: OC, count }); // input gradient
    shapes.push({ transA: true, transB: false, M: OC, N: IC, K: tokens, count }); // weight gradient
  }
  return shapes;
}

/** Seconds of one call of each shape, OpenBLAS alone ('blas') or the engine's split alone ('engine'). */
async function sgemmTimes(shapes: Shape[], path: 'blas' | 'engine'): Promise<number[]> {
  const out: number[] = [];
  for (const s of shapes) {
    const f = 2 * s.M * s.N * s.K;
    const reps = Math.max(3, Math.min(200, Math.round(1e9 / f)));
    out.push(await benchSgemm({ transA: s.transA, transB: s.transB, M: s.M, N: s.N, K: s.K, reps, threads, path }));
  }
  return out;
}

/** Aggregate FLOP/s of a step's GEMMs given per-shape seconds. */
function rate(shapes: Shape[], seconds: number[]): number {
  let flops = 0;
  let time = 0;
  shapes.forEach((s, i) => {
    flops += s.count * 2 * s.M * s.N * s.K;
    time += s.count * seconds[i];
  });
  return flops / time;
}

interface Row {
  name: string;
  params: number;
  B: number;
  T: number;
  refGflops: number;
  engineAloneGflops: number;
  tokensPerSec: number;
  mfu: number;
  inStepGflops: number;
  c1: number;
  gemmShare: number;
  attentionShare: number;
  optimizerShare: number;
  evalTokensPerSec: number;
  steps: number;
}

/**
 * The machine may be shared (other processes come and go), so every figure is the best of
 * ROUNDS interleaved rounds, each measured the same way: the reference and engine-alone rates
 * over all of a step's GEMM shapes, and a training round (with that round's own timers).
 */
async function measure(c: Case): Promise<Row> {
  const { B, T, config } = c;
  const tokens = B * T;
  const shapes = stepShapes(config, tokens);
  const model = Model.create(config, { threads });
  model.init(1);
  const data = Int32Array.from({ length: tokens + 1 }, (_, i) => (i * 7919 + ((i * i) >> 3)) % config.vocab);
  const inputs = data.subarray(0, tokens);
  const targets = data.subarray(1);
  const opts = { lossScale: 1, teacherLogits: null, kd: null };
  const adam = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };
  const trainStep = async () => {
    model.zeroGrad();
    await model.forwardBackward(inputs, targets, B, T, opts);
    await model.optimizerStep(adam);
  };
  for (let i = 0; i < 2; i++) await trainStep(); // warm-up: allocation, page faults, caches

  let refFlops = 0;
  let aloneFlops = 0;
  let best = { tokensPerSec: 0, timers: model.timers(), seconds: 1, steps: 0 };
  let totalSteps = 0;
  for (let round = 0; round < ROUNDS; round++) {
    refFlops = Math.max(refFlops, rate(shapes, await sgemmTimes(shapes, 'blas')));
    await sleep(300); // let OpenBLAS's own threads fall asleep before the engine runs
    aloneFlops = Math.max(aloneFlops, rate(shapes, await sgemmTimes(shapes, 'engine')));

    model.resetTimers();
    let steps = 0;
    const t0 = performance.now();
    while (fixedSteps !== null ? steps < fixedSteps : (performance.now() - t0) / 1000 < ROUND_SECONDS || steps < 2) {
      await trainStep();
      steps++;
    }
    const seconds = (performance.now() - t0) / 1000;
    totalSteps += steps;
    const tokensPerSec = (steps * tokens) / seconds;
    if (tokensPerSec > best.tokensPerSec) best = { tokensPerSec, timers: model.timers(), seconds, steps };
  }
  const { timers, seconds, tokensPerSec } = best;
  const inStep = timers.gemmFlops / timers.gemmSeconds;

  const windows = Math.max(8, Math.round(16384 / T));
  const evalTokens = Int32Array.from({ length: windows * T }, (_, i) => (i * 31 + 7) % config.vocab);
  await model.evalNll(evalTokens.subarray(0, 2 * T), 2, T);
  let evalBest = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const e0 = performance.now();
    await model.evalNll(evalTokens, windows, T);
    evalBest = Math.max(evalBest, (windows * T) / ((performance.now() - e0) / 1000));
  }
  const params = model.numParams;
  model.dispose();
  return {
    name: c.name,
    params,
    B,
    T,
    refGflops: refFlops / 1e9,
    engineAloneGflops: aloneFlops / 1e9,
    tokensPerSec,
    mfu: (6 * params * tokensPerSec) / refFlops,
    inStepGflops: inStep / 1e9,
    c1: inStep / refFlops,
    gemmShare: timers.gemmSeconds / seconds,
    attentionShare: timers.attentionSeconds / seconds,
    optimizerShare: timers.optimizerSeconds / seconds,
    evalTokensPerSec: evalBest,
    steps: totalSteps,
  };
}

function table(rows: Row[]): string {
  const f = (x: number, d = 1) => x.toFixed(d);
  const pct = (x: number) => `${(100 * x).toFixed(0)}%`;
  const lines = [
    '| model | params | B×T | sgemm alone (OpenBLAS) GFLOP/s | engine split alone GFLOP/s | train tokens/s | MFU (C2) | GEMM in step GFLOP/s | C1 | GEMM / attention / optimizer share of step | eval tokens/s |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${r.params.toLocaleString('en-US')} | ${r.B}×${r.T} | ${f(r.refGflops)} | ${f(r.engineAloneGflops)} | ${Math.round(r.tokensPerSec).toLocaleString('en-US')} | ${pct(r.mfu)} | ${f(r.inStepGflops)} | ${f(r.c1, 2)}× | ${pct(r.gemmShare)} / ${pct(r.attentionShare)} / ${pct(r.optimizerShare)} | ${Math.round(r.evalTokensPerSec).toLocaleString('en-US')} |`,
    );
  }
  return lines.join('\n');
}

async function main() {
  const m = { ...machine(), openblas: cpu.blas ?? 'none (portable GEMM)' };
  const loadBefore = loadavg()[0];
  console.log(`sieve engine benchmark: ${m.cpu}, nproc ${m.nproc}, ${threads} threads, ${m.openblas}`);
  const rows: Row[] = [];
  for (const c of CASES) {
    const r = await measure(c);
    rows.push(r);
    console.log(
      `${r.name}: ${r.params} params, ${Math.round(r.tokensPerSec)} tokens/s, MFU ${(100 * r.mfu).toFixed(1)}%, ` +
        `C1 ${r.c1.toFixed(2)}× (in step ${r.inStepGflops.toFixed(1)} vs alone ${r.refGflops.toFixed(1)} GFLOP/s, engine split alone ${r.engineAloneGflops.toFixed(1)}), ` +
        `GEMM ${(100 * r.gemmShare).toFixed(0)}% / attention ${(100 * r.attentionShare).toFixed(0)}% of step, eval ${Math.round(r.evalTokensPerSec)} tokens/s (${r.steps} steps)`,
    );
  }
  const loadAfter = loadavg()[0];
  const date = new Date().toISOString().slice(0, 10);
  const entry = [
    `### ${date}`,
    '',
    `- machine: ${m.cpu}, \`nproc\` = ${m.nproc}; ${threads} threads (engine and reference alike)`,
    `- BLAS: ${m.openblas}`,
    `- command: \`node --import tsx bench/engine.ts\` (best of ${ROUNDS} interleaved rounds per figure); 1-minute load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`,
    '',
    table(rows),
  ].join('\n');
  console.log(`\n${entry}`);
  if (write) appendResults('Engine (CPU)', 'Produced by `bench/engine.ts` (targets C1 and C2 of DESIGN.md); newest entry last.', entry);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
