// bench/runtimes.ts — evaluation throughput of sieve's engine against onnxruntime-node on the same
// model exported to ONNX (DESIGN.md target C5), as the evaluate stage runs them.
//
//   node --import tsx bench/runtimes.ts [--no-write]
//
// For GPT-2 models of about 0.1M, 1M and 10M parameters (byte vocabulary; the shapes of
// bench/engine.ts), at the same thread count for both runtimes:
//   - native: Model.evalNll over B windows of the model's context;
//   - onnxruntime: OnnxModel.evalNll on the export of the same checkpoint (ONNX Runtime's forward
//     plus the log-softmax in JavaScript, which is what an evaluate stage pays), and its forward
//     alone (OnnxModel.logits), to separate the runtime from our NLL reduction.
// Each figure is the best of five interleaved rounds (the machine may be shared); the load average
// before and after is recorded with the figures.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

import { writeTrainingCheckpoint } from '../activities/train/model-state';
import { backendInfo, Model, type ModelConfig } from '../kernels';
import { loadCheckpoint } from '../kernels/checkpoint';
import { exportOnnx } from '../kernels/onnx/export';
import { OnnxModel } from '../kernels/onnx/runtime';
import { appendResults, machine } from './results';

interface Case {
  name: string;
  config: ModelConfig;
  B: number;
}

const base = { family: 'gpt2' as const, vocab: 256, normEps: 1e-5, ropeTheta: null, adapters: null };
const CASES: Case[] = [
  { name: '0.1M', config: { ...base, layers: 2, dim: 64, heads: 4, context: 128, mlpHidden: 256 }, B: 32 },
  { name: '1M', config: { ...base, layers: 5, dim: 128, heads: 4, context: 128, mlpHidden: 512 }, B: 32 },
  { name: '10M', config: { ...base, layers: 6, dim: 384, heads: 6, context: 256, mlpHidden: 1536 }, B: 16 },
];
const ROUNDS = 5;
const ROUND_SECONDS = 1.5;
const write = !process.argv.includes('--no-write');
const threads = backendInfo('cpu').threads;

/** Tokens per second of `pass` (B·T tokens each), run for about ROUND_SECONDS. */
async function rate(pass: () => Promise<unknown>, tokensPerPass: number): Promise<number> {
  await pass();
  let passes = 0;
  const start = performance.now();
  while (performance.now() - start < ROUND_SECONDS * 1000) {
    await pass();
    passes++;
  }
  return (passes * tokensPerPass) / ((performance.now() - start) / 1000);
}

interface Row {
  name: string;
  params: number;
  native: number;
  ortNll: number;
  ortForward: number;
}

async function measure(c: Case, dir: string): Promise<Row> {
  const T = c.config.context;
  const model = Model.create(c.config, { threads, device: 'cpu' });
  try {
    model.init(1);
    const file = join(dir, `${c.name}.safetensors`);
    await writeTrainingCheckpoint(file, model, null, null, null);
    const onnx = await OnnxModel.create(exportOnnx(await loadCheckpoint(file), { metadata: {} }), { threads });
    try {
      const tokens = Int32Array.from({ length: c.B * T }, (_, i) => (i * 7919) % c.config.vocab);
      const best = { native: 0, ortNll: 0, ortForward: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        best.native = Math.max(best.native, await rate(() => model.evalNll(tokens, c.B, T), c.B * T));
        best.ortNll = Math.max(best.ortNll, await rate(() => onnx.evalNll(tokens, c.B, T), c.B * T));
        best.ortForward = Math.max(best.ortForward, await rate(() => onnx.logits(tokens, c.B, T), c.B * T));
      }
      return { name: c.name, params: model.numParams, ...best };
    } finally {
      onnx.dispose();
    }
  } finally {
    model.dispose();
  }
}

async function main(): Promise<void> {
  const before = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), 'sieve-bench-runtimes-'));
  const rows: Row[] = [];
  try {
    for (const c of CASES) rows.push(await measure(c, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const after = loadavg()[0];
  const k = (x: number) => `${(x / 1000).toFixed(1)}k`;
  const table = [
    '| model | params | native tokens/s | onnxruntime tokens/s (evaluate: forward + NLL) | onnxruntime forward alone | native / onnxruntime (C5) | native / onnxruntime forward |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.name} | ${(r.params / 1e6).toFixed(2)}M | ${k(r.native)} | ${k(r.ortNll)} | ${k(r.ortForward)} | **${(r.native / r.ortNll).toFixed(2)}×** | ${(r.native / r.ortForward).toFixed(2)}× |`),
  ].join('\n');
  console.log(table);
  if (!write) return;
  const { cpu, nproc } = machine();
  appendResults(
    'C5: evaluation, native engine vs onnxruntime-node',
    'Evaluation tokens/s of the native engine and of onnxruntime-node on the same checkpoint exported to ONNX, the same threads, best of five interleaved rounds (bench/runtimes.ts). Target: native ≥ 1.0× onnxruntime.',
    [
      `### ${new Date().toISOString().slice(0, 10)}`,
      '',
      `- machine: ${cpu}, \`nproc\` = ${nproc}, ${threads} threads for both runtimes`,
      `- command: \`node --import tsx bench/runtimes.ts\`; 1-minute load average ${before.toFixed(2)} before, ${after.toFixed(2)} after`,
      '',
      table,
    ].join('\n'),
  );
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
