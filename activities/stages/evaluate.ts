// The `evaluate` stage: each input model's perplexity on the chosen evaluation sets under the
// pinned protocol (activities/data/perplexity.ts), run by sieve's engine, by ONNX Runtime on the
// model exported to ONNX, or by both — and then the two must agree within 0.5% or the stage fails
// naming both numbers. Beside the perplexities: the model's size and 2:4 share measured from its
// weights, each runtime's speed, and a greedy sample. Its definition: schemas/stages/evaluate.ts;
// its report: schemas/eval-report.ts. The report holds only what the evaluation computes, so its
// hash is the same on any machine and at any thread count; how fast it ran, and with how many
// threads, are metrics (the database's, beside the stage's environment).

import { availableParallelism } from 'node:os';

import { loadCheckpoint, type CheckpointState } from '../../kernels/checkpoint';
import { exportOnnx } from '../../kernels/onnx/export';
import { OnnxModel } from '../../kernels/onnx/runtime';
import { EVAL_REPORT_FORMAT, EVAL_REPORT_VERSION, type EvalReport, type ModelReport, type RuntimeName, type RuntimeReport } from '../../schemas/eval-report';
import { resolveData, type DataStream } from '../data/splits';
import { getTokenizer } from '../data/tokenizer';
import { badInput, dataReadBy, inputModel, type StageOf, type StageRun } from '../compute';
import { measureModel } from '../eval/measures';
import { greedySample } from '../eval/sample';
import type { StageContext } from '../stage-context';
import { evaluateSets, type NllRunner } from '../train/evaluation';
import { modelFromCheckpoint } from '../train/model-state';

/** The most ONNX Runtime's perplexity may differ from the engine's, relative, before the stage fails. */
export const RUNTIME_AGREEMENT = 0.005;

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
  const tokenizer = getTokenizer(recipe.model.tokenizer);
  const runtimes: RuntimeName[] = stage.runtime === 'both' ? ['native', 'onnxruntime'] : [stage.runtime];
  const threads = deps.threads ?? availableParallelism();
  const inputs = typeof stage.from === 'string' ? [stage.from] : stage.from;
  const windowsPerModel = streams.reduce((n, s) => n + Math.floor(s.tokens.length / context), 0);
  const total = inputs.length * runtimes.length * windowsPerModel;
  let done = 0;
  const progress = (n: number) => {
    done += n;
    ctx.heartbeat({ step: done, steps: total, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
  };

  const metrics: Record<string, number> = {};
  const models: EvalReport['models'] = {};
  for (const from of inputs) {
    const file = await inputModel(deps, task, from);
    // Built for the checkpoint's own config: an input may carry adapters (SLoRB branches).
    const native = await modelFromCheckpoint(file, { threads: deps.threads, device: recipe.device });
    ctx.onCancel(() => native.cancel());
    try {
      const checkpoint = await loadCheckpoint(file);
      const measures = measureModel(native, checkpoint.quant ?? null);
      const reports: RuntimeReport[] = [];
      let sample: ModelReport['sample'] | null = null;
      for (const runtime of runtimes) {
        const runner = runtime === 'native' ? native : await onnxRunner(checkpoint, from, task.recipe.name, threads);
        try {
          const measured = await measureRuntime(runtime, runner, streams, context, stage, ctx, progress);
          if (measured === null) return ctx.throwCancelled();
          reports.push(measured.report);
          metrics[`${from}/${runtime}/tokens_per_sec`] = measured.tokensPerSec;
          metrics[`${from}/${runtime}/latency_ms`] = measured.latencyMs;
          metrics[`${from}/${runtime}/threads`] = threads;
          sample ??= await greedySample(runner, tokenizer, stage.sample.prompt, stage.sample.tokens, context, native.config.vocab);
        } finally {
          if (runner !== native) runner.dispose();
        }
      }
      const agreement = runtimes.length === 2 ? compareRuntimes(from, reports[0], reports[1]) : null;
      models[from] = { measures, runtimes: reports, sample: sample!, agreement };
      Object.assign(metrics, modelMetrics(from, models[from]));
    } finally {
      native.dispose();
    }
  }
  const body: EvalReport = { format: EVAL_REPORT_FORMAT, version: EVAL_REPORT_VERSION, stage: stage.id, runtime: stage.runtime, models };
  const stored = await deps.store.put(Buffer.from(JSON.stringify(body, null, 2)));
  return {
    artifacts: [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'eval-report', role: 'report' }],
    metrics,
    computeMs: performance.now() - began,
    events: [],
  };
};

/** The model exported to ONNX in memory (as the export stage writes it) and loaded into ONNX Runtime. */
async function onnxRunner(checkpoint: CheckpointState, from: string, recipeName: string, threads: number): Promise<OnnxModel> {
  const bytes = exportOnnx(checkpoint, { metadata: { 'sieve.recipe': recipeName, 'sieve.stage': from } });
  return OnnxModel.create(bytes, { threads });
}

/** Perplexity on every set through one runtime, and its speed (each forward pass timed); null when cancelled midway. */
async function measureRuntime(
  runtime: RuntimeName,
  runner: NllRunner,
  streams: readonly DataStream[],
  context: number,
  stage: StageOf<'evaluate'>,
  ctx: StageContext,
  progress: (windows: number) => void,
): Promise<{ report: RuntimeReport; tokensPerSec: number; latencyMs: number } | null> {
  const passes: number[] = [];
  let tokens = 0;
  const timed: NllRunner = {
    evalNll: async (batch, B, T) => {
      const start = performance.now();
      const out = await runner.evalNll(batch, B, T);
      passes.push(performance.now() - start);
      tokens += B * T;
      return out;
    },
  };
  const results = await evaluateSets(timed, streams, context, stage.batch, () => ctx.isCancelled(), progress);
  if (results.length < streams.length) return null;
  const seconds = passes.reduce((a, b) => a + b, 0) / 1000;
  return {
    report: {
      runtime,
      sets: results.map((r) => ({ set: r.set, perplexity: r.result.perplexity, meanNll: r.result.meanNll, predicted: r.result.predicted, protocol: r.result.protocol, stream: r.stream })),
      batch: stage.batch,
    },
    tokensPerSec: seconds > 0 ? tokens / seconds : 0,
    latencyMs: median(passes),
  };
}

/** Runtime `both`: each set's perplexities, relative difference; beyond RUNTIME_AGREEMENT the stage fails. */
export function compareRuntimes(from: string, native: RuntimeReport, onnx: RuntimeReport): NonNullable<ModelReport['agreement']> {
  const agreement = native.sets.map((n, i) => {
    const o = onnx.sets[i];
    return { set: n.set, native: n.perplexity, onnxruntime: o.perplexity, relative: o.perplexity / n.perplexity - 1 };
  });
  const worst = agreement.find((a) => Math.abs(a.relative) > RUNTIME_AGREEMENT);
  if (worst) {
    throw badInput(
      new Error(
        `model ${from}: on ${worst.set} the native engine's perplexity is ${worst.native.toPrecision(6)} but ONNX Runtime's is ` +
          `${worst.onnxruntime.toPrecision(6)} (${(100 * worst.relative).toFixed(2)}%, more than ${100 * RUNTIME_AGREEMENT}% apart): the export or an engine is wrong`,
      ),
    );
  }
  return agreement;
}

/**
 * The stage's metrics for one model from its report: perplexity and NLL per set from the first
 * runtime (`<from>/<set>/ppl`), ONNX Runtime's beside it under `both` (`<from>/<set>/ppl/onnxruntime`),
 * and the measures. (Each runtime's speed is added where it is measured.)
 */
function modelMetrics(from: string, report: ModelReport): Record<string, number> {
  const metrics: Record<string, number> = {};
  const [first, second] = report.runtimes;
  for (const s of first.sets) {
    metrics[`${from}/${s.set}/ppl`] = s.perplexity;
    metrics[`${from}/${s.set}/nll`] = s.meanNll;
  }
  for (const s of second?.sets ?? []) metrics[`${from}/${s.set}/ppl/onnxruntime`] = s.perplexity;
  const m = report.measures;
  Object.assign(metrics, {
    [`${from}/params`]: m.params,
    [`${from}/nonzero_params`]: m.nonzeroParams,
    [`${from}/two_four`]: m.twoFour,
    [`${from}/two_four/ffn`]: m.twoFourByScope.ffn,
    [`${from}/two_four/attn`]: m.twoFourByScope.attn,
    [`${from}/bytes_dense`]: m.bytesDense,
    [`${from}/bytes`]: m.bytes,
    [`${from}/bits_per_weight`]: m.bitsPerWeight,
  });
  return metrics;
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
