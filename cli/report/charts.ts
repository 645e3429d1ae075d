// Charts as static SVG text, drawn on the server by vega-lite (spec → vega spec) and vega's headless
// View (`toSVG`: no canvas, no browser): line charts against the training step, and scatter plots
// with a label beside each point. The SVG is inline-ready: no script, no external reference (the
// namespace attributes, which inline SVG in HTML does not need, are dropped so the page holds no
// URL at all), and it scales down with its container (CSS `max-width: 100%` in ./html.ts).

import type { TopLevelSpec } from 'vega-lite';
import { labelSize, placeLabels } from './label-placement';

/** Plot area in CSS pixels; axes and legends add to it. Two charts fit side by side at 1200 px. */
const WIDTH = 440;
const HEIGHT = 220;
const LABEL_FONT_SIZE = 11;

const CONFIG = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif',
  background: 'white',
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, gridColor: '#e8e8e8' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 360, orient: 'bottom', direction: 'vertical' },
  range: { category: { scheme: 'tableau10' } },
} as const;

export interface LinePoint {
  series: string;
  step: number;
  value: number;
}

/** One line per series against the step; `log` for values that span orders of magnitude. */
export async function lineChart(points: LinePoint[], y: { title: string; log: boolean; markers: boolean }, description: string): Promise<string> {
  const spec: TopLevelSpec = {
    width: WIDTH,
    height: HEIGHT,
    data: { values: points },
    mark: { type: 'line', strokeWidth: 1.75, point: y.markers ? { size: 28, filled: true } : false },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step', axis: { format: 'd', tickMinStep: 1 } },
      y: {
        field: 'value',
        type: 'quantitative',
        title: y.title,
        scale: y.log ? { type: 'log' } : { zero: false },
        // A log axis labels each power of ten once (1e-3, 1e-2, …) instead of crowding 2, 3, 4, … between.
        axis: y.log ? { format: '.0e', tickCount: 4 } : {},
      },
      color: { field: 'series', type: 'nominal', title: null, sort: null },
    },
    config: CONFIG,
  };
  const view = await runView(spec);
  try {
    return await svgOf(view, description);
  } finally {
    view.finalize();
  }
}

export interface ScatterPoint {
  /** Written next to the point. */
  label: string;
  /** Colours the points: the evaluation set, say. */
  group: string;
  x: number;
  y: number;
}

export interface ScatterAxes {
  /** `domain` fixes the range the axis spans (a share: 0 to 1), labelled at `ticks`. */
  x: { title: string; format?: string; domain?: [number, number]; ticks?: number[] };
  y: { title: string };
  group: string;
}

/**
 * One point each, with its label beside it where it overlaps no other label or point (./label-placement.ts).
 * Drawn twice: the first pass fixes the scales, which say where each point lands in pixels; the second
 * adds the labels at the places chosen, on exactly those scales.
 */
export async function labelledScatter(points: ScatterPoint[], axes: ScatterAxes, description: string): Promise<string> {
  const x = { field: 'x', type: 'quantitative', title: axes.x.title, axis: { ...(axes.x.format ? { format: axes.x.format } : {}), ...(axes.x.ticks ? { values: axes.x.ticks } : {}) } } as const;
  const y = { field: 'y', type: 'quantitative', title: axes.y.title } as const;
  // One group needs no legend: the axis title names it.
  const legend = new Set(points.map((p) => p.group)).size > 1 ? {} : null;
  const pointLayer = { mark: { type: 'point', filled: true, size: 64, opacity: 0.9 }, encoding: { color: { field: 'group', type: 'nominal', title: axes.group, legend } } } as const;
  const base = { width: WIDTH, height: HEIGHT, config: CONFIG } as const;

  const first = await runView({
    ...base,
    data: { values: points },
    layer: [pointLayer],
    // Padding keeps points off the frame, where they would sit on the axis lines.
    encoding: {
      x: { ...x, scale: { domain: axes.x.domain ?? around(points.map((p) => p.x)), zero: false, nice: !axes.x.domain, padding: 14 } },
      y: { ...y, scale: { domain: around(points.map((p) => p.y)), zero: false, nice: true, padding: 14 } },
    },
  });
  const scaleX = first.scale('x') as Scale;
  const scaleY = first.scale('y') as Scale;
  first.finalize();

  const sizes = points.map((p) => labelSize(p.label, LABEL_FONT_SIZE));
  const boxes = placeLabels(
    points.map((p) => ({ x: scaleX(p.x), y: scaleY(p.y) })),
    sizes,
    { width: WIDTH, height: HEIGHT, overflow: 90, pointRadius: 5 },
  );
  const labelled = points.map((p, i) => ({ ...p, labelX: scaleX.invert(boxes[i].x), labelY: scaleY.invert(boxes[i].y) }));
  // The scales of the first pass, verbatim: the label positions must not widen them.
  const fixed = (s: Scale) => ({ domain: s.domain(), nice: false, zero: false });
  const second = await runView({
    ...base,
    data: { values: labelled },
    encoding: { x: { ...x, scale: fixed(scaleX) }, y: { ...y, scale: fixed(scaleY) } },
    layer: [
      pointLayer,
      {
        mark: { type: 'text', align: 'center', baseline: 'middle', fontSize: LABEL_FONT_SIZE, color: '#222' },
        encoding: { x: { ...x, field: 'labelX' }, y: { ...y, field: 'labelY' }, text: { field: 'label' } },
      },
    ],
  });
  try {
    return await svgOf(second, description);
  } finally {
    second.finalize();
  }
}

/**
 * The data's extent, widened by 5% each way when every value is the same: a scale over a single
 * value has no width, and its axis would print that value to six decimals with nothing around it.
 */
function around(values: number[]): [number, number] {
  const [low, high] = [Math.min(...values), Math.max(...values)];
  if (high - low > 1e-9 * Math.max(1, Math.abs(high))) return [low, high];
  const half = Math.abs(high) * 0.05 || 1;
  return [low - half, high + half];
}

/** A continuous vega scale: value → pixel, and back. */
type Scale = ((v: number) => number) & { invert(px: number): number; domain(): [number, number] };

type View = InstanceType<(typeof import('vega'))['View']>;

/** Compiles and runs the spec headless; a problem vega would only log fails the chart instead. */
async function runView(spec: TopLevelSpec): Promise<View> {
  // Both packages are ES modules with top-level await (vega-canvas), which `require` cannot load.
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const errors: unknown[] = [];
  const logger = vega.logger(vega.Error, 'error', (_method, _level, args) => errors.push(args[0]));
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none', logger });
  await view.runAsync();
  if (errors.length) {
    view.finalize();
    throw new Error(`vega could not draw a chart: ${errors[0] instanceof Error ? errors[0].message : String(errors[0])}`);
  }
  return view;
}

async function svgOf(view: View, description: string): Promise<string> {
  const svg = await view.toSVG();
  return svg.replace(/ xmlns(:xlink)?="[^"]*"/g, '').replace('<svg ', `<svg role="img" aria-label="${escapeAttribute(description)}" `);
}

const escapeAttribute = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
