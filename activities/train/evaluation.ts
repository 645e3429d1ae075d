// Perplexity of a model (in the engine, or in ONNX Runtime) on token streams, under the pinned protocol of
// activities/data/perplexity.ts (non-overlapping windows of `context` tokens, the last partial
// window dropped). Used by evaluate stages and by training's periodic evaluation.

import { perplexityWindows, reducePerplexity, type PerplexityResult } from '../data/perplexity';
import type { DataStream } from '../data/splits';

/** What evaluates NLLs: the engine's Model, or ONNX Runtime's (kernels/onnx/runtime.ts); same layout. */
export interface NllRunner {
  evalNll(tokens: Int32Array, B: number, T: number): Promise<Float32Array>;
}

export interface SetResult {
  set: string;
  result: PerplexityResult;
  stream: DataStream['info'];
}

/**
 * Perplexity of `model` on each stream, `batch` windows per forward pass. `onWindows` reports
 * windows finished; `cancelled` is checked between passes (a cancelled call returns the sets
 * finished so far).
 */
export async function evaluateSets(
  model: NllRunner,
  streams: readonly DataStream[],
  context: number,
  batch: number,
  cancelled: () => boolean,
  onWindows: (done: number) => void = () => {},
): Promise<SetResult[]> {
  const results: SetResult[] = [];
  for (const stream of streams) {
    const w = perplexityWindows(stream.tokens, context, `data.eval.${stream.info.name}`);
    const nll = new Float32Array(w.windows * (context - 1));
    for (let first = 0; first < w.windows; first += batch) {
      if (cancelled()) return results;
      const B = Math.min(batch, w.windows - first);
      const out = await model.evalNll(w.tokens.subarray(first * context, (first + B) * context), B, context);
      nll.set(out, first * (context - 1));
      onWindows(B);
    }
    results.push({ set: stream.info.name, result: reducePerplexity(nll, w.protocol), stream: stream.info });
  }
  return results;
}
