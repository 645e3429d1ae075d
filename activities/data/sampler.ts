// Seeded batch sampler: B random windows of T + 1 tokens from the train stream per batch;
// inputs are each window's first T tokens, targets the same shifted by one; both [B, T].
//
// The generator is xoshiro128** (Blackman & Vigna), seeded by splitmix64 of the seed, as
// in the reference C code: two splitmix64 outputs give the four state words (low word
// first). It is 32-bit arithmetic only, so C, Python or CUDA can reproduce it bit for bit.
// Window starts are uniform over the N - T valid positions by rejection sampling (no
// modulo bias). The whole position (state words + batches drawn) is a small JSON object:
// restoring it reproduces exactly the batches that would have followed.
import { SamplerState } from '../../schemas/data';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64, the seeding generator the xoshiro authors recommend. */
function splitmix64(seed: bigint): () => bigint {
  let x = seed & MASK64;
  return () => {
    x = (x + 0x9e3779b97f4a7c15n) & MASK64;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
    return z ^ (z >> 31n);
  };
}

/** The four xoshiro128** state words a seed expands to. */
export function seedState(seed: number): [number, number, number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`sampler seed must be a non-negative safe integer, got ${seed}`);
  }
  const next = splitmix64(BigInt(seed));
  const a = next();
  const b = next();
  const lo = (v: bigint) => Number(v & 0xffffffffn);
  const hi = (v: bigint) => Number(v >> 32n);
  return [lo(a), hi(a), lo(b), hi(b)];
}

const rotl = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** xoshiro128** over a 4-word state, advanced in place. */
export class Xoshiro128ss {
  readonly s: Uint32Array;

  constructor(words: readonly number[]) {
    this.s = Uint32Array.from(words);
    if (this.s.length !== 4 || this.s.every((w) => w === 0)) {
      throw new Error('xoshiro128** needs four state words, not all zero');
    }
  }

  /** The next unsigned 32-bit output. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform integer in [0, n), n ≤ 2^32, unbiased: outputs past the last whole multiple of n are redrawn. */
  below(n: number): number {
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }
}

export interface Batch {
  /** [B, T] */
  inputs: Int32Array;
  /** [B, T], inputs shifted by one. */
  targets: Int32Array;
  /** 0-based index of this batch in the sampler's sequence. */
  index: number;
}

export interface SamplerOptions {
  /** B: windows per batch. */
  batch: number;
  /** T: tokens per input row. */
  context: number;
  seed: number;
}

export class BatchSampler {
  private readonly rng: Xoshiro128ss;
  private batches: number;

  private constructor(
    private readonly tokens: Int32Array,
    private readonly batch: number,
    private readonly context: number,
    private readonly seed: number,
    words: readonly number[],
    batches: number,
  ) {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`sampler batch must be a positive integer, got ${batch}`);
    if (!Number.isInteger(context) || context < 1) {
      throw new Error(`sampler context must be a positive integer, got ${context}`);
    }
    if (tokens.length < context + 1) {
      throw new Error(
        `train stream has ${tokens.length} tokens, fewer than one window of context + 1 = ${context + 1} tokens`,
      );
    }
    if (tokens.length - context > 2 ** 32) {
      throw new Error(`train stream of ${tokens.length} tokens is longer than the sampler supports (2^32 + T)`);
    }
    this.rng = new Xoshiro128ss(words);
    this.batches = batches;
  }

  static create(tokens: Int32Array, options: SamplerOptions): BatchSampler {
    return new BatchSampler(tokens, options.batch, options.context, options.seed, seedState(options.seed), 0);
  }

  /**
   * Continue from a saved position. The stream length and batch shape must be those the
   * state was saved with (pass the run's own B and T as `expect` to have that checked):
   * anything else would silently draw different windows.
   */
  static restore(tokens: Int32Array, state: unknown, expect?: { batch: number; context: number }): BatchSampler {
    const parsed = SamplerState.safeParse(state);
    if (!parsed.success) {
      throw new Error(`invalid sampler state: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    }
    const s = parsed.data;
    if (s.streamTokens !== tokens.length) {
      throw new Error(
        `sampler state was saved for a train stream of ${s.streamTokens} tokens, this one has ${tokens.length}. ` +
          'HINT: the data section or tokenizer changed since the checkpoint; resume with the recipe that made it.',
      );
    }
    if (expect && (expect.batch !== s.batch || expect.context !== s.context)) {
      throw new Error(
        `sampler state was saved for batches of B = ${s.batch}, T = ${s.context}, this run uses B = ${expect.batch}, T = ${expect.context}. ` +
          'HINT: resume with the recipe that made the checkpoint, or restart the stage.',
      );
    }
    return new BatchSampler(tokens, s.batch, s.context, s.seed, s.s, s.batches);
  }

  /** The position after the last batch drawn; JSON-serialisable. */
  state(): SamplerState {
    const [a, b, c, d] = this.rng.s;
    return {
      algorithm: 'xoshiro128**',
      seed: this.seed,
      s: [a, b, c, d],
      batches: this.batches,
      batch: this.batch,
      context: this.context,
      streamTokens: this.tokens.length,
    };
  }

  /** Draw the next batch, into `out` when given (each [B, T]) to avoid allocating per step. */
  next(out?: { inputs: Int32Array; targets: Int32Array }): Batch {
    const B = this.batch;
    const T = this.context;
    const inputs = out?.inputs ?? new Int32Array(B * T);
    const targets = out?.targets ?? new Int32Array(B * T);
    if (inputs.length !== B * T || targets.length !== B * T) {
      throw new Error(`batch buffers must hold B × T = ${B * T} tokens, got ${inputs.length} and ${targets.length}`);
    }
    const starts = this.tokens.length - T;
    for (let b = 0; b < B; b++) {
      const start = this.rng.below(starts);
      inputs.set(this.tokens.subarray(start, start + T), b * T);
      targets.set(this.tokens.subarray(start + 1, start + T + 1), b * T);
    }
    return { inputs, targets, index: this.batches++ };
  }
}
