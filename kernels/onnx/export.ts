// kernels/onnx/export.ts — a sieve checkpoint as an ONNX model (opset 17, IR 8, float32) that
// computes the engine's forward (kernels/cpu/model.cc, block_forward and infer_chunks): input
// `input_ids` int64 [batch, seq] (seq ≤ context), output `logits` float32 [batch, seq, vocab].
//
// Promises: the weights are the effective ones (linear weights M ⊙ (A ⊙ W), see weights.ts), so a
// 2:4 weight is exactly 2:4 in the file, under the engine's tensor name, transposed to [in, out];
// SLoRB branches are kept as branches; standard ops of the default domain only; the model's
// metadata holds the caller's entries plus `sieve.family`, `sieve.config` (the config as JSON) and
// `sieve.sparsity` (sparsity.ts's report over the linear weights, as JSON). Nothing here needs the
// native engine: a checkpoint read from disk exports as it is.
import type { CheckpointState } from '../checkpoint';
import { encodeModel, GraphBuilder, type ValueInfo } from './graph';
import { attention, emitLinear, gelu, layerNorm, rmsNorm, swiglu, type RopeTables } from './layers';
import { countTwoFour, sparsityReport, type GroupCount } from './sparsity';
import { CheckpointTensors } from './weights';

export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const INPUT_NAME = 'input_ids';
export const OUTPUT_NAME = 'logits';
/** The metadata keys the exporter writes itself; a caller's entry may not use them. */
export const DERIVED_METADATA = ['sieve.family', 'sieve.config', 'sieve.sparsity', 'sieve.quantization'] as const;

export interface ExportOptions {
  /** Entries for the model's metadata_props (run, stage, source checkpoint, ...). */
  metadata: Record<string, string>;
}

/** True where key j ≤ query i: the [context, context] mask the graph cuts to [seq, seq]. */
function causalMask(context: number): Uint8Array {
  const mask = new Uint8Array(context * context);
  for (let i = 0; i < context; i++) mask.fill(1, i * context, i * context + i + 1);
  return mask;
}

/** RoPE's cos and sin of t·θ^(−2i/HS), [context, HS/2], computed in double as rope_tables does, stored as float32. */
function ropeTables(context: number, theta: number, HS: number): { cos: Float32Array; sin: Float32Array } {
  const half = HS / 2;
  const cos = new Float32Array(context * half);
  const sin = new Float32Array(context * half);
  for (let t = 0; t < context; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * Math.pow(theta, (-2 * i) / HS);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Build the graph of `checkpoint`'s model; returns it with the 2:4 groups of each block linear weight, for the sparsity report. */
function buildGraph(checkpoint: CheckpointState) {
  const config = checkpoint.config;
  const { family, layers, dim: C, heads, context, vocab: V, mlpHidden: H, normEps } = config;
  const gpt2 = family === 'gpt2';
  const HS = C / heads;
  const tensors = new CheckpointTensors(checkpoint);
  const g = new GraphBuilder();
  const twoFour = new Map<string, GroupCount | null>();
  const linear = (x: string, name: string, OC: number, IC: number) => {
    const layer = tensors.linear(name, OC, IC, gpt2);
    twoFour.set(name, IC % 4 === 0 ? countTwoFour(layer.weight, OC, IC) : null);
    return emitLinear(g, x, layer);
  };
  const param = (name: string, shape: number[]) => g.float32(name, shape, tensors.get(name, shape));
  const norm = (x: string, prefix: string) =>
    gpt2 ? layerNorm(g, x, param(`${prefix}.weight`, [C]), param(`${prefix}.bias`, [C]), normEps) : rmsNorm(g, x, param(`${prefix}.weight`, [C]), normEps);

  const input: ValueInfo = { name: INPUT_NAME, type: 'int64', dims: ['batch', 'seq'] };
  const output: ValueInfo = { name: OUTPUT_NAME, type: 'float32', dims: ['batch', 'seq', V] };
  const ids = g.input(input);

  // Position-indexed tables are stored for the whole context and cut to the sequence.
  const seq = g.op('Shape', [ids], { start: 1, end: 2 }, 'seq_len');
  const firstRows = (table: string) => g.op('Slice', [table, g.int64s([0]), seq, g.int64s([0])]);
  const causal = g.op('Slice', [g.bool('causal_mask', [context, context], causalMask(context)), g.int64s([0, 0]), g.op('Concat', [seq, seq], { axis: 0 }), g.int64s([0, 1])]);
  let rope: RopeTables | null = null;
  if (!gpt2) {
    if (config.ropeTheta === null) throw new Error(`a llama model needs ropeTheta, and this checkpoint's config has none`);
    const tables = ropeTables(context, config.ropeTheta, HS);
    const full = (name: string, table: Float32Array) => {
      const rows = firstRows(g.float32(name, [context, HS / 2], table));
      return g.op('Concat', [rows, rows], { axis: 1 });
    };
    rope = { cos: full('rope.cos', tables.cos), sin: full('rope.sin', tables.sin) };
  }

  // Embeddings: token (+ learned position, gpt2).
  const tokEmb = param('tok_emb.weight', [V, C]);
  let x = g.op('Gather', [tokEmb, ids], { axis: 0 });
  if (gpt2) x = g.op('Add', [x, firstRows(param('pos_emb.weight', [context, C]))]);

  for (let l = 0; l < layers; l++) {
    const b = `blocks.${l}`;
    const qkv = linear(norm(x, `${b}.norm1`), `${b}.attn.qkv.weight`, 3 * C, C);
    const attended = attention(g, qkv, { C, heads }, causal, rope);
    x = g.op('Add', [x, linear(attended, `${b}.attn.out.weight`, C, C)], {}, `${b}.x_mid`);
    const h = norm(x, `${b}.norm2`);
    const act = gpt2
      ? gelu(g, linear(h, `${b}.mlp.fc.weight`, H, C))
      : swiglu(g, linear(h, `${b}.mlp.gate.weight`, H, C), linear(h, `${b}.mlp.up.weight`, H, C));
    x = g.op('Add', [x, linear(act, gpt2 ? `${b}.mlp.proj.weight` : `${b}.mlp.down.weight`, C, H)], {}, `${b}.x_out`);
  }

  // Final norm and LM head: tied to tok_emb for gpt2 (stored once; ORT folds the transpose at load).
  const h = norm(x, 'norm_f');
  const logits = gpt2
    ? g.op('MatMul', [h, g.op('Transpose', [tokEmb], { perm: [1, 0] })])
    : emitLinear(g, h, tensors.linear('lm_head.weight', V, C, false));
  g.op('Identity', [logits], {}, OUTPUT_NAME);
  return { graph: g.graph(`sieve-${family}`, [input], [output]), twoFour };
}

/** The ONNX model of a checkpoint, as bytes (onnx.ModelProto). */
export function exportOnnx(checkpoint: CheckpointState, options: ExportOptions): Uint8Array {
  for (const key of DERIVED_METADATA) {
    if (Object.hasOwn(options.metadata, key)) throw new Error(`metadata key "${key}" is the exporter's own: it derives it from the checkpoint`);
  }
  const { graph, twoFour } = buildGraph(checkpoint);
  const metadata: Record<string, string> = {
    ...options.metadata,
    'sieve.family': checkpoint.config.family,
    'sieve.config': JSON.stringify(checkpoint.config),
    'sieve.sparsity': JSON.stringify(sparsityReport(twoFour)),
    ...(checkpoint.quant ? { 'sieve.quantization': JSON.stringify({ ...checkpoint.quant.settings, weights: checkpoint.quant.tensors.map((t) => t.name) }) } : {}),
  };
  return encodeModel({ graph, irVersion: ONNX_IR_VERSION, opset: ONNX_OPSET, producer: 'sieve', metadata });
}
