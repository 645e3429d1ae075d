// kernels/index.ts — the typed TypeScript face of sieve's native engine (build/Release/sieve.node).
//
// Promises:
//   - Every argument is checked here, in JS, before native code sees it; a bad config, shape,
//     buffer or token id is one clear sentence in an InvalidArgumentError, never a crash. The
//     binding and the C ABI check again, and their status codes map to the same classes.
//   - Long calls return Promises and run off the JS thread (forwardBackward, optimizerStep,
//     evalNll, logits, updateMasks, materialize); `cancel()` makes the pending one reject with
//     CancelledError; a second call while one is pending rejects with StateError ("model is busy").
//   - A model's numbers live with its backend (its device's memory), and cross only as copies:
//     read / readTensor return a new Float32Array, write / writeTensor copy one in, and the
//     next call sees what was written. Nothing here points into native memory, so nothing
//     dangles after dispose() and a device backend needs no host-visible buffers.
//   - The device is chosen once per model (`Model.create(config, { device })`); a device this
//     build has no backend for is a BackendUnavailableError, never a silent CPU model.
//   - Objects crossing into native code set every field; `null` means unset.
// The native addon is loaded on first use, so importing this module never fails by itself.
import { join } from 'node:path';
import { chooseOpenBlasCore, weakCoreWarningHere } from './blas-core';
import { sparseLibraryWarning } from './sparse-library';

// ---------------------------------------------------------------- errors

/** Base class of every error the engine reports. `status` is the C ABI status code. */
export class SieveError extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = new.target.name;
    this.status = status;
  }
}
/** A bad config, shape, size, token id or option. */
export class InvalidArgumentError extends SieveError {
  constructor(message: string) {
    super(message, STATUS.invalidArgument);
  }
}
/** The call does not fit the model's state: busy with another call, or disposed. */
export class StateError extends SieveError {
  constructor(message: string) {
    super(message, STATUS.state);
  }
}
/** `cancel()` stopped the call between steps. After a cancelled forwardBackward the gradients are partial. */
export class CancelledError extends SieveError {
  constructor(message = 'cancelled') {
    super(message, STATUS.cancelled);
  }
}
export class OutOfMemoryError extends SieveError {
  constructor(message: string) {
    super(message, STATUS.outOfMemory);
  }
}
/** A bug in the engine; the message says what went wrong. */
export class InternalError extends SieveError {
  constructor(message: string) {
    super(message, STATUS.internal);
  }
}
/** The requested device has no backend in this build (e.g. 'cuda' where sieve was built without nvcc). */
export class BackendUnavailableError extends SieveError {
  constructor(message: string) {
    super(message, STATUS.unavailable);
  }
}

const STATUS = { invalidArgument: 1, state: 2, cancelled: 3, outOfMemory: 4, internal: 5, unavailable: 6 } as const;

function fromNative(e: unknown): unknown {
  if (!(e instanceof Error)) return e;
  const status = (e as Error & { status?: unknown }).status;
  switch (status) {
    case STATUS.invalidArgument:
      return new InvalidArgumentError(e.message);
    case STATUS.state:
      return new StateError(e.message);
    case STATUS.cancelled:
      return new CancelledError(e.message);
    case STATUS.outOfMemory:
      return new OutOfMemoryError(e.message);
    case STATUS.internal:
      return new InternalError(e.message);
    case STATUS.unavailable:
      return new BackendUnavailableError(e.message);
  }
  return e instanceof TypeError ? new InvalidArgumentError(e.message) : e;
}

function sync<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}

// ---------------------------------------------------------------- the native binding (declared exactly)

interface NativeConfig {
  family: number;
  layers: number;
  dim: number;
  heads: number;
  context: number;
  vocab: number;
  mlpHidden: number;
  normEps: number;
  ropeTheta: number;
  adapterScope: number;
  slorbK: number;
  scaleSegments: number;
}

interface NativeTensor {
  name: string;
  offset: number;
  size: number;
  shape: number[];
  kind: number;
  scope: number;
  decay: boolean;
}

interface NativeTimers {
  totalSeconds: number;
  gemmSeconds: number;
  gemmFlops: number;
  sparseGemmFlops: number;
  attentionSeconds: number;
  optimizerSeconds: number;
  tokens: number;
}

interface NativeModel {
  info(): { numParams: number; tensors: NativeTensor[] };
  device(): number;
  read(which: number, offset: number, count: number): Float32Array;
  write(which: number, offset: number, data: Float32Array): void;
  readTensor(name: string, which: number): Float32Array;
  writeTensor(name: string, which: number, data: Float32Array): void;
  init(seed: number): void;
  getStep(): number;
  setStep(step: number): void;
  getThreads(): number;
  setThreads(threads: number): void;
  setTransform(tensor: number, kind: number, params: Float32Array | null): void;
  setGradHook(tensor: number, kind: number, params: Float32Array | null): void;
  setUpdateRule(tensor: number, kind: number, params: Float32Array | null): void;
  updateMasks(tensors: number[], method: number): Promise<number[]>;
  maskStats(tensors: number[]): { pruned: number[]; total: number[] };
  count24(tensors: number[], bothWays: boolean): number[];
  ssteBeta(tensor: number): number;
  setMvue(tensor: number, on: boolean, seed: number): void;
  materialize(): Promise<void>;
  slorbInitMean(tensors: number[]): void;
  zeroGrad(): void;
  forwardBackward(
    inputs: Int32Array,
    targets: Int32Array,
    teacher: Float32Array | null,
    lossScale: number,
    kdAlpha: number,
    kdTau: number,
    B: number,
    T: number,
  ): Promise<{ loss: number; ce: number; kl: number; tokens: number }>;
  optimizerStep(lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, gradClip: number, skipNonFinite: boolean): Promise<number>;
  evalNll(tokens: Int32Array, B: number, T: number, onProgress: ((done: number, total: number) => void) | null): Promise<Float32Array>;
  logits(tokens: Int32Array, B: number, T: number, onProgress: ((done: number, total: number) => void) | null): Promise<Float32Array>;
  inputHessians(tensors: number[], tokens: Int32Array, B: number, T: number, onProgress: ((done: number, total: number) => void) | null): Promise<Float64Array>;
  postQuantIntegral(
    tensors: number[],
    deltas: Float32Array,
    points: Float64Array,
    weights: Float64Array,
    inputs: Int32Array,
    targets: Int32Array,
    M: number,
    T: number,
    micro: number,
    onProgress: ((done: number, total: number) => void) | null,
  ): Promise<{ pqi: Float64Array; losses: Float64Array }>;
  timers(): NativeTimers;
  resetTimers(): void;
  cancel(): void;
  dispose(): void;
  isBusy(): boolean;
}

interface NativeBinding {
  NativeModel: new (config: NativeConfig, device: number) => NativeModel;
  configCheck(config: NativeConfig): void;
  backend(device: number): { abiVersion: number; name: string; blas: string | null; threads: number };
  setDefaultThreads(threads: number): void;
  lrAt(step: number, peak: number, min: number, warmup: number, total: number): number;
  benchSgemm(transA: number, transB: number, M: number, N: number, K: number, reps: number, threads: number, engine: number): Promise<number>;
  quantizeRtn(device: number, w: Float32Array, mask: Float32Array | null, rows: number, cols: number, bits: number, group: number, symmetric: boolean): NativeQuantized;
  dequantize(device: number, codes: Uint8Array, scales: Float32Array, zeros: Uint8Array, rows: number, cols: number, bits: number, group: number): Float32Array;
  gptq(device: number, w: Float32Array, hessian: Float64Array, mask: Float32Array | null, rows: number, cols: number, bits: number, group: number, symmetric: boolean, damp: number, actOrder: boolean): Promise<NativeQuantized>;
}

interface NativeQuantized {
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array;
}

const ADDON = join(__dirname, '..', 'build', 'Release', 'sieve.node');
let binding: NativeBinding | null = null;

function native(): NativeBinding {
  if (binding) return binding;
  chooseOpenBlasCore(); // must precede the load: OpenBLAS reads it once, when the addon pulls it in
  try {
    binding = require(ADDON) as NativeBinding;
  } catch (e) {
    throw new Error(`the sieve native addon is not built (${ADDON}): run \`npm install\`, which runs node-gyp rebuild; ${(e as Error).message}`);
  }
  const blas = binding.backend(DEVICES.cpu).blas;
  const weak = blas && weakCoreWarningHere(blas);
  if (weak) process.stderr.write(weak);
  if (blas === null) {
    process.stderr.write(
      'sieve: OpenBLAS was not found when the addon was built; the portable GEMM is in use (slower). ' +
        'Install OpenBLAS (e.g. apt-get install libopenblas-dev) and run `npm install` again.\n',
    );
  }
  return binding;
}

// ---------------------------------------------------------------- public types

export type ModelFamily = 'gpt2' | 'llama';

/** Where a model's numbers live and its passes run; chosen once per model. */
export type Device = 'cpu' | 'cuda';

/**
 * Adapters of the block linear weights (docs/kernels.md, "Adapters"): for each in-scope `X.weight`
 * [OC, IC] the table gets, right after its layer, SLoRB's `X.slorb_s` [OC, IC/k] and `X.slorb_p`
 * [IC/k, IC] (slorbK = k) and CAST's weight scales `X.scale` [OC, scaleSegments]. Kind 'adapter',
 * no weight decay, trained by the tensor's update rule (AdamW by default).
 */
export interface AdapterConfig {
  /** Whose linear weights get adapters: attention (qkv, out), MLP, or both. */
  scope: 'attn' | 'ffn' | 'all';
  /** SLoRB block size k (it must divide every in-scope input width), or null for no SLoRB. */
  slorbK: number | null;
  /** Weight-scale segments per row (they must divide every in-scope input width), or null for none. */
  scaleSegments: number | null;
}

export interface ModelConfig {
  family: ModelFamily;
  layers: number;
  dim: number;
  heads: number;
  context: number;
  vocab: number;
  /** Hidden width of the MLP (4·dim for GPT-2; commonly ≈ 8/3·dim for LLaMA). */
  mlpHidden: number;
  normEps: number;
  /** RoPE base for llama; null for gpt2. */
  ropeTheta: number | null;
  /** SLoRB / weight-scale adapters, or null for none (the table, counts and bits of a plain model). */
  adapters: AdapterConfig | null;
}

export type TensorKind = 'embedding' | 'linear' | 'norm' | 'bias' | 'head' | 'adapter';
export type TensorScope = 'attn' | 'ffn' | null;

export interface TensorInfo {
  /** docs/architecture.md naming, e.g. `blocks.0.attn.qkv.weight`. */
  name: string;
  /** Offset in floats into every flat buffer ('param', 'grad', 'mask', 'm', 'v'). */
  offset: number;
  size: number;
  /** [out, in] for matrices (nn.Linear layout), [n] for vectors. */
  shape: readonly number[];
  kind: TensorKind;
  /** Sparsification/quantization scope; only linear weights inside blocks have one. */
  scope: TensorScope;
  /** Whether decoupled weight decay applies (2-D matrices: linear weights, embeddings, head). */
  decay: boolean;
}

/** The flat buffers of a model, one layout: parameters, gradients, masks (1 = kept), AdamW moments. */
export type BufferName = 'param' | 'grad' | 'mask' | 'm' | 'v';

/**
 * W̃ = f(W) used by a linear weight's forward (and its input gradient):
 * - `mask`: W̃ = M ⊙ W, straight-through gradient (dW += dW̃);
 * - `sste`: W̃ = β·S(W), S-STE's 2:4 soft threshold along the input dim, straight-through; β is
 *   computed once by the caller (`ssteBeta`) and kept in its checkpoints, never recomputed here;
 * - `scale`: W̃[d, c] = A[d, segment of c]·W[d, c] with A the tensor's `X.scale` adapter (CAST);
 *   not straight-through: dW += A ⊙ dW̃ and A gets its own gradient.
 */
export type WeightTransform = { kind: 'none' } | { kind: 'mask' } | { kind: 'sste'; beta: number } | { kind: 'scale' };
export type TransformKind = WeightTransform['kind'];
/** Applied to a tensor's gradient after clipping, before its update rule. */
export type GradHook = { kind: 'none' } | { kind: 'masked-decay'; lambda: number };
/**
 * How a tensor (parameter group) is updated (docs/kernels.md, "Seams"):
 * - `adamw`; `frozen` (not updated);
 * - `ast`: AST's Adam (METHODS 4.3): the decay λ(1 − M) ⊙ W is added after the momentum, which
 *   keeps the loss gradient only, and enters the second moment; decoupled weight decay applies;
 * - `adams`: CAST's AdamS (METHODS 5.3): where M = 0 the step follows (1 − α)·m + α·λ·sign(W);
 *   no decoupled weight decay (`weightDecay` does not apply to these tensors).
 */
export type UpdateRule = { kind: 'adamw' } | { kind: 'frozen' } | { kind: 'ast'; lambda: number } | { kind: 'adams'; alpha: number; lambda: number };
export type UpdateRuleKind = UpdateRule['kind'];
/** How `updateMasks` recomputes a mask: 2:4 along the input dim, or transposable (2:4 both ways). */
export type MaskMethod = 'magnitude' | 'transposable';

export interface MaskStats {
  /** Σ|W| where the mask is 0. */
  prunedAbs: number;
  /** Σ|W|. */
  totalAbs: number;
}

export interface ForwardBackwardOptions {
  /** The gradient is of lossScale · loss (e.g. 1 / micro-batches for gradient accumulation). */
  lossScale: number;
  /** Teacher logits (B·T·V) for distillation, or null. */
  teacherLogits: Float32Array | null;
  /** loss = alpha·tau²·KL(softmax(t/tau) ‖ softmax(s/tau)) + (1 − alpha)·CE; set exactly when teacherLogits is. */
  kd: { alpha: number; tau: number } | null;
}

export interface ForwardBackwardResult {
  /** The (mixed) loss, mean over predicted tokens, not scaled by lossScale. */
  loss: number;
  ce: number;
  /** KL(teacher ‖ student) at temperature tau; 0 without a teacher. */
  kl: number;
  /** Predicted tokens (targets ≥ 0). */
  tokens: number;
}

export interface OptimizerOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled, on tensors with decay = true only. */
  weightDecay: number;
  /** Global-norm gradient clipping threshold, or null for none. */
  gradClip: number | null;
  /**
   * When the gradient norm is NaN or infinite, change nothing (weights, moments, gradients, step
   * counter) and only report it, so a caller can discard the step. Default false: update anyway.
   */
  skipNonFinite?: boolean;
}

export interface OptimizerResult {
  /** The global gradient L2 norm before clipping. */
  gradNorm: number;
  /** False when `skipNonFinite` held the step back (the norm was not finite): nothing changed. */
  applied: boolean;
}

export interface EngineTimers {
  /** Inside forwardBackward. */
  totalSeconds: number;
  /** Linear-layer and LM-head GEMMs within it. */
  gemmSeconds: number;
  gemmFlops: number;
  /** The part of gemmFlops multiplied by 2:4 weights (cuSPARSELt, device cuda; 0 on the CPU). */
  sparseGemmFlops: number;
  /** Attention forward + backward (their GEMMs included). */
  attentionSeconds: number;
  optimizerSeconds: number;
  tokens: number;
}

export interface Backend {
  device: Device;
  name: string;
  /** The BLAS library behind the GEMMs, or null (the portable GEMM, or a device without one). */
  blas: string | null;
  /** Threads a new model gets by default (cpu: OMP_NUM_THREADS, else the core count). */
  threads: number;
}

export interface LrSchedule {
  peak: number;
  min: number;
  warmup: number;
  total: number;
}

/** Points s_k in [0, 1] and weights of a rule for ∫₀¹ f(s) ds ≈ Σ_k weight_k f(s_k). */
export interface QuadratureRule {
  points: ArrayLike<number>;
  weights: ArrayLike<number>;
}

export interface PostQuantIntegral {
  /** Per name, in its tensor's layout: Δ_i ∫₀¹ ∂F/∂w_i(w + sΔ) ds by the rule. */
  pqi: Float64Array[];
  /** F(w): the mean cross-entropy over the windows before the move. */
  lossBefore: number;
  /** F(w + Δ). */
  lossAfter: number;
  /** F(w + s_k Δ) at each point of the rule. */
  lossAt: number[];
}

/** A weight-only quantization grid (docs/kernels.md, "Weight quantization"). */
export interface QuantSpec {
  bits: 2 | 3 | 4 | 8;
  /** Consecutive columns of a row that share a scale and a zero point; divides the column count. */
  group: number;
  symmetric: boolean;
}

/** A [rows, cols] weight on a grid: codes (rows·cols), and per group (rows·cols/group) a scale and a zero point. */
export interface QuantizedWeight {
  rows: number;
  cols: number;
  spec: QuantSpec;
  codes: Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array;
}

/** Where a quantization call runs (default 'cpu'); every device gives the CPU's bits. */
export interface QuantOptions {
  device?: Device;
}

export interface GptqOptions extends QuantSpec {
  /** Added to the Hessian's diagonal, as a fraction of its mean. */
  damp: number;
  /** Quantize columns by descending Hessian diagonal (with static groups). */
  actOrder: boolean;
}

// ---------------------------------------------------------------- argument checks

const article = (word: string) => (/^[AEIOUaeiou]/.test(word) ? `an ${word}` : `a ${word}`);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (ArrayBuffer.isView(v)) return `${article(v.constructor.name)} of ${(v as Float32Array).length} elements`;
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  return article(typeof v);
}

function fail(message: string): never {
  throw new InvalidArgumentError(message);
}

function int(v: unknown, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    fail(`Expected an integer ${range} for ${name} but received ${describe(v)}`);
  }
  return v;
}

function num(v: unknown, name: string, ok: (x: number) => boolean, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) fail(`Expected ${what} for ${name} but received ${describe(v)}`);
  return v;
}

function typed<A extends Int32Array | Float32Array>(v: unknown, ctor: { new (n: number): A; name: string }, name: string, length: number, shape: string): A {
  if (!(v instanceof ctor) || v.length !== length) {
    fail(`Expected ${article(ctor.name)} of ${shape} = ${length} elements for ${name} but received ${describe(v)}`);
  }
  return v as A;
}

function checkTokens(a: Int32Array, vocab: number, name: string, allowIgnore: boolean): void {
  for (let i = 0; i < a.length; i++) {
    const t = a[i];
    if (t >= 0 && t < vocab) continue;
    if (allowIgnore && t === -1) continue;
    fail(`${name}[${i}] = ${t} is not a token id of this model (vocab ${vocab}${allowIgnore ? '; -1 ignores a position' : ''})`);
  }
}

const FAMILIES: Record<ModelFamily, number> = { gpt2: 0, llama: 1 };
const KINDS: TensorKind[] = ['embedding', 'linear', 'norm', 'bias', 'head', 'adapter'];
const SCOPES: TensorScope[] = [null, 'attn', 'ffn'];
const BUFFERS: Record<BufferName, number> = { param: 0, grad: 1, mask: 2, m: 3, v: 4 };
const DEVICES: Record<Device, number> = { cpu: 0, cuda: 1 };
const DEVICE_NAMES: Device[] = ['cpu', 'cuda'];
const TRANSFORMS: Record<TransformKind, number> = { none: 0, mask: 1, sste: 2, scale: 3 };
const HOOKS = { none: 0, 'masked-decay': 1 } as const;
const RULES: Record<UpdateRuleKind, number> = { adamw: 0, frozen: 1, ast: 2, adams: 3 };
const MASK_METHODS: Record<MaskMethod, number> = { magnitude: 0, transposable: 1 };
const ADAPTER_SCOPES = { attn: 1, ffn: 2, all: 3 } as const;

function bufferIndex(buffer: unknown): number {
  if (typeof buffer !== 'string' || !Object.hasOwn(BUFFERS, buffer)) {
    fail(`Expected one of 'param', 'grad', 'mask', 'm', 'v' for buffer but received ${describe(buffer)}`);
  }
  return BUFFERS[buffer as BufferName];
}

function deviceIndex(device: unknown, name: string): number {
  if (typeof device !== 'string' || !Object.hasOwn(DEVICES, device)) fail(`Expected 'cpu' or 'cuda' for ${name} but received ${describe(device)}`);
  return DEVICES[device as Device];
}

/** Checks a config in JS with the engine's own wording, then asks the native side. */
function nativeConfig(c: ModelConfig): NativeConfig {
  if (typeof c !== 'object' || c === null) fail(`Expected a model config object but received ${describe(c)}`);
  if (!(c.family in FAMILIES)) fail(`unknown model family ${describe(c.family)}: expected 'gpt2' or 'llama'`);
  const whole = (v: unknown, name: string, min: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) fail(`${name} must be a whole number, got ${describe(v)}`);
    if (v < min) fail(`${name} must be at least ${min}, got ${v}`);
    return v;
  };
  const layers = whole(c.layers, 'layers', 1);
  const dim = whole(c.dim, 'dim', 1);
  const heads = whole(c.heads, 'heads', 1);
  if (dim % heads !== 0) fail(`heads (${heads}) must divide dim (${dim})`);
  const context = whole(c.context, 'context', 1);
  const vocab = whole(c.vocab, 'vocab', 2);
  const mlpHidden = whole(c.mlpHidden, 'mlpHidden', 1);
  if (typeof c.normEps !== 'number' || !Number.isFinite(c.normEps) || c.normEps <= 0) {
    fail(`normEps must be a finite number > 0, got ${describe(c.normEps)}`);
  }
  let ropeTheta = 0;
  if (c.family === 'llama') {
    if (typeof c.ropeTheta !== 'number' || !Number.isFinite(c.ropeTheta) || c.ropeTheta <= 0) {
      fail(`ropeTheta must be a finite number > 0 for llama, got ${describe(c.ropeTheta)}`);
    }
    if ((dim / heads) % 2 !== 0) fail(`head size dim/heads = ${dim / heads} must be even for RoPE (llama)`);
    ropeTheta = c.ropeTheta;
  } else if (c.ropeTheta !== null) {
    fail(`ropeTheta must be null for gpt2, which has no RoPE; got ${describe(c.ropeTheta)}`);
  }
  let adapterScope = 0;
  let slorbK = 0;
  let scaleSegments = 0;
  const a = c.adapters;
  if (a !== null) {
    if (typeof a !== 'object' || a === undefined) fail(`Expected an adapters object { scope, slorbK, scaleSegments } or null for adapters but received ${describe(a)}`);
    if (typeof a.scope !== 'string' || !Object.hasOwn(ADAPTER_SCOPES, a.scope)) {
      fail(`Expected 'attn', 'ffn' or 'all' for adapters.scope but received ${describe(a.scope)}`);
    }
    adapterScope = ADAPTER_SCOPES[a.scope];
    if (a.slorbK !== null) slorbK = int(a.slorbK, 'adapters.slorbK', 1);
    if (a.scaleSegments !== null) scaleSegments = int(a.scaleSegments, 'adapters.scaleSegments', 1);
    if (slorbK === 0 && scaleSegments === 0) fail('adapters are set but neither adapters.slorbK nor adapters.scaleSegments is: set one, or adapters to null');
    // the input widths of the in-scope linear weights: attn and ffn's up side read dim, ffn's down side mlpHidden
    const widths: [string, number][] = [['dim', dim]];
    if (a.scope !== 'attn') widths.push(['mlpHidden', mlpHidden]);
    for (const [what, div] of [['adapters.slorbK', slorbK], ['adapters.scaleSegments', scaleSegments]] as const) {
      if (div === 0) continue;
      for (const [name, width] of widths) {
        if (width % div !== 0) fail(`${what} = ${div} must divide the input width of every in-scope linear weight: ${name} = ${width}`);
      }
    }
  }
  const out: NativeConfig = { family: FAMILIES[c.family], layers, dim, heads, context, vocab, mlpHidden, normEps: c.normEps, ropeTheta, adapterScope, slorbK, scaleSegments };
  sync(() => native().configCheck(out));
  return out;
}

/** Throws InvalidArgumentError with the reason when `config` is not a model this engine can build. */
export function checkConfig(config: ModelConfig): void {
  nativeConfig(config);
}

// ---------------------------------------------------------------- the model

/**
 * A decoder-only transformer held by a native backend on its device: one flat parameter buffer
 * with a named offset table, and gradients, AdamW moments and masks in the same layout
 * (allocated on first use: a frozen teacher that only runs `logits` never allocates them).
 * Its numbers are reached by copies: `read` / `write` (whole buffers), `readTensor` / `writeTensor`.
 */
export class Model {
  readonly config: Readonly<ModelConfig>;
  readonly device: Device;
  readonly tensors: readonly TensorInfo[];
  readonly numParams: number;
  #native: NativeModel | null;
  readonly #byName = new Map<string, { info: TensorInfo; index: number }>();

  private constructor(config: ModelConfig, model: NativeModel) {
    this.config = Object.freeze({ ...config, adapters: config.adapters === null ? null : Object.freeze({ ...config.adapters }) });
    this.device = DEVICE_NAMES[sync(() => model.device())];
    this.#native = model;
    const info = sync(() => model.info());
    this.numParams = info.numParams;
    this.tensors = Object.freeze(
      info.tensors.map((t, index) => {
        const ti: TensorInfo = Object.freeze({
          name: t.name,
          offset: t.offset,
          size: t.size,
          shape: Object.freeze([...t.shape]),
          kind: KINDS[t.kind],
          scope: SCOPES[t.scope],
          decay: t.decay,
        });
        this.#byName.set(t.name, { info: ti, index });
        return ti;
      }),
    );
  }

  /**
   * Creates a model with zero parameters (call `init(seed)` or `write('param', …)`) on `device`
   * (default 'cpu'; BackendUnavailableError when this build has no backend for it).
   * threads: null = the backend default.
   */
  static create(config: ModelConfig, opts: { threads?: number | null; device?: Device } = {}): Model {
    const nc = nativeConfig(config);
    const threads = opts.threads === undefined || opts.threads === null ? undefined : int(opts.threads, 'opts.threads', 1, 1024);
    const device = deviceIndex(opts.device ?? 'cpu', 'opts.device');
    const model = sync(() => new (native().NativeModel)(nc, device));
    if (threads !== undefined) sync(() => model.setThreads(threads));
    return new Model(config, model);
  }

  /** The backend this model runs on (its device's). */
  get backend(): Backend {
    return backendInfo(this.device);
  }

  #live(): NativeModel {
    if (!this.#native) throw new StateError('model has been disposed');
    return this.#native;
  }

  /**
   * A copy of the flat buffer `buffer` (numParams floats). A buffer never written reads as its
   * initial value (masks all ones, the others zeros) and stays unallocated.
   */
  read(buffer: BufferName): Float32Array {
    const which = bufferIndex(buffer);
    const model = this.#live();
    return sync(() => model.read(which, 0, this.numParams));
  }

  /** Replaces the flat buffer `buffer` with a copy of `data` (numParams floats); the next call reads it. */
  write(buffer: BufferName, data: Float32Array): void {
    const which = bufferIndex(buffer);
    typed(data, Float32Array, 'data', this.numParams, 'numParams');
    const model = this.#live();
    sync(() => model.write(which, 0, data));
  }

  #tensor(name: string): { info: TensorInfo; index: number } {
    if (typeof name !== 'string') fail(`Expected a tensor name for name but received ${describe(name)}`);
    const t = this.#byName.get(name);
    if (!t) fail(`this model has no tensor named '${name}' (see model.tensors for the names)`);
    return t;
  }

  /** Info of the tensor called `name`. */
  info(name: string): TensorInfo {
    return this.#tensor(name).info;
  }

  /** A copy of the tensor called `name` in one of the flat buffers (info(name).size floats). */
  readTensor(name: string, buffer: BufferName = 'param'): Float32Array {
    this.#tensor(name);
    const which = bufferIndex(buffer);
    const model = this.#live();
    return sync(() => model.readTensor(name, which));
  }

  /** Replaces the tensor called `name` in one of the flat buffers with a copy of `data` (info(name).size floats). */
  writeTensor(name: string, data: Float32Array, buffer: BufferName = 'param'): void {
    const { info } = this.#tensor(name);
    const which = bufferIndex(buffer);
    typed(data, Float32Array, 'data', info.size, `the size of '${name}'`);
    const model = this.#live();
    sync(() => model.writeTensor(name, which, data));
  }

  /** The optimizer step counter (steps taken); checkpoints restore it so bias correction continues. */
  get step(): number {
    const model = this.#live();
    return sync(() => model.getStep());
  }
  set step(value: number) {
    const step = int(value, 'step', 0);
    const model = this.#live();
    sync(() => model.setStep(step));
  }

  /** Threads this model's calls use. */
  get threads(): number {
    const model = this.#live();
    return sync(() => model.getThreads());
  }
  set threads(value: number) {
    const threads = int(value, 'threads', 1, 1024);
    const model = this.#live();
    sync(() => model.setThreads(threads));
  }

  /** GPT-2 style initialisation from `seed` (docs/kernels.md): same seed, same bits. */
  init(seed: number): void {
    const s = int(seed, 'seed', 0);
    const model = this.#live();
    sync(() => model.init(s));
  }

  /** Sets the weight transform of a linear weight (see WeightTransform). */
  setTransform(name: string, transform: WeightTransform): void {
    const { index } = this.#tensor(name);
    if (typeof transform !== 'object' || transform === null || typeof transform.kind !== 'string' || !Object.hasOwn(TRANSFORMS, transform.kind)) {
      fail(`Expected { kind: 'none' }, { kind: 'mask' }, { kind: 'sste', beta } or { kind: 'scale' } for the transform of '${name}' but received ${describe(transform)}`);
    }
    let params: Float32Array | null = null;
    if (transform.kind === 'sste') params = Float32Array.of(num(transform.beta, `the sste beta of '${name}'`, (x) => x > 0, 'a finite number > 0'));
    const model = this.#live();
    sync(() => model.setTransform(index, TRANSFORMS[transform.kind], params));
  }

  /** Sets the gradient hook of a tensor (`masked-decay`: g ← g + λ·(1 − M) ⊙ W, after clipping). */
  setGradHook(name: string, hook: GradHook): void {
    const { index } = this.#tensor(name);
    if (typeof hook !== 'object' || hook === null || !(hook.kind in HOOKS)) {
      fail(`Expected { kind: 'none' } or { kind: 'masked-decay', lambda } for the gradient hook of '${name}' but received ${describe(hook)}`);
    }
    let params: Float32Array | null = null;
    if (hook.kind === 'masked-decay') {
      params = Float32Array.of(num(hook.lambda, `the masked-decay lambda of '${name}'`, (x) => x >= 0, 'a finite number >= 0'));
    }
    const model = this.#live();
    sync(() => model.setGradHook(index, HOOKS[hook.kind], params));
  }

  /** Sets the update rule (parameter group) of a tensor (see UpdateRule). */
  setUpdateRule(name: string, rule: UpdateRule): void {
    const { index } = this.#tensor(name);
    if (typeof rule !== 'object' || rule === null || typeof rule.kind !== 'string' || !Object.hasOwn(RULES, rule.kind)) {
      fail(`Expected { kind: 'adamw' }, { kind: 'frozen' }, { kind: 'ast', lambda } or { kind: 'adams', alpha, lambda } for the update rule of '${name}' but received ${describe(rule)}`);
    }
    let params: Float32Array | null = null;
    if (rule.kind === 'ast') params = Float32Array.of(num(rule.lambda, `the ast lambda of '${name}'`, (x) => x >= 0, 'a finite number >= 0'));
    if (rule.kind === 'adams') {
      const alpha = num(rule.alpha, `the adams alpha of '${name}'`, (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
      params = Float32Array.of(alpha, num(rule.lambda, `the adams lambda of '${name}'`, (x) => x >= 0, 'a finite number >= 0'));
    }
    const model = this.#live();
    sync(() => model.setUpdateRule(index, RULES[rule.kind], params));
  }

  // ---------------------------------------------------------------- 2:4 sparsity

  /** Tensor indices of `names` (an array of tensor names), checked. */
  #indices(names: unknown, what: string): number[] {
    if (!Array.isArray(names)) fail(`Expected an array of tensor names for ${what} but received ${describe(names)}`);
    return names.map((n) => this.#tensor(n as string).index);
  }

  /** Checks that `name` is a linear weight (with 2:4 groups along its input dim, and along its output dim when `both`). */
  #linear24(name: string, both: boolean, what: string): TensorInfo {
    const info = this.#tensor(name).info;
    if (info.kind !== 'linear') fail(`tensor '${name}' is not a linear weight: only linear weights take ${what}`);
    const [OC, IC] = info.shape;
    if (IC % 4 !== 0) fail(`tensor '${name}' [${OC}, ${IC}] has no 2:4 groups along its input dim: ${IC} is not a multiple of 4`);
    if (both && OC % 4 !== 0) fail(`tensor '${name}' [${OC}, ${IC}] has no 2:4 groups along its output dim: ${OC} is not a multiple of 4`);
    return info;
  }

  /**
   * Recomputes the masks of the linear weights `names` from their current weights and writes them
   * into the 'mask' buffer: `magnitude` keeps the 2 largest |w| of every 4 along the input dim,
   * `transposable` is 2:4 along both dims (METHODS 2.6). Resolves to the number of mask entries
   * that changed per tensor (the flip count of METHODS 2.3; the first call against the initial
   * all-ones masks counts the pruned half). Runs off the JS thread; cancel() stops it between tensors.
   */
  async updateMasks(names: string[], method: MaskMethod): Promise<number[]> {
    const model = this.#live();
    if (typeof method !== 'string' || !Object.hasOwn(MASK_METHODS, method)) fail(`Expected 'magnitude' or 'transposable' for method but received ${describe(method)}`);
    const indices = this.#indices(names, 'names');
    for (const n of names) this.#linear24(n, method === 'transposable', 'a 2:4 mask');
    try {
      return await model.updateMasks(indices, MASK_METHODS[method]);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Σ|W| where the mask is 0, and Σ|W|, per tensor (in double, in a fixed order): the pruned-mass fraction. */
  maskStats(names: string[]): MaskStats[] {
    const indices = this.#indices(names, 'names');
    const model = this.#live();
    const { pruned, total } = sync(() => model.maskStats(indices));
    return pruned.map((prunedAbs, i) => ({ prunedAbs, totalAbs: total[i] }));
  }

  /** Groups of 4 with more than 2 nonzero weights per linear weight: along its input dim, and with bothWays also along its output dim. */
  count24(names: string[], opts: { bothWays: boolean }): number[] {
    if (typeof opts !== 'object' || opts === null || typeof opts.bothWays !== 'boolean') fail(`Expected { bothWays: boolean } for opts but received ${describe(opts)}`);
    const indices = this.#indices(names, 'names');
    for (const n of names) this.#linear24(n, opts.bothWays, 'a 2:4 count');
    const model = this.#live();
    return sync(() => model.count24(indices, opts.bothWays));
  }

  /**
   * S-STE's fixed scale β = ⟨W, S(W)⟩ / ⟨S(W), S(W)⟩ of a linear weight, from its current weights (in
   * double, fixed order): compute it once (after init or loading), keep it, and pass it to
   * setTransform(name, { kind: 'sste', beta }). An error names the tensor when S(W) is all zero.
   */
  ssteBeta(name: string): number {
    const { index } = this.#tensor(name);
    this.#linear24(name, false, 'an S-STE scale');
    const model = this.#live();
    return sync(() => model.ssteBeta(index));
  }

  /**
   * MVUE on a linear weight's gradient (METHODS 2.7): with a seed, its weight gradient is computed
   * from dZ sparsified 2:4 along the tokens by the unbiased MVUE estimator; the input gradient keeps
   * the dense dZ. The draws depend on (seed, optimizer step, micro-batch since zeroGrad, tensor), so
   * a resumed run draws what the uninterrupted one drew. null turns it off.
   */
  setMvue(name: string, seed: number | null): void {
    const { index, info } = this.#tensor(name);
    if (info.kind !== 'linear') fail(`tensor '${name}' is not a linear weight: only linear weights take MVUE on their gradient`);
    const s = seed === null ? 0 : int(seed, `the MVUE seed of '${name}'`, 0);
    const model = this.#live();
    sync(() => model.setMvue(index, seed !== null, s));
  }

  /**
   * Writes every transformed linear weight's effective weight into its parameters (mask: M ⊙ W;
   * sste: β·S(W); scale: A ⊙ W, and A back to 1) and sets its transform back to none, so the plain
   * forward computes what the transformed one did. SLoRB branches stay. Runs off the JS thread;
   * cancel() stops it between tensors (those before are done).
   */
  async materialize(): Promise<void> {
    const model = this.#live();
    try {
      await model.materialize();
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * SLoRB's mean initialisation (METHODS 4.5) of linear weights with SLoRB adapters:
   * `X.slorb_s[d, i]` = (1/k)·Σ over block i of W[d, j]·(1 − M[d, j]) from the current weights and
   * masks. `X.slorb_p` is left as it is (init gives it the block indicator).
   */
  slorbInitMean(names: string[]): void {
    const indices = this.#indices(names, 'names');
    for (const n of names) {
      const x = n.endsWith('.weight') ? n.slice(0, -'.weight'.length) : n;
      if (!this.#byName.has(`${x}.slorb_s`)) fail(`tensor '${n}' has no SLoRB adapters: give the model config adapters with slorbK and a scope that covers it`);
    }
    const model = this.#live();
    sync(() => model.slorbInitMean(indices));
  }

  zeroGrad(): void {
    const model = this.#live();
    sync(() => model.zeroGrad());
  }

  #batch(B: unknown, T: unknown, minT: number): { B: number; T: number } {
    const b = int(B, 'B', 1);
    const t = int(T, 'T', minT);
    if (t > this.config.context) fail(`T = ${t} exceeds the model's context (${this.config.context})`);
    if (b * t > 2 ** 24) fail(`B*T = ${b * t} tokens is too many for one call (at most ${2 ** 24})`);
    return { B: b, T: t };
  }

  /**
   * Forward and backward of one micro-batch: inputs and targets are (B, T) token ids; a target
   * of -1 ignores that position. Gradients accumulate into `grads` until zeroGrad().
   */
  async forwardBackward(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: ForwardBackwardOptions): Promise<ForwardBackwardResult> {
    const model = this.#live();
    const s = this.#batch(B, T, 1);
    const n = s.B * s.T;
    const V = this.config.vocab;
    typed(inputs, Int32Array, 'inputs', n, 'B*T');
    typed(targets, Int32Array, 'targets', n, 'B*T');
    if (typeof opts !== 'object' || opts === null) fail(`Expected { lossScale, teacherLogits, kd } for opts but received ${describe(opts)}`);
    const lossScale = num(opts.lossScale, 'opts.lossScale', () => true, 'a finite number');
    if ((opts.teacherLogits === null) !== (opts.kd === null)) fail('opts.teacherLogits and opts.kd must be given together (or both null)');
    let alpha = 0;
    let tau = 1;
    if (opts.teacherLogits !== null) {
      typed(opts.teacherLogits, Float32Array, 'opts.teacherLogits', n * V, 'B*T*V');
      alpha = num(opts.kd?.alpha, 'opts.kd.alpha', (x) => x >= 0 && x <= 1, 'a number in [0, 1]');
      tau = num(opts.kd?.tau, 'opts.kd.tau', (x) => x > 0, 'a finite number > 0');
    }
    checkTokens(inputs, V, 'inputs', false);
    checkTokens(targets, V, 'targets', true);
    if (!targets.some((t) => t >= 0)) fail('every target is -1: the batch has nothing to predict');
    try {
      return await model.forwardBackward(inputs, targets, opts.teacherLogits, lossScale, alpha, tau, s.B, s.T);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Global-norm clip → gradient hooks → update rules; returns the gradient norm before clipping
   * and whether the update was applied (see `skipNonFinite`).
   */
  async optimizerStep(opts: OptimizerOptions): Promise<OptimizerResult> {
    const model = this.#live();
    if (typeof opts !== 'object' || opts === null) fail(`Expected optimizer options but received ${describe(opts)}`);
    const lr = num(opts.lr, 'opts.lr', (x) => x >= 0, 'a finite number >= 0');
    const beta1 = num(opts.beta1, 'opts.beta1', (x) => x >= 0 && x < 1, 'a number in [0, 1)');
    const beta2 = num(opts.beta2, 'opts.beta2', (x) => x >= 0 && x < 1, 'a number in [0, 1)');
    const eps = num(opts.eps, 'opts.eps', (x) => x > 0, 'a finite number > 0');
    const wd = num(opts.weightDecay, 'opts.weightDecay', (x) => x >= 0, 'a finite number >= 0');
    const clip = opts.gradClip === null ? 0 : num(opts.gradClip, 'opts.gradClip', (x) => x > 0, 'a finite number > 0 or null');
    const skip = opts.skipNonFinite ?? false;
    if (typeof skip !== 'boolean') fail(`Expected a boolean for opts.skipNonFinite but received ${describe(skip)}`);
    try {
      const gradNorm = await model.optimizerStep(lr, beta1, beta2, eps, wd, clip, skip);
      // The engine's rule, seen from here: a skipped step is exactly a non-finite norm under skipNonFinite.
      return { gradNorm, applied: !(skip && !Number.isFinite(gradNorm)) };
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Next-token NLL of every predicted position of B windows of T tokens: result[b·(T−1) + t] is
   * −log p(tokens[b, t+1] | tokens[b, ..t]). `onProgress(done, total)` counts windows; cancel()
   * stops between chunks of windows. Memory-light: no gradients, no stored activations.
   */
  async evalNll(tokens: Int32Array, B: number, T: number, onProgress?: (done: number, total: number) => void): Promise<Float32Array> {
    return this.#infer('evalNll', tokens, B, T, 2, onProgress);
  }

  /** Logits (B·T·V) of B windows of T tokens: a distillation teacher's output, or an export check. */
  async logits(tokens: Int32Array, B: number, T: number, onProgress?: (done: number, total: number) => void): Promise<Float32Array> {
    return this.#infer('logits', tokens, B, T, 1, onProgress);
  }

  async #infer(which: 'evalNll' | 'logits', tokens: Int32Array, B: number, T: number, minT: number, onProgress?: (done: number, total: number) => void): Promise<Float32Array> {
    const model = this.#live();
    const s = this.#batch(B, T, minT);
    typed(tokens, Int32Array, 'tokens', s.B * s.T, 'B*T');
    if (onProgress !== undefined && typeof onProgress !== 'function') fail(`Expected a function for onProgress but received ${describe(onProgress)}`);
    checkTokens(tokens, this.config.vocab, 'tokens', false);
    try {
      return await model[which](tokens, s.B, s.T, onProgress ?? null);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /**
   * Σ x xᵀ over the B·T positions of the input x of each named block linear weight, as the
   * memory-light forward feeds it: one exactly symmetric [IC, IC] matrix per name (GPTQ's Hessian,
   * up to a factor). Reads the model only; `onProgress` counts windows.
   */
  async inputHessians(names: readonly string[], tokens: Int32Array, B: number, T: number, onProgress?: (done: number, total: number) => void): Promise<Float64Array[]> {
    const model = this.#live();
    const infos = this.#tensorList(names, 'names');
    for (const t of infos) if (t.info.kind !== 'linear') fail(`tensor '${t.info.name}' is not a block linear weight: only those have input Hessians`);
    const s = this.#batch(B, T, 1);
    typed(tokens, Int32Array, 'tokens', s.B * s.T, 'B*T');
    if (onProgress !== undefined && typeof onProgress !== 'function') fail(`Expected a function for onProgress but received ${describe(onProgress)}`);
    checkTokens(tokens, this.config.vocab, 'tokens', false);
    let flat: Float64Array;
    try {
      flat = await model.inputHessians(infos.map((t) => t.index), tokens, s.B, s.T, onProgress ?? null);
    } catch (e) {
      throw fromNative(e);
    }
    let offset = 0;
    return infos.map((t) => {
      const n = t.info.shape[1] * t.info.shape[1];
      return flat.subarray(offset, (offset += n));
    });
  }

  /**
   * METHODS.md §6.2's post-quantization integral along w → w + Δ of the named tensors (Δ =
   * deltas[i], one per name), by the quadrature rule given: for each point s_k, the mean
   * cross-entropy F over the M windows at w + s_k Δ and its gradient g (in micro-batches of
   * `micro` windows), pqi += weight_k Δ ⊙ g. Also F(w), F(w + Δ) and F at every point. The
   * parameters are restored bit for bit; the gradients are left as scratch. `onProgress` counts windows.
   */
  async postQuantIntegral(
    names: readonly string[],
    deltas: readonly Float32Array[],
    rule: QuadratureRule,
    inputs: Int32Array,
    targets: Int32Array,
    M: number,
    T: number,
    micro: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<PostQuantIntegral> {
    const model = this.#live();
    const infos = this.#tensorList(names, 'names');
    if (new Set(names).size !== names.length) fail('names lists a tensor twice');
    if (!Array.isArray(deltas) || deltas.length !== names.length) fail(`Expected one Float32Array per name (${names.length}) for deltas but received ${describe(deltas)}`);
    infos.forEach((t, i) => typed(deltas[i], Float32Array, `deltas[${i}]`, t.info.size, `the size of ${t.info.name}`));
    if (typeof rule !== 'object' || rule === null || rule.points.length !== rule.weights.length || rule.points.length < 1) {
      fail(`Expected a quadrature rule { points, weights } of equal, non-zero lengths for rule but received ${describe(rule)}`);
    }
    const s = this.#batch(M, T, 1);
    typed(inputs, Int32Array, 'inputs', s.B * s.T, 'M*T');
    typed(targets, Int32Array, 'targets', s.B * s.T, 'M*T');
    const mb = int(micro, 'micro', 1, s.B);
    if (onProgress !== undefined && typeof onProgress !== 'function') fail(`Expected a function for onProgress but received ${describe(onProgress)}`);
    checkTokens(inputs, this.config.vocab, 'inputs', false);
    checkTokens(targets, this.config.vocab, 'targets', true);
    const flat = new Float32Array(infos.reduce((n, t) => n + t.info.size, 0));
    let offset = 0;
    for (const d of deltas) flat.set(d, (offset += d.length) - d.length);
    let r: { pqi: Float64Array; losses: Float64Array };
    try {
      r = await model.postQuantIntegral(infos.map((t) => t.index), flat, Float64Array.from(rule.points), Float64Array.from(rule.weights), inputs, targets, s.B, s.T, mb, onProgress ?? null);
    } catch (e) {
      throw fromNative(e);
    }
    offset = 0;
    return {
      pqi: infos.map((t) => r.pqi.subarray(offset, (offset += t.info.size))),
      lossBefore: r.losses[0],
      lossAfter: r.losses[1],
      lossAt: Array.from(r.losses.subarray(2)),
    };
  }

  #tensorList(names: readonly string[], what: string): { info: TensorInfo; index: number }[] {
    if (!Array.isArray(names) || names.length === 0) fail(`Expected a non-empty array of tensor names for ${what} but received ${describe(names)}`);
    return names.map((n) => this.#tensor(n));
  }

  /** Accumulated time split (benchmark hook). */
  timers(): EngineTimers {
    const model = this.#live();
    return sync(() => model.timers());
  }

  resetTimers(): void {
    const model = this.#live();
    sync(() => model.resetTimers());
  }

  /** Makes the pending async call (if any) reject with CancelledError at its next check. */
  cancel(): void {
    this.#native?.cancel();
  }

  /** True while an async call is pending. */
  get busy(): boolean {
    return this.#native?.isBusy() ?? false;
  }

  get disposed(): boolean {
    return this.#native === null;
  }

  /** Frees the native memory now; arrays read earlier are copies and stay valid. Refused while a call is pending. */
  dispose(): void {
    if (!this.#native) return;
    const model = this.#native;
    sync(() => model.dispose());
    this.#native = null;
  }
}

// ---------------------------------------------------------------- module functions

let sparseLibraryChecked = false;

/** The backend of `device` in this build (loads the addon); BackendUnavailableError when it has none. */
export function backendInfo(device: Device = 'cpu'): Backend {
  const d = deviceIndex(device, 'device');
  const b = sync(() => native().backend(d));
  if (device === 'cuda' && !sparseLibraryChecked) {
    sparseLibraryChecked = true;
    const warning = b.blas && sparseLibraryWarning(b.blas);
    if (warning) process.stderr.write(warning);
  }
  return { device, name: b.name, blas: b.blas, threads: b.threads };
}

/** Warm-up + cosine: step < warmup: peak·(step+1)/warmup; step ≥ total: min; else the cosine from peak to min. */
export function lrAt(step: number, s: LrSchedule): number {
  const st = int(step, 'step', 0);
  if (typeof s !== 'object' || s === null) fail(`Expected { peak, min, warmup, total } for the schedule but received ${describe(s)}`);
  const peak = num(s.peak, 'schedule.peak', (x) => x >= 0, 'a finite number >= 0');
  const min = num(s.min, 'schedule.min', (x) => x >= 0 && x <= peak, `a number in [0, peak = ${peak}]`);
  const warmup = int(s.warmup, 'schedule.warmup', 0);
  const total = int(s.total, 'schedule.total', warmup);
  return sync(() => native().lrAt(st, peak, min, warmup, total));
}

export interface SgemmBench {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  reps: number;
  threads: number;
  /** 'blas': the BLAS library's own threaded sgemm (the reference); 'engine': the engine's deterministic split. */
  path: 'blas' | 'engine';
}

/** Mean seconds of one sgemm C(M,N) = op(A)·op(B) on random data (benchmark hook; do not run beside a model call). */
export async function benchSgemm(b: SgemmBench): Promise<number> {
  const M = int(b.M, 'M', 1, 65536);
  const N = int(b.N, 'N', 1, 65536);
  const K = int(b.K, 'K', 1, 65536);
  const reps = int(b.reps, 'reps', 1, 100000);
  const threads = int(b.threads, 'threads', 1, 1024);
  if (b.path !== 'blas' && b.path !== 'engine') fail(`Expected 'blas' or 'engine' for path but received ${describe(b.path)}`);
  try {
    return await native().benchSgemm(b.transA ? 1 : 0, b.transB ? 1 : 0, M, N, K, reps, threads, b.path === 'blas' ? 0 : 1);
  } catch (e) {
    throw fromNative(e);
  }
}

// ---------------------------------------------------------------- weight-only quantization

function quantArgs(w: Float32Array, rows: number, cols: number, spec: QuantSpec, mask: Float32Array | undefined) {
  const r = int(rows, 'rows', 1);
  const c = int(cols, 'cols', 1);
  if (typeof spec !== 'object' || spec === null) fail(`Expected a quantization spec { bits, group, symmetric } but received ${describe(spec)}`);
  if (![2, 3, 4, 8].includes(spec.bits)) fail(`Expected 2, 3, 4 or 8 for spec.bits but received ${describe(spec.bits)}`);
  const group = int(spec.group, 'spec.group', 1);
  if (c % group !== 0) fail(`the group size ${group} must divide cols = ${c}`);
  if (typeof spec.symmetric !== 'boolean') fail(`Expected a boolean for spec.symmetric but received ${describe(spec.symmetric)}`);
  typed(w, Float32Array, 'w', r * c, 'rows*cols');
  if (mask !== undefined) typed(mask, Float32Array, 'mask', r * c, 'rows*cols');
  return { rows: r, cols: c, spec: { bits: spec.bits, group, symmetric: spec.symmetric } };
}

/** Round-to-nearest onto the grid; where `mask` is 0 the weight is held at exactly zero and left out of its group's range. */
export function quantizeRtn(w: Float32Array, rows: number, cols: number, spec: QuantSpec, mask?: Float32Array, opts: QuantOptions = {}): QuantizedWeight {
  const a = quantArgs(w, rows, cols, spec, mask);
  const device = deviceIndex(opts.device ?? 'cpu', 'opts.device');
  const q = sync(() => native().quantizeRtn(device, w, mask ?? null, a.rows, a.cols, a.spec.bits, a.spec.group, a.spec.symmetric));
  return { ...a, ...q };
}

/**
 * GPTQ with `hessian` = Σ x xᵀ of the layer's calibration inputs ([cols, cols], e.g. from
 * Model.inputHessians); `mask` as for quantizeRtn. Runs off the JS thread.
 */
export async function gptq(w: Float32Array, hessian: Float64Array, rows: number, cols: number, options: GptqOptions, mask?: Float32Array, opts: QuantOptions = {}): Promise<QuantizedWeight> {
  const a = quantArgs(w, rows, cols, options, mask);
  if (!(hessian instanceof Float64Array) || hessian.length !== a.cols * a.cols) fail(`Expected a Float64Array of cols*cols = ${a.cols * a.cols} elements for hessian but received ${describe(hessian)}`);
  const damp = num(options.damp, 'options.damp', (x) => x >= 0, 'a finite number >= 0');
  if (typeof options.actOrder !== 'boolean') fail(`Expected a boolean for options.actOrder but received ${describe(options.actOrder)}`);
  const device = deviceIndex(opts.device ?? 'cpu', 'opts.device');
  try {
    const q = await native().gptq(device, w, hessian, mask ?? null, a.rows, a.cols, a.spec.bits, a.spec.group, a.spec.symmetric, damp, options.actOrder);
    return { ...a, ...q };
  } catch (e) {
    throw fromNative(e);
  }
}

/** (code − zero)·scale, exactly as inference computes it. */
export function dequantize(q: QuantizedWeight, opts: QuantOptions = {}): Float32Array {
  if (typeof q !== 'object' || q === null) fail(`Expected a quantized weight but received ${describe(q)}`);
  const device = deviceIndex(opts.device ?? 'cpu', 'opts.device');
  return sync(() => native().dequantize(device, q.codes, q.scales, q.zeros, q.rows, q.cols, q.spec.bits, q.spec.group));
}
