// The tables `sieve compare` and `sieve show --html` present, as plain rows of text: the terminal
// prints them with cli/commands/_shared.ts `table`, the HTML report (./html.ts) as <table>s, so both
// say the same thing in the same words.

import type { CompareOutput, ModelMeasures, ShowOutput } from '../../schemas/cli';
import { formatBytes } from '../../schemas/memory';
import { formatDuration, table } from '../commands/_shared';
import { formatNumber } from '../commands/_summary';
import { modelLabel } from './models';

export interface ReportTable {
  /** null for the table that opens a report, under its heading. */
  title: string | null;
  /** The first column labels the rows; its header is usually empty. */
  header: string[];
  rows: string[][];
  /** Said instead of the table when it has no rows; without it, an empty table is left out. */
  whenEmpty?: string;
  /** Long and secondary: the HTML report folds it (an open/close <details>, no script). */
  folded?: boolean;
  /** Every value cell is a number (or `-`): the HTML report aligns them right. */
  numeric?: boolean;
}

/** The tables as terminal text: a titled table's rows indented under its title. */
export function printTables(tables: ReportTable[]) {
  const sections = tables.flatMap((t) => {
    if (!t.rows.length) return t.whenEmpty === undefined ? [] : [t.whenEmpty];
    if (t.title === null) return [table(t.header, t.rows)];
    return [`${t.title}\n${table(t.header, t.rows.map(([label, ...cells]) => [`  ${label}`, ...cells]))}`];
  });
  console.log(sections.join('\n\n'));
}

/** How an operand is labelled: `run` or `run:stage`. */
export const operandLabel = (r: CompareOutput['runs'][number]) => (r.stage ? `${r.id}:${r.stage}` : r.id);

const metric = (v: number | null) => (v === null ? '-' : formatNumber(v));

export function comparisonTables(c: CompareOutput): ReportTable[] {
  const header = ['', ...c.runs.map(operandLabel)];
  // Derived defaults carry float noise (0.003 / 10); twelve digits show what was meant.
  const setting = (v: unknown) => (v === null ? '-' : typeof v === 'string' ? v : typeof v === 'number' ? String(Number(v.toPrecision(12))) : JSON.stringify(v));
  return [
    {
      title: null,
      header,
      rows: [
        ['status', ...c.runs.map((r) => r.status)],
        ['created', ...c.runs.map((r) => r.createdAt.slice(0, 19).replace('T', ' '))],
        ['code', ...c.runs.map((r) => r.codeVersion)],
      ],
    },
    { title: 'recipe differences', header, rows: c.recipe.map((d) => [d.path, ...d.values.map(setting)]), whenEmpty: 'recipes: identical' },
    {
      title: 'stages',
      header,
      rows: c.stages.map((s) => [s.id, ...s.runs.map((r) => (r ? `${r.status} ${r.reusedFrom ? '' : formatDuration(r.computeMs)}`.trim() : '-'))]),
    },
    ...modelsTable(c.models),
    { title: 'metrics', header, rows: c.metrics.map((m) => [`${m.stage}: ${m.name}`, ...m.values.map(metric)]), folded: true, numeric: true },
  ];
}

/**
 * One row per model; a column only where some model has a value (perplexity per evaluation set and
 * runtime, 2:4 share, bits per weight, size, tokens/s per runtime). No table without models.
 */
export function modelsTable(models: ModelMeasures[]): ReportTable[] {
  if (!models.length) return [];
  const columns: { header: string; cell: (m: ModelMeasures) => string | null }[] = [];
  const uniqueBy = <T>(xs: T[], key: (x: T) => string) => [...new Map(xs.map((x) => [key(x), x])).values()];
  for (const { set, runtime } of uniqueBy(models.flatMap((m) => m.perplexity), (p) => `${p.set}\0${p.runtime}`)) {
    const value = (m: ModelMeasures) => m.perplexity.find((p) => p.set === set && p.runtime === runtime)?.value ?? null;
    columns.push({ header: `ppl ${set}${runtime === 'native' ? '' : ` (${runtime})`}`, cell: (m) => nullable(value(m), formatNumber) });
  }
  columns.push(
    { header: '2:4 share', cell: (m) => nullable(m.twoFour, (v) => `${Number((v * 100).toFixed(1))}%`) },
    { header: 'bits/weight', cell: (m) => nullable(m.bitsPerWeight, (v) => v.toFixed(2)) },
    { header: 'size', cell: (m) => nullable(m.bytes, formatBytes) },
  );
  for (const runtime of [...new Set(models.flatMap((m) => m.throughput.map((t) => t.runtime)))]) {
    const value = (m: ModelMeasures) => m.throughput.find((t) => t.runtime === runtime)?.tokensPerSec ?? null;
    columns.push({ header: `tokens/s ${runtime}`, cell: (m) => nullable(value(m), (v) => v.toFixed(0)) });
  }
  const shown = columns.filter((col) => models.some((m) => col.cell(m) !== null));
  return [
    {
      title: 'models',
      header: ['', ...shown.map((col) => col.header)],
      rows: models.map((m) => [modelLabel(m), ...shown.map((col) => col.cell(m) ?? '-')]),
      numeric: true,
    },
  ];
}

/** What `sieve show` prints, as the tables of its HTML report. */
export function runTables(run: ShowOutput, models: ModelMeasures[]): ReportTable[] {
  const env = run.environment;
  const about: [string, string | null][] = [
    ['run', `${run.id} (${run.status}${run.error ? `: ${run.error}` : ''})`],
    ['recipe', `${run.name}  sha256:${run.recipeHash.slice(0, 16)}`],
    ['code', run.codeVersion],
    ['machine', `${env.hostname}, ${env.cpu.model} × ${env.cpu.cores}, node ${env.node}, blas ${env.blas ?? 'none'}`],
    ['created', run.createdAt],
    ['finished', run.finishedAt],
    ['resumes', run.parentRunId],
  ];
  return [
    { title: null, header: ['', ''], rows: about.filter((r): r is [string, string] => r[1] !== null) },
    {
      title: 'stages',
      header: ['', 'kind', 'status', 'from', 'steps', 'wall', 'compute', 'why'],
      rows: run.stages.map((s) => [
        s.id,
        s.kind,
        s.status,
        s.from.join(', '),
        s.steps === null ? '' : `${s.step}/${s.steps}`,
        formatDuration(s.timings.wallMs),
        formatDuration(s.timings.computeMs),
        s.error ?? s.reason ?? '',
      ]),
    },
    ...modelsTable(models),
    {
      title: 'metrics',
      header: ['', 'final value'],
      rows: run.stages.flatMap((s) => Object.entries(s.metrics).map(([name, value]) => [`${s.id}: ${name}`, value === null ? 'NaN' : formatNumber(value)])),
      folded: true,
      numeric: true,
    },
  ];
}

const nullable = (v: number | null, format: (v: number) => string) => (v === null ? null : format(v));
