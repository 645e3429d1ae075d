// kernels/onnx/weights.ts — a checkpoint's tensors as the ONNX exporter reads them: by name, with
// their shapes checked against the model config, and each linear layer as the engine multiplies by
// it (its effective weight, its bias, its SLoRB branch).
//
// Promises: a tensor missing from the table or of another shape is one error naming it and both
// shapes; the checkpoint's buffers are never written (effective weights are fresh arrays).
import type { CheckpointState, QuantizedTensor } from '../checkpoint';

/** A linear layer out = x Wᵀ (+ b) (+ (x Pᵀ) Sᵀ), W in the engine's [out, in] layout. */
export interface LinearLayer {
  /** The engine's name of the weight, e.g. `blocks.0.attn.qkv.weight`. */
  name: string;
  OC: number;
  IC: number;
  /** The effective weight [OC, IC]: what the forward multiplies by (see effectiveWeight). */
  weight: Float32Array;
  /** [OC], gpt2 only. */
  bias: Float32Array | null;
  /** SLoRB's branch (kept beside the weight, never folded: it is dense and low-rank): S [OC, r], P [r, IC]. */
  slorb: { s: Float32Array; p: Float32Array; rank: number } | null;
  /** A quantized weight's payload (the quantize stage): `weight` is then what it dequantizes to. */
  quantized: (Omit<QuantizedTensor, 'name'> & { group: number }) | null;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

export class CheckpointTensors {
  readonly #state: CheckpointState;
  readonly #entries: Map<string, CheckpointState['tensors'][number]>;

  constructor(state: CheckpointState) {
    this.#state = state;
    this.#entries = new Map(state.tensors.map((t) => [t.name, t]));
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The tensor's values (a view into the checkpoint's parameters), checked to have `shape`. */
  get(name: string, shape: readonly number[]): Float32Array {
    return this.#slice(this.#state.params, name, shape);
  }

  #slice(buffer: Float32Array, name: string, shape: readonly number[]): Float32Array {
    const entry = this.#entries.get(name);
    if (!entry) throw new Error(`the checkpoint has no tensor "${name}", which a ${this.#state.config.family} model of its config needs`);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`tensor "${name}" is ${shapeText(entry.shape)} in the checkpoint, its config says ${shapeText(shape)}`);
    }
    return buffer.subarray(entry.offset, entry.offset + entry.size);
  }

  /**
   * The weight the engine's forward multiplies by: M ⊙ (A ⊙ W), with M the 2:4 mask (ones when
   * the checkpoint has none) and A the CAST weight scales (`X.scale`, [OC, SG], when the table has
   * them), each product in float32 as the engine forms it.
   *
   * The scales are folded because that is what the engine computes with them: its `scale`
   * transform (cpu/transform.cc, weight_scale_forward) forms W̃[d, c] = A[d, ⌊c/(IC/SG)⌋]·W[d, c]
   * in float32 before the GEMM, an elementwise weight, not a separate op on the activations. A
   * checkpoint with scales ≠ 1 is a CAST model mid-training, trained under that transform; a
   * finished CAST model has had them folded already (A = 1, folding is then exact identity). The
   * mask is applied after the scales, the order of CAST's end (materialize A ⊙ W, then the final
   * mask), so a masked weight stays exactly 2:4 in the file.
   */
  effectiveWeight(name: string, OC: number, IC: number): Float32Array {
    const weight = Float32Array.from(this.get(name, [OC, IC]));
    const base = name.replace(/\.weight$/, '');
    if (this.has(`${base}.scale`)) {
      const scaleShape = this.#entries.get(`${base}.scale`)!.shape;
      const SG = scaleShape[1];
      const scale = this.get(`${base}.scale`, [OC, SG]);
      const segment = IC / SG;
      if (!Number.isInteger(segment)) throw new Error(`tensor "${base}.scale" has ${SG} segments, which do not divide ${name}'s ${IC} inputs`);
      for (let d = 0; d < OC; d++) for (let c = 0; c < IC; c++) weight[d * IC + c] *= scale[d * SG + Math.floor(c / segment)];
    }
    if (this.#state.masks) {
      const mask = this.#slice(this.#state.masks, name, [OC, IC]);
      for (let i = 0; i < weight.length; i++) weight[i] *= mask[i];
    }
    return weight;
  }

  /** The linear layer whose weight is `name` ([OC, IC]); its bias when `biased` (gpt2), its SLoRB branch when the table has one. */
  linear(name: string, OC: number, IC: number, biased: boolean): LinearLayer {
    const base = name.replace(/\.weight$/, '');
    let slorb: LinearLayer['slorb'] = null;
    if (this.has(`${base}.slorb_s`)) {
      const rank = this.#entries.get(`${base}.slorb_s`)!.shape[1];
      slorb = { s: this.get(`${base}.slorb_s`, [OC, rank]), p: this.get(`${base}.slorb_p`, [rank, IC]), rank };
    }
    const q = this.#state.quant?.tensors.find((t) => t.name === name);
    const quantized = q ? { codes: q.codes, scales: q.scales, zeros: q.zeros, sparse: q.sparse, group: this.#state.quant!.settings.group } : null;
    return { name, OC, IC, weight: this.effectiveWeight(name, OC, IC), bias: biased ? this.get(`${base}.bias`, [OC]) : null, slorb, quantized };
  }
}
