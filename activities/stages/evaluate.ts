// The `evaluate` stage: perplexity of each input model on the chosen evaluation sets, under the
// pinned protocol of activities/data/perplexity.ts (non-overlapping windows of `context` tokens,
// the last partial window dropped). The protocol and the data hashes go into the report.

import { Model } from '../kernels';
import type { StageOutput, StageTask } from '../schemas/pipeline';
import { perplexityWindows, reducePerplexity, type PerplexityResult } from './data/perplexity';
import { resolveData, type DataStream } from './data/splits';
import { badInput, findStage, inputModel, type ComputeDeps } from './compute';
import type { StageContext } from './stage-context';
import { engineConfig, readTrainingCheckpoint } from './train/model-state';

export interface SetResult {
  set: string;
  result: PerplexityResult;
  stream: DataStream['info'];
}

/**
 * Perplexity of `model` on each stream, `batch` windows per forward pass. `onWindows` reports
 * windows finished; `cancelled` is checked between passes.
 */
export async function evaluateSets(
  model: Model,
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

export async function evaluate(deps: ComputeDeps, ctx: StageContext, task: StageTask): Promise<StageOutput> {
  const began = performance.now();
  const stage = findStage(task, 'evaluate');
  const { recipe } = task;
  const context = recipe.model.context;
  let streams: DataStream[];
  try {
    const data = resolveData(recipe.data, { tokenizer: recipe.model.tokenizer, context });
    streams = stage.sets.map((name) => data.eval.find((s) => s.info.name === name)!);
  } catch (err) {
    throw badInput(err);
  }
  const inputs = typeof stage.from === 'string' ? [stage.from] : stage.from;
  const total = inputs.length * streams.reduce((n, s) => n + Math.floor(s.tokens.length / context), 0);
  let done = 0;
  const metrics: Record<string, number> = {};
  const report: Record<string, SetResult[]> = {};
  for (const from of inputs) {
    const model = Model.create(engineConfig(recipe.model), { threads: deps.threads });
    ctx.onCancel(() => model.cancel());
    try {
      await readTrainingCheckpoint(await inputModel(deps, task, from), model);
      const results = await evaluateSets(model, streams, context, stage.batch, () => ctx.isCancelled(), (n) => {
        done += n;
        ctx.heartbeat({ step: done, steps: total, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
      });
      if (ctx.isCancelled()) ctx.throwCancelled();
      report[from] = results;
      for (const r of results) {
        metrics[`${from}/${r.set}/ppl`] = r.result.perplexity;
        metrics[`${from}/${r.set}/nll`] = r.result.meanNll;
      }
    } finally {
      model.dispose();
    }
  }
  const body = { stage: stage.id, runtime: stage.runtime, backend: Model.backend, models: report };
  const stored = await deps.store.put(Buffer.from(JSON.stringify(body, null, 2)));
  return {
    artifacts: [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'eval-report', role: 'report' }],
    metrics,
    computeMs: performance.now() - began,
    events: [],
  };
}
