// The charts of a report, from what the database recorded: training loss and mask flip rate against
// the step (one line per stage; a cached stage's curve is read from the stage that computed it), and
// perplexity against bits per weight and against 2:4 share (one labelled point per model and
// evaluation set). A chart without data becomes one line saying so, never an empty frame.

import type { ModelMeasures, StageRef } from '../../schemas/cli';
import type { SieveDb } from '../../activities/store/db';
import { metricCurve } from '../read-models';
import { labelledScatter, lineChart, type LinePoint, type ScatterAxes, type ScatterPoint } from './charts';
import type { Figure } from './html';

export interface LabelledStage {
  label: string;
  ref: StageRef;
}

export interface LabelledModel {
  label: string;
  measures: ModelMeasures;
}

export async function reportFigures(db: SieveDb, stages: LabelledStage[], models: LabelledModel[]): Promise<Figure[]> {
  return Promise.all([
    lossFigure(stageCurves(db, stages, 'train/loss')),
    flipRateFigure(stageCurves(db, stages, 'sparse/flip_rate')),
    perplexityFigure(models, {
      title: 'perplexity against bits per weight',
      x: (m) => m.bitsPerWeight,
      axis: { title: 'bits per weight (stored size / parameters)' },
      missing: 'bits per weight',
    }),
    perplexityFigure(models, {
      title: 'perplexity against 2:4 share',
      x: (m) => m.twoFour,
      axis: { title: '2:4 share of in-scope groups of four weights', format: '.0%', domain: [0, 1], ticks: [0, 0.25, 0.5, 0.75, 1] },
      missing: 'a 2:4 share',
    }),
  ]);
}

interface Curve {
  /** Every stage this line draws: identical curves (a cache hit, or the same computation run twice) share one. */
  labels: string[];
  points: { step: number; value: number }[];
}

function stageCurves(db: SieveDb, stages: LabelledStage[], name: string): Curve[] {
  const byPoints = new Map<string, Curve>();
  for (const stage of stages) {
    // null stands for NaN (a diverged step), which has no place on the axis.
    const points = metricCurve(db, stage.ref, name).points.filter((p): p is { step: number; value: number } => p.value !== null);
    if (!points.length) continue;
    // Drawn separately, identical lines would hide each other and the legend would list a line nobody sees.
    const key = JSON.stringify(points);
    const seen = byPoints.get(key);
    if (!seen) byPoints.set(key, { labels: [stage.label], points });
    else if (!seen.labels.includes(stage.label)) seen.labels.push(stage.label);
  }
  return [...byPoints.values()];
}

const linePoints = (curves: Curve[]): LinePoint[] => curves.flatMap((c) => c.points.map((p) => ({ series: c.labels.join(' = '), ...p })));
const sharedNote = (curves: Curve[]) => (curves.some((c) => c.labels.length > 1) ? ' Stages with identical curves (a cache hit, or the same computation) share one line: a = b.' : '');

async function lossFigure(curves: Curve[]): Promise<Figure> {
  const title = 'training loss';
  if (!curves.length) return { title, skipped: 'no stage recorded a training loss per step' };
  const note = `The objective on each optimizer step's batch: cross-entropy, plus the distillation term for methods that distil. Every stage counts its own steps from 1.${sharedNote(curves)}`;
  const svg = await lineChart(linePoints(curves), { title: 'loss (nats per token)', log: false, markers: false }, 'training loss against step, one line per stage');
  return { title, svg, note };
}

async function flipRateFigure(curves: Curve[]): Promise<Figure> {
  const title = 'mask flip rate';
  if (!curves.length) return { title, skipped: 'no stage recorded a mask flip rate (sparse-train stages with a hard mask do)' };
  // A log scale has no place for 0 (no entry changed); say how many were left out rather than hide them.
  const zeros = curves.reduce((n, c) => n + c.points.filter((p) => p.value <= 0).length, 0);
  const positive = curves.map((c) => ({ ...c, points: c.points.filter((p) => p.value > 0) })).filter((c) => c.points.length);
  if (!positive.length) return { title, skipped: `every recorded flip rate is 0 (${zeros} values), which a log scale cannot draw` };
  const note =
    'Share of mask entries that changed at each refresh, since the previous one; log scale, as methods differ by orders of magnitude.' +
    (zeros ? ` ${zeros} refresh${zeros === 1 ? '' : 'es'} with no change (0) cannot be drawn on it.` : '') +
    sharedNote(positive);
  const svg = await lineChart(linePoints(positive), { title: 'flip rate (share changed)', log: true, markers: true }, 'mask flip rate against step, log scale, one line per stage');
  return { title, svg, note };
}

async function perplexityFigure(
  models: LabelledModel[],
  chart: { title: string; x: (m: ModelMeasures) => number | null; axis: ScatterAxes['x']; missing: string },
): Promise<Figure> {
  const points: ScatterPoint[] = [];
  for (const { label, measures } of models) {
    const x = chart.x(measures);
    if (x === null) continue;
    // One point per evaluation set: the native runtime's perplexity where both runtimes measured it.
    for (const set of new Set(measures.perplexity.map((p) => p.set))) {
      const ppl = measures.perplexity.filter((p) => p.set === set && p.value !== null).sort((a, b) => Number(b.runtime === 'native') - Number(a.runtime === 'native'))[0];
      if (ppl) points.push({ label, group: set, x, y: ppl.value! });
    }
  }
  if (!points.length) return { title: chart.title, skipped: `no model has both a perplexity and ${chart.missing} recorded` };
  const sets = [...new Set(points.map((p) => p.group))];
  const svg = await labelledScatter(
    mergeCoincident(points),
    { x: chart.axis, y: { title: sets.length === 1 ? `perplexity on ${sets[0]}` : 'perplexity' }, group: 'evaluation set' },
    `${chart.title}, one point per model and evaluation set`,
  );
  return { title: chart.title, svg, note: 'One point per model and evaluation set; lower is better.' };
}

/**
 * Models at the same place (the same model reached twice, say) become one point with both names:
 * apart, one point would hide the other. Six digits: measures of the same weights can differ in the last bit.
 */
function mergeCoincident(points: ScatterPoint[]): ScatterPoint[] {
  const byPlace = new Map<string, ScatterPoint>();
  for (const p of points) {
    const key = JSON.stringify([p.group, p.x.toPrecision(6), p.y.toPrecision(6)]);
    const seen = byPlace.get(key);
    if (seen) seen.label = `${seen.label}, ${p.label}`;
    else byPlace.set(key, { ...p });
  }
  return [...byPlace.values()];
}
