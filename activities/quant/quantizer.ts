// One in-scope weight through the base quantizer (round to nearest, or GPTQ with the layer's
// Hessian), with some positions held at exactly zero — the pruned zeros of a 2:4 model, and the
// positions ReQuant detaches into 16-bit sparse sets — and what the result costs: its error on the
// calibration inputs and its size in bits. The per-weight arithmetic is the engine's (kernels/index.ts).
import { dequantize, gptq, quantizeRtn, type Device, type QuantizedWeight, type QuantSpec } from '../../kernels';
import { f16Bits, f16ToNumber } from '../../kernels/half';
import type { CheckpointState } from '../../kernels/checkpoint';
import { quantizedBits } from '../eval/measures';

export interface Layer {
  name: string;
  rows: number;
  cols: number;
  /** The weight before quantization (its effective value, param ⊙ mask). */
  weight: Float32Array;
  /** 1 where the weight is pruned (a 2:4 zero), or null for a dense weight. */
  pruned: Uint8Array | null;
  /** Σ x xᵀ of the layer's calibration inputs [cols, cols]; null when nothing needed it. */
  hessian: Float64Array | null;
}

export interface BaseQuantizer {
  spec: QuantSpec;
  method: 'rtn' | 'gptq';
  gptq: { damp: number; actOrder: boolean } | null;
  /** Where the engine quantizes: the recipe's device (every device gives the CPU's bits). */
  device: Device;
}

/** 16-bit values that replace the dequantized weight at flat indices (sorted). */
export interface SparseSet {
  index: Int32Array;
  /** Half-precision bits. */
  values: Uint16Array;
}

/** The layer quantized with the positions marked in `held` fixed at exactly zero. */
export async function quantizeLayer(layer: Layer, base: BaseQuantizer, held: Uint8Array | null): Promise<QuantizedWeight> {
  const mask = held ? Float32Array.from(held, (h) => (h ? 0 : 1)) : undefined;
  if (base.method === 'gptq') {
    if (!layer.hessian) throw new Error(`GPTQ needs the Hessian of ${layer.name}`);
    return await gptq(layer.weight, layer.hessian, layer.rows, layer.cols, { ...base.spec, ...base.gptq! }, mask, { device: base.device });
  }
  return quantizeRtn(layer.weight, layer.rows, layer.cols, base.spec, mask, { device: base.device });
}

/**
 * The weight the model computes with: the dequantized codes (on `device`), the sparse set's values
 * written over them (no sparse set: EMPTY_SPARSE).
 */
export function finalWeight(q: QuantizedWeight, sparse: SparseSet, device: Device): Float32Array {
  const w = dequantize(q, { device });
  for (let k = 0; k < sparse.index.length; k++) w[sparse.index[k]] = f16ToNumber(sparse.values[k]);
  return w;
}

/** The sparse set holding the layer's own weights (rounded to 16 bits) at `positions`. */
export function sparseSetOf(layer: Layer, positions: Iterable<number>): SparseSet {
  const index = Int32Array.from(positions).sort();
  return { index, values: Uint16Array.from(index, (i) => f16Bits(layer.weight[i])) };
}

/** Two disjoint sparse sets as one, sorted by index; overlapping sets are a bug and throw. */
export function mergeSparse(a: SparseSet, b: SparseSet): SparseSet {
  const entries = [...a.index].map((i, k) => [i, a.values[k]]).concat([...b.index].map((i, k) => [i, b.values[k]]));
  entries.sort((x, y) => x[0] - y[0]);
  entries.forEach(([i], k) => {
    if (k > 0 && entries[k - 1][0] === i) throw new Error(`sparse sets overlap at index ${i}`);
  });
  return { index: Int32Array.from(entries, (e) => e[0]), values: Uint16Array.from(entries, (e) => e[1]) };
}

export const EMPTY_SPARSE: SparseSet = { index: new Int32Array(0), values: new Uint16Array(0) };

/**
 * The layer-output error of replacing W by Ŵ on the calibration inputs, ‖(W − Ŵ)X‖² = Σ_rows δ H δᵀ
 * with H = Σ x xᵀ; without a Hessian, the weight error ‖W − Ŵ‖².
 */
export function layerError(layer: Layer, quantized: Float32Array): number {
  const { rows, cols, hessian } = layer;
  const delta = new Float64Array(cols);
  let error = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) delta[c] = layer.weight[r * cols + c] - quantized[r * cols + c];
    if (!hessian) {
      for (let c = 0; c < cols; c++) error += delta[c] * delta[c];
      continue;
    }
    for (let i = 0; i < cols; i++) {
      if (delta[i] === 0) continue;
      let row = 0;
      for (let j = 0; j < cols; j++) row += hessian[i * cols + j] * delta[j];
      error += delta[i] * row;
    }
  }
  return error;
}

/**
 * The layer's size in bits as stored: codes (for a 2:4 weight only the kept half, each with a
 * 2-bit position, as the 2:4 format keeps them), the groups' scales and zero points, the sparse set.
 */
export function layerBits(layer: Layer, spec: QuantSpec, sparseEntries: number): number {
  const size = layer.rows * layer.cols;
  const twoFour = layer.pruned !== null && 2 * layer.pruned.reduce((n, p) => n + p, 0) === size;
  return quantizedBits(size, spec.bits, spec.group, twoFour, sparseEntries);
}

/**
 * The weights a quantized checkpoint's payload stands for, by name: (code − zero)·scale with the
 * sparse values over them, as inference computes them.
 */
export function payloadWeights(state: CheckpointState): Map<string, Float32Array> {
  const { settings, tensors } = state.quant!;
  const spec: QuantSpec = { bits: settings.bits, group: settings.group, symmetric: settings.symmetric };
  return new Map(
    tensors.map((q) => {
      const [rows, cols] = state.tensors.find((t) => t.name === q.name)!.shape;
      return [q.name, finalWeight({ rows, cols, spec, codes: q.codes, scales: q.scales, zeros: q.zeros }, q.sparse, 'cpu')];
    }),
  );
}
