// kernels/onnx/layers.ts — the engine's layers as ONNX subgraphs (opset 17, float32), each
// computing what its kernel in kernels/cpu/ computes, in the same order of float operations where
// ONNX lets us choose it (the GEMM and reduction orders are ORT's, hence a tolerance, not bits).
//
// Activations are [batch, seq, width]; attention works on [batch, heads, seq, head size].
import { float, type GraphBuilder } from './graph';
import { f16ToNumber } from '../half';
import type { LinearLayer } from './weights';

/** [rows, cols] → [cols, rows]: the exported MatMul multiplies by Wᵀ as an [in, out] initializer. */
function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

/**
 * out = x Wᵀ (+ b) (+ (x Pᵀ) Sᵀ), matmul.cc's matmul_forward plus model.cc's SLoRB branch. Every
 * linear layer of the graph goes through here: the weight's initializer, named after the engine's
 * tensor and stored transposed ([in, out]), or a quantized weight's codes (quantizedWeight), and the
 * product. The SLoRB branch stays two MatMuls of its own, so the 2:4 weight is stored as it is.
 */
export function emitLinear(g: GraphBuilder, x: string, layer: LinearLayer): string {
  const { name, OC, IC } = layer;
  const base = name.replace(/\.weight$/, '');
  const weight = layer.quantized ? g.op('Transpose', [quantizedWeight(g, layer)], { perm: [1, 0] }) : g.float32(name, [IC, OC], transposed(layer.weight, OC, IC));
  let y = g.op('MatMul', [x, weight]);
  if (layer.bias) y = g.op('Add', [y, g.float32(`${base}.bias`, [OC], layer.bias)]);
  if (layer.slorb) {
    const { s, p, rank } = layer.slorb;
    const xp = g.op('MatMul', [x, g.float32(`${base}.slorb_p`, [IC, rank], transposed(p, rank, IC))]);
    y = g.op('Add', [y, g.op('MatMul', [xp, g.float32(`${base}.slorb_s`, [rank, OC], transposed(s, OC, rank))])]);
  }
  return y;
}

/**
 * A quantized weight [OC, IC] as the engine computes with it: the uint8 codes as [OC·G, group] rows,
 * one per quantization group, through DequantizeLinear along axis 0 with each group's scale and
 * zero point ((code − zero)·scale in float32, exactly sieve_dequantize), reshaped to [OC, IC], the
 * 16-bit sparse set written over it by ScatterND. Opset 17 has no 4-bit type nor block-wise
 * DequantizeLinear, so a code takes a byte in the file whatever the bit width.
 */
function quantizedWeight(g: GraphBuilder, layer: LinearLayer): string {
  const { name, OC, IC } = layer;
  const q = layer.quantized!;
  const rows = (OC * IC) / q.group;
  const dense = g.op('Reshape', [
    g.op('DequantizeLinear', [g.uint8(`${name}.codes`, [rows, q.group], q.codes), g.float32(`${name}.scales`, [rows], q.scales), g.uint8(`${name}.zeros`, [rows], q.zeros)], { axis: 0 }),
    g.int64s([OC, IC]),
  ]);
  const k = q.sparse.index.length;
  if (k === 0) return dense;
  const at = new BigInt64Array(2 * k);
  q.sparse.index.forEach((i, e) => ((at[2 * e] = BigInt(Math.floor(i / IC))), (at[2 * e + 1] = BigInt(i % IC))));
  return g.op('ScatterND', [dense, g.int64(`${name}.sparse.index`, [k, 2], at), g.float32(`${name}.sparse.values`, [k], Float32Array.from(q.sparse.values, f16ToNumber))]);
}

/** GPT-2's LayerNorm over the last axis (norm.cc): (x − mean)·rstd·w + b, rstd = 1/√(var + eps). */
export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number): string {
  return g.op('LayerNormalization', [x, weight, bias], { axis: -1, epsilon: float(eps) });
}

/** LLaMA's RMSNorm (norm.cc): (x·s)·w with s = 1/√(mean(x²) + eps), in the engine's order. */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  const meanSquare = g.op('ReduceMean', [g.op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSquare, g.scalar(eps)])])]);
  return g.op('Mul', [g.op('Mul', [x, rstd]), weight]);
}

/** GELU, tanh approximation (activation.cc): 0.5x·(1 + tanh(√(2/π)·(x + 0.044715·x·x·x))), the engine's constants and order. */
export function gelu(g: GraphBuilder, x: string): string {
  const cubic = g.op('Mul', [g.op('Mul', [g.op('Mul', [x, g.scalar(0.044715)]), x]), x]);
  const u = g.op('Mul', [g.op('Add', [x, cubic]), g.scalar(0.7978845608028654)]);
  return g.op('Mul', [g.op('Mul', [x, g.scalar(0.5)]), g.op('Add', [g.op('Tanh', [u]), g.scalar(1)])]);
}

/** SwiGLU (activation.cc): (gate·σ(gate))·up. */
export function swiglu(g: GraphBuilder, gate: string, up: string): string {
  return g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
}

export interface AttentionShape {
  C: number;
  heads: number;
}

/**
 * RoPE's tables cut to the sequence, [seq, HS]: cos and sin of t·θ^(−2i/HS) for i < HS/2, each
 * repeated for the second half, so a rotation is x·cos + rotateHalf(x)·sin.
 */
export interface RopeTables {
  cos: string;
  sin: string;
}

/** Rotate-half RoPE (attention.cc): x[i] = x1·c − x2·s, x[i + HS/2] = x2·c + x1·s. */
function rope(g: GraphBuilder, x: string, tables: RopeTables, HS: number): string {
  const half = HS / 2;
  const lastAxis = g.int64s([3]);
  const x1 = g.op('Slice', [x, g.int64s([0]), g.int64s([half]), lastAxis]);
  const x2 = g.op('Slice', [x, g.int64s([half]), g.int64s([HS]), lastAxis]);
  const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: 3 });
  return g.op('Add', [g.op('Mul', [x, tables.cos]), g.op('Mul', [rotated, tables.sin])]);
}

/**
 * Causal multi-head attention (attention.cc) on qkv [batch, seq, 3C] (q, k, v; head h owns
 * channels [h·HS, (h+1)·HS) of each): softmax(q kᵀ · 1/√HS over keys ≤ query) v, back to
 * [batch, seq, C]. `causal` is the [seq, seq] bool mask (true: key ≤ query); `ropeTables` rotates
 * q and k first (llama).
 */
export function attention(g: GraphBuilder, qkv: string, shape: AttentionShape, causal: string, ropeTables: RopeTables | null): string {
  const { C, heads } = shape;
  const HS = C / heads;
  const split = g.ops('Split', [qkv, g.int64s([C, C, C])], 3, { axis: 2 });
  const [q, k, v] = split.map((part) => {
    const perHead = g.op('Transpose', [g.op('Reshape', [part, g.int64s([0, 0, heads, HS])])], { perm: [0, 2, 1, 3] });
    return ropeTables && part !== split[2] ? rope(g, perHead, ropeTables, HS) : perHead;
  });
  // The engine scales after the product (the GEMM's alpha): 1.0f / sqrtf(HS), in float32.
  const scale = Math.fround(1 / Math.fround(Math.sqrt(HS)));
  const scores = g.op('Mul', [g.op('MatMul', [q, g.op('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.scalar(scale)]);
  const probs = g.op('Softmax', [g.op('Where', [causal, scores, g.scalar(-Infinity)])], { axis: -1 });
  const y = g.op('Transpose', [g.op('MatMul', [probs, v])], { perm: [0, 2, 1, 3] });
  return g.op('Reshape', [y, g.int64s([0, 0, C])]);
}
