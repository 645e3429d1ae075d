// What a stage will allocate, estimated from the recipe alone, so that a model or batch that
// cannot fit is refused by `sieve validate` and by the worker before anything is allocated
// (a stage that runs out of memory midway wastes the time until then, and retrying it cannot
// help). The arithmetic mirrors the CPU engine's allocations (kernels/cpu/model.cc:
// layout_activations for training, the inference arena of infer), in float32 bytes; the
// corpus's token ids and small bookkeeping are left out.
//
// Sandbox-pure (it is part of the stage definitions the workflow imports).
import { parameterCount, vocabSize, type Model } from './model';

/** Bytes at the stage's peak, by part, in the order they are reported. */
export type MemoryEstimate = Array<{ what: string; bytes: number }>;

const FLOAT = 4;

function shape(model: Model) {
  const C = model.dim;
  const H = Math.round(model.mlpRatio * C);
  return { C, H, FC: model.family === 'gpt2' ? H : 2 * H, V: vocabSize(model) ?? 0, L: model.layers, NH: model.heads, T: model.context };
}

/** LM-head rows formed at once (the engine's head_chunk): bounds the (rows, V) logits buffer. */
const headChunk = (N: number, V: number) => Math.min(N, Math.max(256, Math.floor(2 ** 22 / V)));

/** Training with AdamW on micro-batches of `windows` windows of `context` tokens, `threads` engine threads. */
export function trainingMemory(model: Model, windows: number, threads: number): MemoryEstimate {
  const { C, H, FC, V, L, NH, T } = shape(model);
  const P = parameterCount(model);
  const N = windows * T;
  const perLayer = N * (7 * C + 4 + FC + H) + windows * NH * T * T;
  const grads = N * (6 * C + FC + H);
  const other = (L + 1) * N * C + N * (C + 2) + headChunk(N, V) * V + threads * T * T + 2 * N + Math.max(3 * C * C, FC * C, C * H);
  return [
    { what: 'weights', bytes: P * FLOAT },
    { what: 'gradients', bytes: P * FLOAT },
    { what: 'AdamW moments', bytes: 2 * P * FLOAT },
    { what: `activations for ${windows} × ${T} tokens per micro-batch`, bytes: (L * perLayer + grads + other) * FLOAT },
  ];
}

/** The memory-light forward over `windows` windows at a time (evaluation, a teacher's logits). */
export function inferenceMemory(model: Model, windows: number, threads: number): MemoryEstimate {
  const { C, H, FC, V, T } = shape(model);
  const Nc = Math.max(1, Math.min(windows, Math.floor(4096 / T))) * T;
  const arena = Nc * (6 * C + 2 + FC + H) + threads * T * T + headChunk(Nc, V) * V;
  return [
    { what: 'weights', bytes: parameterCount(model) * FLOAT },
    { what: `activations for ${Nc / T} × ${T} tokens per pass`, bytes: arena * FLOAT },
  ];
}

/** Stages that hold the model's weights a few times over in float32 and run no forward: one part per copy. */
export function weightCopies(model: Model, copies: readonly string[]): MemoryEstimate {
  const bytes = parameterCount(model) * FLOAT;
  return copies.map((what) => ({ what, bytes }));
}

export const totalBytes = (estimate: MemoryEstimate) => estimate.reduce((sum, part) => sum + part.bytes, 0);

/** 1536 → "1.5 KiB": binary units, three significant digits. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${Number(value.toPrecision(3))} ${units[unit]}`;
}
