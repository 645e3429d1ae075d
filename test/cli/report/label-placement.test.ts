// Scatter labels: beside their point, clear of other labels and points, inside the allowed area.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { labelSize, placeLabels, type Box } from '../../../cli/report/label-placement';

const plot = { width: 440, height: 220, overflow: 90, pointRadius: 5 };
const overlaps = (a: Box, b: Box) => Math.abs(a.x - b.x) < (a.width + b.width) / 2 && Math.abs(a.y - b.y) < (a.height + b.height) / 2;

describe('label placement', () => {
  it('puts a lone label to the right of its point, vertically centred', () => {
    const [box] = placeLabels([{ x: 100, y: 100 }], [labelSize('run:dense', 11)], plot);
    assert.equal(box.y, 100);
    assert.ok(box.x - box.width / 2 > 100, 'right of the point');
  });

  it('keeps crowded labels apart and off every point', () => {
    // Two models on top of each other and a third close by: a realistic clash (same size, similar perplexity).
    const points = [
      { x: 200, y: 100 },
      { x: 200, y: 104 },
      { x: 206, y: 98 },
    ];
    const sizes = points.map((_, i) => labelSize(`cmp-0000000${i}:sparse`, 11));
    const boxes = placeLabels(points, sizes, plot);
    for (let i = 0; i < boxes.length; i++) {
      for (let j = 0; j < boxes.length; j++) if (i !== j) assert.ok(!overlaps(boxes[i], boxes[j]), `labels ${i} and ${j} overlap`);
      for (const p of points) assert.ok(!overlaps(boxes[i], { ...p, width: 10, height: 10 }), `label ${i} covers a point`);
    }
    assert.deepEqual(placeLabels(points, sizes, plot), boxes, 'deterministic');
  });

  it('turns a label inwards at the right edge rather than over the axis or far outside', () => {
    const size = labelSize('a-rather-long-run-id:sparse, another-run:sparse', 11);
    const [box] = placeLabels([{ x: 440, y: 110 }], [size], plot);
    assert.ok(box.x + box.width / 2 <= plot.width + plot.overflow, 'within the overflow allowed');
    const [low] = placeLabels([{ x: 10, y: 220 }], [labelSize('x:dense', 11)], plot);
    assert.ok(low.y + low.height / 2 <= plot.height && low.x - low.width / 2 >= 0, 'never over the axes');
  });
});
