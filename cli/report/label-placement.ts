// Where to write each point's label on a scatter plot so that labels overlap neither each other nor
// the points: a greedy search over places around each point, nearest first. vega's own label
// transform needs a canvas (node-canvas) to measure, which a headless server has no business
// installing; this works in pixels from an estimate of the text's width instead, and never hides a
// label: one with no free place goes where it overlaps least.

export interface Box {
  /** Centre, in pixels from the plot's top-left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A label's pixel size: a generous estimate for a sans-serif face (a browser's is about 0.55 em per character). */
export function labelSize(text: string, fontSize: number): { width: number; height: number } {
  return { width: Math.ceil(0.62 * fontSize * text.length), height: Math.ceil(1.2 * fontSize) };
}

/** Directions to try, nearest and most readable first: right of the point, then above, below, left, diagonals. */
const DIRECTIONS = [
  [1, 0],
  [0, -1],
  [0, 1],
  [-1, 0],
  [1, -1],
  [1, 1],
  [-1, -1],
  [-1, 1],
] as const;

/** The plot area in pixels; labels may stick out `overflow` pixels at the top and right, never over the axes. */
export interface PlotArea {
  width: number;
  height: number;
  overflow: number;
  pointRadius: number;
}

/** Label centres for points at `points` (pixels), each label of `sizes[i]`. Deterministic: the same input places the same way. */
export function placeLabels(points: { x: number; y: number }[], sizes: { width: number; height: number }[], plot: PlotArea): Box[] {
  const r = plot.pointRadius;
  const obstacles: Box[] = points.map((p) => ({ x: p.x, y: p.y, width: 2 * r, height: 2 * r }));
  const placed: Box[] = new Array(points.length);
  // Crowded points first: they have the fewest free places.
  const order = points.map((_, i) => i).sort((a, b) => crowding(points, b) - crowding(points, a) || a - b);
  for (const i of order) {
    const { x, y } = points[i];
    const { width, height } = sizes[i];
    let best: { box: Box; cost: number } | null = null;
    for (const gap of [3, 3 + height, 3 + 2 * height]) {
      for (const [dx, dy] of DIRECTIONS) {
        const box = { x: x + dx * (r + gap + width / 2), y: y + dy * (r + gap + height / 2), width, height };
        const cost = overlap(box, [...obstacles.filter((_, j) => j !== i), ...placed.filter(Boolean)]) + outside(box, plot);
        if (!best || cost < best.cost) best = { box, cost };
        if (cost === 0) break;
      }
      if (best!.cost === 0) break;
    }
    placed[i] = best!.box;
  }
  return placed;
}

/** How many other points lie within 40 px. */
function crowding(points: { x: number; y: number }[], i: number): number {
  return points.filter((p, j) => j !== i && Math.hypot(p.x - points[i].x, p.y - points[i].y) < 40).length;
}

/** Total area of `box` shared with `others`. */
function overlap(box: Box, others: Box[]): number {
  return others.reduce((sum, o) => {
    const w = Math.min(box.x + box.width / 2, o.x + o.width / 2) - Math.max(box.x - box.width / 2, o.x - o.width / 2);
    const h = Math.min(box.y + box.height / 2, o.y + o.height / 2) - Math.max(box.y - box.height / 2, o.y - o.height / 2);
    return sum + (w > 0 && h > 0 ? w * h : 0);
  }, 0);
}

/** Area of `box` beyond the allowed region, weighted so that leaving it is worse than touching another label. */
function outside(box: Box, plot: PlotArea): number {
  const left = Math.max(0, -(box.x - box.width / 2));
  const right = Math.max(0, box.x + box.width / 2 - (plot.width + plot.overflow));
  const top = Math.max(0, -plot.overflow - (box.y - box.height / 2));
  const bottom = Math.max(0, box.y + box.height / 2 - plot.height);
  return 4 * ((left + right) * box.height + (top + bottom) * box.width);
}
