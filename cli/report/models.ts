// The models a run produced and what its measuring stages recorded about them (ModelMeasures):
// perplexity per evaluation set and runtime, 2:4 share, size, bits per weight, speed. An evaluate
// stage records them as its final metrics, `<model stage>/<measure>`; every measure but perplexity is
// optional (a run records what its stages were asked for, and older runs recorded perplexity only),
// so a missing one is null, never an error. Kinds are read through the stage registry: a model is
// what a kind `produces: 'model'` hands on, a measurement what a `report` kind records about its `from`.

import type { ModelMeasures, ShowOutput, ShowStage } from '../../schemas/cli';
import { STAGES, definitionOf, type StageKind, type StageProduct } from '../../schemas/stages';

/** `run:stage`, as operands and labels spell a model. */
export const modelLabel = (m: { run: string; stage: string }) => `${m.run}:${m.stage}`;

function productOf(stage: ShowStage): StageProduct | null {
  // A run recorded by a version that had a kind this one lacks still reads, without its models.
  return stage.kind in STAGES ? definitionOf(stage.kind as StageKind).produces : null;
}

/** Why the stage handed on no model, in words; null when it did (its kind produces one and the artifact is recorded). */
export function whyNoModel(stage: ShowStage): string | null {
  const product = productOf(stage);
  if (product === null) return `this version of sieve does not know the stage kind ${stage.kind}`;
  if (product !== 'model') return `its kind, ${stage.kind}, makes a ${product}, not a model`;
  if (!stage.artifacts.some((a) => a.role === 'model')) return stage.status === 'completed' ? 'no model artifact is recorded for it' : `it is ${stage.status}`;
  return null;
}

export const producedModel = (stage: ShowStage) => whyNoModel(stage) === null;

/** The stages that recorded measures of a model stage: report-producing stages naming it in `from`, in recipe order. */
function measuringStages(run: ShowOutput, stageId: string): ShowStage[] {
  return run.stages.filter((s) => productOf(s) === 'report' && s.from.includes(stageId));
}

/** The models of a run that some stage measured, by stage id, in recipe order. */
export function measuredModels(run: ShowOutput): string[] {
  return run.stages.filter((s) => producedModel(s) && measuringStages(run, s.id).length > 0).map((s) => s.id);
}

/** Final metric names (after `<stage>/`) of the measures that are one number per model. */
const SCALARS = {
  two_four: 'twoFour',
  params: 'params',
  nonzero_params: 'nonzeroParams',
  bytes: 'bytes',
  bytes_dense: 'bytesDense',
  bits_per_weight: 'bitsPerWeight',
} as const satisfies Record<string, keyof ModelMeasures>;

/** The measures of the model stage `stageId` of `run`, from every stage that measured it. */
export function measureModel(run: ShowOutput, stageId: string): ModelMeasures {
  const stage = run.stages.find((s) => s.id === stageId);
  const measuring = measuringStages(run, stageId);
  const out: ModelMeasures = {
    run: run.id,
    stage: stageId,
    kind: stage?.kind ?? 'unknown',
    evaluatedBy: measuring.map((s) => s.id),
    perplexity: [],
    twoFour: null,
    params: null,
    nonzeroParams: null,
    bytes: null,
    bytesDense: null,
    bitsPerWeight: null,
    throughput: [],
  };
  for (const measurer of measuring) {
    // A plain `<set>/ppl` comes from the stage's only runtime, or from the native one when it ran both
    // (then ONNX Runtime's is `<set>/ppl/onnxruntime`).
    const config = run.recipe.stages.find((s) => s.id === measurer.id) as { runtime?: unknown } | undefined;
    const plainRuntime = config?.runtime === 'onnxruntime' ? 'onnxruntime' : 'native';
    for (const [name, value] of Object.entries(measurer.metrics)) {
      if (!name.startsWith(`${stageId}/`)) continue;
      const parts = name.slice(stageId.length + 1).split('/');
      const [first, second, third] = parts;
      if (parts.length === 1 && first in SCALARS) {
        const field = SCALARS[first as keyof typeof SCALARS];
        out[field] ??= value;
      } else if (parts.length === 2 && (second === 'tokens_per_sec' || second === 'latency_ms')) {
        let entry = out.throughput.find((t) => t.runtime === first);
        if (!entry) out.throughput.push((entry = { runtime: first, tokensPerSec: null, latencyMs: null }));
        if (second === 'tokens_per_sec') entry.tokensPerSec ??= value;
        else entry.latencyMs ??= value;
      } else if (second === 'ppl' && parts.length <= 3) {
        const runtime = third ?? plainRuntime;
        if (!out.perplexity.some((p) => p.set === first && p.runtime === runtime)) out.perplexity.push({ set: first, runtime, value });
      }
    }
  }
  return out;
}
