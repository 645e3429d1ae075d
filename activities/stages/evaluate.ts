// The `evaluate` stage: perplexity of each input model on the chosen evaluation sets, under the
// pinned protocol of activities/data/perplexity.ts. The protocol and the data hashes go into the
// report. Its definition: schemas/stages/evaluate.ts.

import { backendInfo } from '../../kernels';
import { resolveData, type DataStream } from '../data/splits';
import { badInput, dataReadBy, inputModel, type StageRun } from '../compute';
import { evaluateSets, type SetResult } from '../train/evaluation';
import { modelFromCheckpoint } from '../train/model-state';

export const evaluate: StageRun<'evaluate'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const { recipe } = task;
  const context = recipe.model.context;
  let streams: DataStream[];
  try {
    const data = resolveData(dataReadBy(stage, recipe), { tokenizer: recipe.model.tokenizer, context });
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
    // Built for the checkpoint's own config: an input may carry adapters (SLoRB branches).
    const model = await modelFromCheckpoint(await inputModel(deps, task, from), { threads: deps.threads, device: recipe.device });
    ctx.onCancel(() => model.cancel());
    try {
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
  const { name, blas, threads } = backendInfo(recipe.device);
  const body = { stage: stage.id, runtime: stage.runtime, backend: { name, blas, threads }, models: report };
  const stored = await deps.store.put(Buffer.from(JSON.stringify(body, null, 2)));
  return {
    artifacts: [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'eval-report', role: 'report' }],
    metrics,
    computeMs: performance.now() - began,
    events: [],
  };
};
