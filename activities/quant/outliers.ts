// ReQuant's self-adaptive outlier selection (METHODS.md §6.3, Algorithm 1; its internals are not
// published, so this is our design, documented in docs/quantization.md). Within a layer, the
// outliers are its largest-magnitude weights (they stretch the groups' ranges). Across layers, a
// budget of `budget` outliers is shared out to minimise the sum of the layers' output errors on the
// calibration inputs, Σ_l ‖(W_l − Ŵ_l)X_l‖², where Ŵ_l is the layer re-quantized with its
// outliers held out and restored in 16 bits. Each layer offers a few candidate counts (fractions
// r·{¼, ½, 1, 2, 4, 8} of its size, r the global ratio); starting from none, the allocation
// repeatedly takes the step to a layer's next candidate with the largest error reduction per
// outlier that still fits the budget, until no step fits or helps. Ties go to the earlier layer.
import { finalWeight, layerError, quantizeLayer, sparseSetOf, type BaseQuantizer, type Layer } from './quantizer';

const CANDIDATE_FRACTIONS = [0.25, 0.5, 1, 2, 4, 8];

/** The `count` largest-|w| weights of the layer that are not pruned, largest first (ties: lower index). */
export function largestWeights(layer: Layer, count: number): number[] {
  const order: number[] = [];
  for (let i = 0; i < layer.weight.length; i++) if (!layer.pruned?.[i]) order.push(i);
  order.sort((a, b) => Math.abs(layer.weight[b]) - Math.abs(layer.weight[a]) || a - b);
  return order.slice(0, count);
}

/** The layer's output error with its `count` largest weights detached (held at zero, then restored in 16 bits). */
export async function errorWithOutliers(layer: Layer, base: BaseQuantizer, count: number): Promise<number> {
  const outliers = largestWeights(layer, count);
  const held = layer.pruned ? Uint8Array.from(layer.pruned) : new Uint8Array(layer.weight.length);
  for (const i of outliers) held[i] = 1;
  const q = await quantizeLayer(layer, base, count > 0 || layer.pruned ? held : null);
  return layerError(layer, finalWeight(q, sparseSetOf(layer, outliers), base.device));
}

/** Outliers per layer, summing to at most `budget`, by the greedy allocation of the header. */
export async function allocateOutliers(layers: readonly Layer[], base: BaseQuantizer, ratio: number, budget: number, onLayer: () => void = () => {}): Promise<Map<string, number>> {
  const options: { counts: number[]; errors: number[] }[] = [];
  for (const layer of layers) {
    const unpruned = layer.weight.length - (layer.pruned?.reduce((n, p) => n + p, 0) ?? 0);
    const counts = [...new Set([0, ...CANDIDATE_FRACTIONS.map((f) => Math.min(unpruned, Math.floor(f * ratio * layer.weight.length)))])].sort((a, b) => a - b);
    const errors: number[] = [];
    for (const count of counts) errors.push(await errorWithOutliers(layer, base, count));
    onLayer();
    options.push({ counts, errors });
  }
  const at = layers.map(() => 0);
  let used = 0;
  for (;;) {
    let best: { layer: number; gain: number } | null = null;
    options.forEach((o, l) => {
      const next = at[l] + 1;
      if (next >= o.counts.length) return;
      const cost = o.counts[next] - o.counts[at[l]];
      const gain = (o.errors[at[l]] - o.errors[next]) / cost;
      if (used + cost <= budget && gain > 0 && (best === null || gain > best.gain)) best = { layer: l, gain };
    });
    if (best === null) break;
    const { layer } = best;
    used += options[layer].counts[at[layer] + 1] - options[layer].counts[at[layer]];
    at[layer]++;
  }
  return new Map(layers.map((layer, l) => [layer.name, options[l].counts[at[l]]]));
}
