// kernels/onnx/runtime.ts — a sieve ONNX export (./export.ts) run by onnxruntime-node on the CPU,
// with the inference contract of the engine's Model (kernels/index.ts): `logits` and `evalNll`
// take the same arguments, check them with the same wording and errors (InvalidArgumentError;
// StateError once disposed), and return the same layouts.
//
// Promises: a model without sieve's `sieve.config` metadata is refused with one error naming the
// file; evalNll forms its log-softmax in float64 from ORT's float32 logits and runs the windows in
// chunks of at most LOGIT_BUDGET logits (one window at least), so memory stays bounded at large
// vocabularies, reporting progress after each chunk.
import { readFile } from 'node:fs/promises';

import { onnx } from 'onnx-proto';
import type * as Ort from 'onnxruntime-node';

import { z } from 'zod';

import { CheckpointConfig } from '../checkpoint';
import { InvalidArgumentError, StateError } from '../index';
import { INPUT_NAME, OUTPUT_NAME } from './export';

// Loaded on first use: most processes (the CLI, a worker whose stages never touch ONNX) never
// need onnxruntime's native library.
const ort = () => require('onnxruntime-node') as typeof Ort;

/** Logits formed per evalNll chunk: 2^22 floats (16 MiB), the engine's own head-chunk bound. */
const LOGIT_BUDGET = 2 ** 22;

export interface OnnxModelOptions {
  /** ORT's intra-op threads (its inter-op pool is 1: the graph runs sequentially). */
  threads: number;
}

function fail(message: string): never {
  throw new InvalidArgumentError(message);
}

function positiveInt(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) fail(`Expected an integer >= 1 for ${name} but received ${String(v)}`);
  return v;
}

/** The model's sieve config, from its metadata; `source` names the file (or the bytes) in errors. */
function sieveConfig(bytes: Uint8Array, source: string): CheckpointConfig {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new Error(`${source} is not an ONNX model: ${(err as Error).message}`);
  }
  const raw = model.metadataProps.find((p) => p.key === 'sieve.config')?.value;
  if (raw === undefined || raw === null) {
    throw new Error(`${source} has no "sieve.config" metadata: it is not a model exported by sieve (kernels/onnx/export.ts)`);
  }
  let parsed: ReturnType<typeof CheckpointConfig.safeParse>;
  try {
    parsed = CheckpointConfig.safeParse(JSON.parse(raw));
  } catch {
    throw new Error(`${source}: its "sieve.config" metadata is not valid JSON`);
  }
  if (!parsed.success) throw new Error(`${source}: its "sieve.config" metadata is invalid: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export class OnnxModel {
  readonly vocab: number;
  readonly context: number;
  #session: Ort.InferenceSession | null;

  private constructor(session: Ort.InferenceSession, config: CheckpointConfig) {
    this.#session = session;
    this.vocab = config.vocab;
    this.context = config.context;
  }

  /** Load an exported model from its bytes or its file. */
  static async create(model: Uint8Array | string, options: OnnxModelOptions): Promise<OnnxModel> {
    const threads = positiveInt(options.threads, 'options.threads');
    const bytes = typeof model === 'string' ? await readFile(model) : model;
    const source = typeof model === 'string' ? model : `the ONNX model given as ${bytes.byteLength} bytes`;
    const config = sieveConfig(bytes, source);
    const session = await ort().InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    return new OnnxModel(session, config);
  }

  #live(): Ort.InferenceSession {
    if (!this.#session) throw new StateError('model has been disposed');
    return this.#session;
  }

  #check(tokens: Int32Array, B: number, T: number, minT: number): void {
    positiveInt(B, 'B');
    if (typeof T !== 'number' || !Number.isInteger(T) || T < minT) fail(`Expected an integer >= ${minT} for T but received ${String(T)}`);
    if (T > this.context) fail(`T = ${T} exceeds the model's context (${this.context})`);
    if (!(tokens instanceof Int32Array) || tokens.length !== B * T) {
      const got = tokens instanceof Int32Array ? `an Int32Array of ${tokens.length} elements` : String(tokens);
      fail(`Expected an Int32Array of B*T = ${B * T} elements for tokens but received ${got}`);
    }
    for (let i = 0; i < tokens.length; i++) {
      if (!(tokens[i] >= 0 && tokens[i] < this.vocab)) fail(`tokens[${i}] = ${tokens[i]} is not a token id of this model (vocab ${this.vocab})`);
    }
  }

  async #run(tokens: Int32Array, B: number, T: number): Promise<Float32Array> {
    const ids = new (ort().Tensor)('int64', BigInt64Array.from(tokens, BigInt), [B, T]);
    const out = await this.#live().run({ [INPUT_NAME]: ids });
    return out[OUTPUT_NAME].data as Float32Array;
  }

  /** Logits (B·T·V, row-major) of B windows of T tokens, as Model.logits. */
  async logits(tokens: Int32Array, B: number, T: number): Promise<Float32Array> {
    this.#live();
    this.#check(tokens, B, T, 1);
    return this.#run(tokens, B, T);
  }

  /**
   * Next-token NLL of every predicted position, as Model.evalNll: result[b·(T−1) + t] is
   * −log p(tokens[b, t+1] | tokens[b, ..t]), natural log. `onProgress(done, total)` counts windows.
   */
  async evalNll(tokens: Int32Array, B: number, T: number, onProgress?: (done: number, total: number) => void): Promise<Float32Array> {
    this.#live();
    this.#check(tokens, B, T, 2);
    const V = this.vocab;
    const nll = new Float32Array(B * (T - 1));
    const perChunk = Math.max(1, Math.floor(LOGIT_BUDGET / (T * V)));
    for (let b0 = 0; b0 < B; b0 += perChunk) {
      const bc = Math.min(perChunk, B - b0);
      const chunk = tokens.subarray(b0 * T, (b0 + bc) * T);
      const logits = await this.#run(chunk, bc, T);
      for (let b = 0; b < bc; b++) {
        for (let t = 0; t < T - 1; t++) {
          const row = (b * T + t) * V;
          let max = -Infinity;
          for (let j = 0; j < V; j++) if (logits[row + j] > max) max = logits[row + j];
          let sum = 0;
          for (let j = 0; j < V; j++) sum += Math.exp(logits[row + j] - max);
          nll[(b0 + b) * (T - 1) + t] = max + Math.log(sum) - logits[row + chunk[b * T + t + 1]];
        }
      }
      onProgress?.(b0 + bc, B);
    }
    return nll;
  }

  /**
   * Release the session; later calls throw StateError. Synchronous like Model.dispose:
   * onnxruntime-node frees the native session inside release() before its promise settles.
   */
  dispose(): void {
    const session = this.#session;
    this.#session = null;
    void session?.release();
  }
}
