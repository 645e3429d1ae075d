// bench/fidelity-24.ts — the 2:4 methods side by side (examples/fidelity-24.yaml) over several seeds,
// run through `sieve run --seed` so every run is recorded, resumable and comparable in SIEVE_HOME.
//
//   node --import tsx bench/fidelity-24.ts [--seeds 1,2,3] [--home DIR] [--baseline STAGE] [--no-write]
//
// For each seed: the recipe end to end (the dense model, then every method from it at an equal token
// budget, then one evaluate stage over all of them). Reported: held-out perplexity mean ± sd over the
// seeds on both evaluation sets, each method's gap to the dense model trained for the same budget
// (stage `dense-ft`, or `--baseline <stage>`), and each method's mask flip rate over training
// (bench/fidelity-24-flip.svg). With --home pointing at an earlier run's SIEVE_HOME, the
// seeds already done are served from the stage cache and only the missing ones compute.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { ShowOutput } from '../schemas/cli';
import { lastJson, sieve, tempHome } from '../test/cli/helpers';
import { appendResults, machine } from './results';

const args = process.argv.slice(2);
const option = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const write = !args.includes('--no-write');
const seeds = (option('--seeds') ?? '1,2,3').split(',').map(Number);
const home = option('--home') ?? tempHome('fidelity-24');
const baseline = option('--baseline') ?? 'dense-ft';
const RECIPE = join(__dirname, '..', 'examples', 'fidelity-24.yaml');
const SETS = ['sotu-recent', 'moby-dick'] as const;

if (seeds.some((s) => !Number.isInteger(s) || s < 0)) throw new Error(`--seeds must list whole numbers, got "${option('--seeds')}"`);
mkdirSync(home, { recursive: true, mode: 0o700 });

interface SeedRun {
  seed: number;
  run: ShowOutput;
  /** Per sparse-train stage: [step, flip rate] at every mask refresh. */
  flips: Record<string, [number, number][]>;
}

async function runSeed(seed: number): Promise<SeedRun> {
  const started = Date.now();
  console.error(`seed ${seed}: sieve run ${RECIPE} --seed ${seed} (SIEVE_HOME=${home})`);
  const r = await sieve(home, ['run', RECIPE, '--seed', String(seed), '--json']);
  if (r.code !== 0) throw new Error(`seed ${seed}: sieve run exited ${r.code}; resume it with \`SIEVE_HOME=${home} sieve resume <run>\`\n${r.stderr}`);
  const { id } = lastJson<{ id: string }>(r.stdout);
  const run = JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
  if (run.status !== 'completed') throw new Error(`seed ${seed}: run ${id} ended ${run.status}`);
  console.error(`seed ${seed}: run ${id} done in ${((Date.now() - started) / 60_000).toFixed(1)} min`);

  const db = new Database(join(home, 'sieve.db'), { readonly: true });
  try {
    const query = db.prepare("SELECT step, value FROM metrics WHERE run_id = ? AND stage_id = ? AND name = 'sparse/flip_rate' AND step IS NOT NULL ORDER BY step");
    const flips: SeedRun['flips'] = {};
    for (const stage of run.stages) {
      // A cached stage's metrics live under the run that computed it.
      const source = stage.reusedFrom ?? { runId: run.id, stageId: stage.id };
      const rows = query.all(source.runId, source.stageId) as { step: number; value: number }[];
      if (rows.length) flips[stage.id] = rows.map((row) => [row.step, row.value]);
    }
    return { seed, run, flips };
  } finally {
    db.close();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));
const fmt = (xs: number[], digits = 2) => `${mean(xs).toFixed(digits)} ± ${sd(xs).toFixed(digits)}`;

function ppl(run: ShowOutput, stage: string, set: string): number {
  const value = run.stages.find((s) => s.id === 'report')!.metrics[`${stage}/${set}/ppl`];
  if (value === undefined || value === null) throw new Error(`run ${run.id} has no ${stage}/${set}/ppl`);
  return value;
}

/** The methods' rows: one per evaluated stage, in the report's order. */
function table(runs: SeedRun[]): string {
  const evaluated = runs[0].run.recipe.stages.find((s) => s.id === 'report')!;
  const stages = (evaluated as { from: string[] }).from;
  const header = `| stage | method | ${SETS.map((s) => `${s} ppl`).join(' | ')} | ${SETS.map((s) => `gap to ${baseline}, ${s}`).join(' | ')} | per seed (${SETS[0]}) | last flip rate | compute |`;
  const lines = [header, `| --- | --- | ${SETS.map(() => '---:').join(' | ')} | ${SETS.map(() => '---:').join(' | ')} | --- | ---: | ---: |`];
  for (const stage of stages) {
    const spec = runs[0].run.recipe.stages.find((s) => s.id === stage)!;
    const method = 'method' in spec ? `${spec.kind} ${spec.method}${'transposable' in spec && spec.transposable ? ' (transposable)' : ''}` : spec.kind;
    const values = SETS.map((set) => runs.map((r) => ppl(r.run, stage, set)));
    const gaps = SETS.map((set) => runs.map((r) => (ppl(r.run, stage, set) / ppl(r.run, baseline, set) - 1) * 100));
    const lastFlips = runs.map((r) => r.flips[stage]?.at(-1)?.[1]).filter((v): v is number => v !== undefined);
    const compute = runs.map((r) => r.run.stages.find((s) => s.id === stage)?.timings.computeMs ?? 0);
    lines.push(
      `| ${stage} | ${method} | ${values.map((v) => fmt(v)).join(' | ')} | ${gaps.map((g) => (stage === baseline ? '—' : `${fmt(g, 1)}%`)).join(' | ')} | ${values[0].map((v) => v.toFixed(2)).join(', ')} | ${lastFlips.length ? fmt(lastFlips.map((f) => f * 100), 3) + '%' : '—'} | ${(mean(compute) / 1000).toFixed(0)} s |`,
    );
  }
  return lines.join('\n');
}

/** Mean flip-rate curve per stage (percent of mask entries changed at a refresh), as an SVG line chart. */
function flipChart(runs: SeedRun[]): string {
  const stages = Object.keys(runs[0].flips);
  const curves = stages.map((stage) => {
    const byStep = new Map<number, number[]>();
    for (const r of runs) for (const [step, v] of r.flips[stage] ?? []) byStep.set(step, [...(byStep.get(step) ?? []), v * 100]);
    return { stage, points: [...byStep].sort((a, b) => a[0] - b[0]).map(([step, vs]) => [step, mean(vs)] as const) };
  });
  const W = 720, H = 360, L = 60, R = 150, T = 20, B = 40;
  const maxStep = Math.max(...curves.flatMap((c) => c.points.map((p) => p[0])));
  const maxRate = Math.max(...curves.flatMap((c) => c.points.map((p) => p[1])));
  // A log scale: the methods' flip rates differ by orders of magnitude.
  const floor = Math.max(1e-4, Math.min(...curves.flatMap((c) => c.points.map((p) => p[1])).filter((v) => v > 0)));
  const lo = Math.floor(Math.log10(floor)), hi = Math.ceil(Math.log10(maxRate));
  const x = (step: number) => L + ((W - L - R) * step) / maxStep;
  const y = (rate: number) => T + ((H - T - B) * (hi - Math.log10(Math.max(rate, 10 ** lo)))) / (hi - lo || 1);
  const colours = ['#1b9e77', '#d95f02', '#7570b3', '#e7298a', '#66a61e', '#e6ab02', '#a6761d', '#666666'];
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  for (let e = lo; e <= hi; e++) {
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(10 ** e)}" y2="${y(10 ** e)}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${y(10 ** e) + 4}" text-anchor="end">${10 ** e >= 1 ? 10 ** e : (10 ** e).toPrecision(1)}%</text>`);
  }
  for (let s = 0; s <= maxStep; s += 100) parts.push(`<text x="${x(s)}" y="${H - B + 16}" text-anchor="middle">${s}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">training step (mean of ${runs.length} seeds)</text>`);
  parts.push(`<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">mask entries flipped per refresh</text>`);
  curves.forEach((c, i) => {
    const colour = colours[i % colours.length];
    const d = c.points.map(([s, v], j) => `${j ? 'L' : 'M'}${x(s).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.5"/>`);
    parts.push(`<text x="${W - R + 10}" y="${T + 14 * (i + 1)}" fill="${colour}">${c.stage}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

async function main(): Promise<void> {
  const before = loadavg()[0];
  const runs: SeedRun[] = [];
  for (const seed of seeds) runs.push(await runSeed(seed));
  const after = loadavg()[0];
  const result = table(runs);
  console.log(result);
  if (!write) return;
  writeFileSync(join(__dirname, 'fidelity-24-flip.svg'), flipChart(runs));
  const { cpu, nproc } = machine();
  const date = new Date().toISOString().slice(0, 10);
  appendResults(
    'fidelity-24: the 2:4 methods side by side',
    'examples/fidelity-24.yaml over several seeds: held-out perplexity (mean ± sd over seeds), the gap to the dense model trained for the same token budget (dense-ft), and the mask flip rate at the last refresh. Flip-rate curves: bench/fidelity-24-flip.svg.',
    [
      `### ${date}`,
      '',
      `- machine: ${cpu}, \`nproc\` = ${nproc}`,
      `- command: \`node --import tsx bench/fidelity-24.ts --seeds ${seeds.join(',')}\`; 1-minute load average ${before.toFixed(2)} before, ${after.toFixed(2)} after`,
      `- runs: ${runs.map((r) => `seed ${r.seed} → ${r.run.id}`).join(', ')} (code ${runs[0].run.codeVersion})`,
      '',
      result,
    ].join('\n'),
  );
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
