// bench/fidelity-pqi.ts — quantization with sensitivity (examples/fidelity-pqi.yaml) over several
// seeds, run through `sieve run --seed` so every run is recorded, resumable and comparable.
//
//   node --import tsx bench/fidelity-pqi.ts [--seeds 1,2,3] [--home DIR] [--no-write]
//
// Reported (mean ± sd over seeds): for the RTN step of a dense and a 2:4 (S-STE) model at 2, 3 and
// 4 bits, the calibration-loss change it causes and what the gradient, the second-order Taylor
// estimate and PQI (N = 32, right endpoints) predict, for the whole model and for each layer
// quantized alone; then the held-out perplexity and bits per weight of RTN, GPTQ and GPTQ + ReQuant.
// With --home pointing at an earlier run's SIEVE_HOME, seeds already done come from the stage cache.
import { mkdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import type { ShowOutput } from '../schemas/cli';
import { lastJson, sieve, tempHome } from '../test/cli/helpers';
import { appendResults, machine } from './results';

const args = process.argv.slice(2);
const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const write = !args.includes('--no-write');
const seeds = (option('--seeds') ?? '1,2,3').split(',').map(Number);
const home = option('--home') ?? tempHome('fidelity-pqi');
const RECIPE = join(__dirname, '..', 'examples', 'fidelity-pqi.yaml');
const SETS = ['sotu-recent', 'moby-dick'] as const;
const BASES = ['dense', 'sste'] as const;
const BITS = [2, 3, 4] as const;
const METRICS = [
  ['gradient', 'grad'],
  ['taylor2', 'taylor'],
  ['pqi', ''],
] as const;

if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds must list whole numbers, got "${option('--seeds')}"`);
mkdirSync(home, { recursive: true, mode: 0o700 });

async function runSeed(seed: number): Promise<ShowOutput> {
  const started = Date.now();
  console.error(`seed ${seed}: sieve run ${RECIPE} --seed ${seed} (SIEVE_HOME=${home})`);
  const r = await sieve(home, ['run', RECIPE, '--seed', String(seed), '--json']);
  if (r.code !== 0) throw new Error(`seed ${seed}: sieve run exited ${r.code}; resume it with \`SIEVE_HOME=${home} sieve resume <run>\`\n${r.stderr}`);
  const { id } = lastJson<{ id: string }>(r.stdout);
  const run = JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
  if (run.status !== 'completed') throw new Error(`seed ${seed}: run ${id} ended ${run.status}`);
  console.error(`seed ${seed}: run ${id} done in ${((Date.now() - started) / 60_000).toFixed(1)} min`);
  return run;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs: number[], digits = 2) => `${mean(xs).toFixed(digits)} ± ${sd(xs).toFixed(digits)}`;
const sci = (xs: number[]) => `${mean(xs).toExponential(2)} ± ${sd(xs).toExponential(1)}`;

function metric(run: ShowOutput, stage: string, name: string): number {
  const value = run.stages.find((s) => s.id === stage)?.metrics[name];
  if (value === undefined || value === null) throw new Error(`run ${run.id}: stage ${stage} has no metric ${name}`);
  return value;
}
const stageOf = (base: string, bits: number, suffix: string) => `${base}-rtn${bits}${suffix ? `-${suffix}` : ''}`;

/** Whole-model ΔL of each RTN step against the three predictions. */
function predictionTable(runs: ShowOutput[]): string {
  const lines = [
    '| model | bits | actual ΔL | gradient | taylor2 | pqi (N = 32) | pqi / actual |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const base of BASES) {
    for (const bits of BITS) {
      const actual = runs.map((r) => metric(r, stageOf(base, bits, ''), 'sensitivity/pqi/actual'));
      const predicted = METRICS.map(([m, suffix]) => runs.map((r) => metric(r, stageOf(base, bits, suffix), `sensitivity/${m}/predicted`)));
      const ratio = runs.map((r, i) => predicted[2][i] / actual[i]);
      lines.push(`| ${base} | ${bits} | ${sci(actual)} | ${predicted.map(sci).join(' | ')} | ${fmt(ratio, 3)} |`);
    }
  }
  return lines.join('\n');
}

/** Each layer quantized alone: how often each prediction is within 2× of the actual ΔL, its median ratio, and rank agreement. */
function layerTable(runs: ShowOutput[]): string {
  const lines = ['| metric | layer cases | median predicted / actual | within 2× of actual | sign right | Spearman ρ (mean over model × bits × seed) |', '| --- | ---: | ---: | ---: | ---: | ---: |'];
  for (const [m, suffix] of METRICS) {
    const ratios: number[] = [];
    const rhos: number[] = [];
    let signs = 0;
    for (const run of runs) {
      for (const base of BASES) {
        for (const bits of BITS) {
          const metrics = run.stages.find((s) => s.id === stageOf(base, bits, suffix))!.metrics;
          const prefix = `sensitivity/${m}/predicted/`;
          const names = Object.keys(metrics).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
          const pairs = names.map((n) => [metrics[`${prefix}${n}`]!, metrics[`sensitivity/${m}/actual/${n}`]!] as const);
          for (const [p, a] of pairs) {
            ratios.push(p / a);
            if (Math.sign(p) === Math.sign(a)) signs++;
          }
          rhos.push(spearman(pairs.map((x) => x[0]), pairs.map((x) => x[1])));
        }
      }
    }
    const within = ratios.filter((r) => r >= 0.5 && r <= 2).length;
    lines.push(`| ${m} | ${ratios.length} | ${median(ratios).toPrecision(3)} | ${((100 * within) / ratios.length).toFixed(0)}% | ${((100 * signs) / ratios.length).toFixed(0)}% | ${fmt(rhos, 2)} |`);
  }
  return lines.join('\n');
}

function spearman(a: number[], b: number[]): number {
  const rank = (xs: number[]) => {
    const order = xs.map((x, i) => [x, i] as const).sort((p, q) => p[0] - q[0]);
    const r = new Array<number>(xs.length);
    order.forEach(([, i], k) => (r[i] = k));
    return r;
  };
  const ra = rank(a);
  const rb = rank(b);
  const n = a.length;
  const d2 = ra.reduce((s, r, i) => s + (r - rb[i]) ** 2, 0);
  return 1 - (6 * d2) / (n * (n * n - 1));
}

/** Perplexity and bits per weight of each quantizer, beside its unquantized model. */
function perplexityTable(runs: ShowOutput[]): string {
  const ppl = (run: ShowOutput, stage: string, set: string) => metric(run, 'report', `${stage}/${set}/ppl`);
  const lines = [`| model | quantizer | bits per weight (in scope) | ${SETS.map((s) => `${s} ppl`).join(' | ')} | calibration ΔL |`, `| --- | --- | ---: | ${SETS.map(() => '---:').join(' | ')} | ---: |`];
  for (const base of BASES) {
    lines.push(`| ${base} | none (float32) | 32 | ${SETS.map((set) => fmt(runs.map((r) => ppl(r, base, set)))).join(' | ')} | — |`);
    for (const bits of BITS) {
      for (const [stage, label] of [[`${base}-rtn${bits}`, 'RTN'], [`${base}-gptq${bits}`, 'GPTQ'], [`${base}-gptq${bits}-requant`, 'GPTQ + ReQuant']] as const) {
        const bpw = runs.map((r) => metric(r, stage, 'quant/bits_per_weight'));
        const dl = runs.map((r) => metric(r, stage, 'quant/calibration_loss') - metric(r, stage, 'quant/calibration_loss_before'));
        lines.push(`| ${base} | ${label}, ${bits} bits | ${fmt(bpw, 3)} | ${SETS.map((set) => fmt(runs.map((r) => ppl(r, stage, set)))).join(' | ')} | ${sci(dl)} |`);
      }
    }
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const before = loadavg()[0];
  const runs: ShowOutput[] = [];
  for (const seed of seeds) runs.push(await runSeed(seed));
  const after = loadavg()[0];
  const result = [
    '#### The loss change of an RTN step, predicted and measured (calibration windows)',
    '',
    predictionTable(runs),
    '',
    '#### Each layer quantized alone',
    '',
    layerTable(runs),
    '',
    '#### Held-out perplexity',
    '',
    perplexityTable(runs),
  ].join('\n');
  console.log(result);
  if (!write) return;
  const { cpu, nproc } = machine();
  const date = new Date().toISOString().slice(0, 10);
  appendResults(
    'fidelity-pqi: quantization with sensitivity',
    'examples/fidelity-pqi.yaml over several seeds: how the gradient, the diagonal-Fisher Taylor estimate and PQI predict the loss change of RTN quantization (whole model and per layer), and RTN, GPTQ and GPTQ + ReQuant on a dense and a 2:4 (S-STE) model at 2, 3 and 4 bits.',
    [
      `### ${date}`,
      '',
      `- machine: ${cpu}, \`nproc\` = ${nproc}`,
      `- command: \`node --import tsx bench/fidelity-pqi.ts --seeds ${seeds.join(',')}\`; 1-minute load average ${before.toFixed(2)} before, ${after.toFixed(2)} after`,
      `- runs: ${runs.map((r, i) => `seed ${seeds[i]} → ${r.id}`).join(', ')} (code ${runs[0].codeVersion})`,
      '',
      result,
    ].join('\n'),
  );
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
