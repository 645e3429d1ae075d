// bench/gpu/report.ts — turns what bench/gpu/run.sh brought back from the GPU machine into a dated
// entry of bench/RESULTS.md ("## GPU kernels (CUDA)"): the machine, the checks' verdict, one
// table per benchmark with every figure it printed (ours and PyTorch's rows side by side), and,
// when run.sh ran with E2E=1, the recipe's stages on each device side by side.
//
//   node --import tsx bench/gpu/report.ts DIR "<command that ran there>"   (DIR: run.sh's OUT, fetched)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { appendResults } from '../results';

interface Row {
  bench: string;
  target: string;
  what: string;
  [value: string]: string | number;
}

const [dir, command] = process.argv.slice(2);
if (!dir || !command) throw new Error('usage: bench/gpu/report.ts DIR "<command>"');

const rows = readFileSync(join(dir, 'bench.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim())
  .map((line, i) => {
    try {
      return JSON.parse(line) as Row;
    } catch {
      throw new Error(`${join(dir, 'bench.jsonl')} line ${i + 1} is not JSON: ${line}`);
    }
  });
const checks = readFileSync(join(dir, 'checks.txt'), 'utf8').trim().split('\n');
const verdict = checks.at(-1) ?? '';
const failures = checks.filter((line) => line.startsWith('FAIL'));
const machineLines = readFileSync(join(dir, 'machine.txt'), 'utf8').trim().split('\n');

const fmt = (v: string | number) =>
  typeof v !== 'number' ? v : Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
const META = new Set(['bench', 'target', 'what', 'device']);

function table(bench: string, list: Row[]): string {
  const keys = [...new Set(list.flatMap((r) => Object.keys(r).filter((k) => !META.has(k))))];
  const lines = [`**${bench}**`, '', `| target | what | ${keys.join(' | ')} |`, `| --- | --- |${keys.map(() => ' ---: |').join('')}`];
  for (const r of list) lines.push(`| ${r.target || '—'} | ${r.what} | ${keys.map((k) => (k in r ? fmt(r[k]) : '')).join(' | ')} |`);
  return lines.join('\n');
}

/** nvidia-smi's CSV (header line, value line) as "name: value" pairs. */
function gpu(): string {
  const [header, values] = [machineLines[1] ?? '', machineLines[2] ?? ''].map((l) => l.split(',').map((x) => x.trim()));
  return header.map((h, i) => `${h} ${values[i] ?? ''}`).join(', ');
}

/** The e2e recipe's stages as drive.ts printed them on each device (E2E=1), one row per stage and device. */
function e2e(): string[] {
  const devices = ['cuda', 'cpu'].filter((d) => existsSync(join(dir, `e2e-${d}.jsonl`)));
  if (devices.length === 0) return [];
  type Stage = { stage: string; kind: string; device: string; computeMs: number; metrics: Record<string, number> };
  const stages = devices.flatMap((d) =>
    readFileSync(join(dir, `e2e-${d}.jsonl`), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Stage),
  );
  const figure = (s: Stage) => {
    const m = s.metrics;
    if (s.kind === 'evaluate') return Object.keys(m).filter((k) => k.endsWith('/ppl')).map((k) => `${k} ${fmt(m[k])}`).join(', ');
    if (s.kind === 'quantize')
      return `calibration loss ${fmt(m['quant/calibration_loss_before'])} → ${fmt(m['quant/calibration_loss'])}, ${fmt(m['quant/bits_per_weight'])} bits per weight`;
    return `loss (last 10) ${fmt(m['train/loss_last10'])}, ${fmt(m['train/tokens_per_sec'])} tokens/s`;
  };
  const lines = ['**e2e** (bench/gpu/e2e.yaml, stages run by sieve\'s activity code through bench/gpu/drive.ts)', '', '| stage | device | seconds | figures |', '| --- | --- | ---: | --- |'];
  for (const s of stages) lines.push(`| ${s.stage} (${s.kind}) | ${s.device} | ${fmt(s.computeMs / 1000)} | ${figure(s)} |`);
  return [lines.join('\n'), ''];
}

const byBench = new Map<string, Row[]>();
for (const r of rows) byBench.set(r.bench, [...(byBench.get(r.bench) ?? []), r]);

appendResults(
  'GPU kernels (CUDA)',
  'The CUDA backend\'s kernels on the GPU machine (bench/gpu/run.sh: checks, then benchmarks; PyTorch\'s figures come from bench/gpu/torch_reference.py in the same call). Times are CUDA-event medians after warm-up on random inputs; "vs dense" is dense time over 2:4 time; "of copy" is the fraction of the device-to-device copy bandwidth measured in the same call.',
  [
    `### ${machineLines[0]?.slice(0, 10) ?? ''}`,
    '',
    `- GPU: ${gpu()}`,
    ...machineLines.slice(3, 4).map((l) => `- ${l.trim()}`),
    `- command: \`${command}\``,
    `- checks: ${verdict}${failures.length ? ` (failed: ${failures.map((f) => f.split(/\s+/)[1]).join(', ')})` : ''}`,
    '',
    ...[...byBench].flatMap(([bench, list]) => [table(bench, list), '']),
    ...e2e(),
  ].join('\n').trimEnd(),
);
console.log(`bench/RESULTS.md: appended ${rows.length} rows from ${dir}`);
