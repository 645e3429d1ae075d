// Shared by the ONNX export tests: small real engine models (trained a few steps, so the weights
// are not the initialisation's), a model's state as the CheckpointState a stage would save, and
// the measure of how far two logit arrays are apart, and exported bytes read back.
import { onnx } from 'onnx-proto';

import type { CheckpointState } from '../../../kernels/checkpoint';
import { Model, type ModelConfig } from '../../../kernels';
import { trainingCheckpointState } from '../../../activities/train/model-state';

export const gpt2: ModelConfig = { family: 'gpt2', layers: 2, dim: 32, heads: 4, context: 32, vocab: 64, mlpHidden: 128, normEps: 1e-5, ropeTheta: null, adapters: null };
export const llama: ModelConfig = { ...gpt2, family: 'llama', mlpHidden: 96, ropeTheta: 10000 };

/** Deterministic token ids in [0, vocab). */
export function tokens(n: number, vocab: number, seed = 1): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s >>> 8) % vocab;
  }
  return out;
}

/** Deterministic floats in [lo, hi). */
export function uniform(n: number, lo: number, hi: number, seed = 7): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = lo + ((hi - lo) * (s >>> 8)) / 2 ** 24;
  }
  return out;
}

/** A model initialised with `seed` and trained `steps` AdamW steps on a repeating token pattern. */
export async function trainedModel(config: ModelConfig, steps = 8, seed = 1): Promise<Model> {
  const model = Model.create(config, { threads: 1, device: 'cpu' });
  model.init(seed);
  const B = 4;
  const T = config.context;
  for (let step = 0; step < steps; step++) {
    const x = tokens(B * (T + 1), Math.min(config.vocab, 16), seed + step);
    const inputs = new Int32Array(B * T);
    const targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      inputs.set(x.subarray(b * (T + 1), b * (T + 1) + T), b * T);
      targets.set(x.subarray(b * (T + 1) + 1, (b + 1) * (T + 1)), b * T);
    }
    model.zeroGrad();
    await model.forwardBackward(inputs, targets, B, T, { lossScale: 1, teacherLogits: null, kd: null });
    await model.optimizerStep({ lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 });
  }
  return model;
}

/** The model's state as a stage saves it, in memory. */
export const checkpointOf = (model: Model): CheckpointState => trainingCheckpointState(model, null, null, null);

/** max |a − b|, and that over max |b| (the logits' scale). */
export function maxDiff(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return { abs, rel: abs / scale };
}

/** The block linear weights (the engine's kind 'linear') of a model, or those of one scope. */
export function linearWeights(model: Model, scope: 'attn' | 'ffn' | null = null): string[] {
  return model.tensors.filter((t) => t.kind === 'linear' && (scope === null || t.scope === scope)).map((t) => t.name);
}

/** Exported bytes read back with onnx-proto: the model, its graph and its metadata as a record. */
export function decodeExport(bytes: Uint8Array): { model: onnx.ModelProto; graph: onnx.GraphProto; metadata: Record<string, string> } {
  const model = onnx.ModelProto.decode(bytes);
  return { model, graph: model.graph as onnx.GraphProto, metadata: Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value])) };
}

/** A float initializer's values (its raw_data is little-endian float32, not necessarily aligned in the decoded buffer). */
export function initializerValues(graph: onnx.GraphProto, name: string): { dims: number[]; values: Float32Array } {
  const init = graph.initializer.find((i) => i.name === name) as onnx.TensorProto | undefined;
  if (!init) throw new Error(`the export has no initializer "${name}"`);
  if (init.dataType !== onnx.TensorProto.DataType.FLOAT) throw new Error(`initializer "${name}" is not float32`);
  return { dims: init.dims.map(Number), values: new Float32Array(Uint8Array.from(init.rawData).buffer) };
}
