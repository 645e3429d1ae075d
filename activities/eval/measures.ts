// What a model costs to store, and how sparse it is, measured from its weights (not from what
// the recipe intended): parameter counts, the share of the block linear weights' groups of four
// (along the input dimension) that are 2:4, and its size under dense and compressed accounting.
//
// Compressed accounting: a block linear weight that is exactly 2:4 stores its kept half as
// float32 values plus 2 bits of position per kept value (the layout of NVIDIA's 2:4 format: a
// 2-bit index for each of the two values kept in every group of four), 17 bits per weight; every
// other tensor is dense float32. A quantized weight (the quantize stage) stores its codes
// (for a 2:4 weight only the kept half's, each with its 2-bit position), a float32 scale and a
// uint8 zero point per group, and its 16-bit sparse set at 48 bits an entry (value + int32
// index; METHODS.md §6.3). Bits per weight = compressed bits / parameters.
import type { Model } from '../../kernels';
import type { CheckpointState } from '../../kernels/checkpoint';
import { countTwoFour } from '../../kernels/onnx/sparsity';

export interface ModelMeasures {
  params: number;
  nonzeroParams: number;
  /** Share of the block linear weights' 4-groups (along the input dimension) with at most two non-zeros, in [0, 1]. */
  twoFour: number;
  /** The same share within each sparsity scope: the MLP weights (`ffn`) and the attention projections (`attn`). */
  twoFourByScope: { ffn: number; attn: number };
  /** float32, every tensor dense. */
  bytesDense: number;
  /** 2:4 block linear weights compressed (above), the rest dense. */
  bytes: number;
  bitsPerWeight: number;
}

const FLOAT_BITS = 32;
/** Two kept values per group of four, each with a 2-bit index: 2 bits per kept value. */
const INDEX_BITS = 2;
/** Bits of one quantization group's parameters as stored: a float32 scale and a uint8 zero point. */
export const GROUP_BITS = 32 + 8;
/** Bits a detached sparse entry costs: a 16-bit value and a 32-bit index. */
export const SPARSE_ENTRY_BITS = 48;

/** A quantized weight's stored bits (see the file header). */
export function quantizedBits(size: number, bits: number, group: number, twoFour: boolean, sparseEntries: number): number {
  const codes = twoFour ? (size / 2) * (bits + INDEX_BITS) : size * bits;
  return codes + (size / group) * GROUP_BITS + sparseEntries * SPARSE_ENTRY_BITS;
}

/** The measures of a loaded model (its effective weights are param ⊙ mask), with its quantization payload if it has one. */
export function measureModel(model: Model, quant: CheckpointState['quant'] | null = null): ModelMeasures {
  const quantized = new Map(quant?.tensors.map((q) => [q.name, q.sparse.index.length]));
  let params = 0;
  let nonzeroParams = 0;
  const counts = { ffn: { groups: 0, twoFour: 0 }, attn: { groups: 0, twoFour: 0 } };
  let bits = 0;
  for (const t of model.tensors) {
    const weights = effectiveWeights(model, t.name);
    params += t.size;
    for (const w of weights) if (w !== 0) nonzeroParams++;
    const [rows, cols] = t.shape;
    const blockLinear = t.kind === 'linear' && t.scope !== null && t.shape.length === 2 && cols % 4 === 0;
    if (!blockLinear) {
      bits += t.size * FLOAT_BITS;
      continue;
    }
    const counted = countTwoFour(weights, rows, cols);
    counts[t.scope!].groups += counted.groups;
    counts[t.scope!].twoFour += counted.twoFour;
    const exactly24 = counted.twoFour === counted.groups;
    const entries = quantized.get(t.name);
    if (quant && entries !== undefined) bits += quantizedBits(t.size, quant.settings.bits, quant.settings.group, exactly24, entries);
    else bits += exactly24 ? (t.size / 2) * (FLOAT_BITS + INDEX_BITS) : t.size * FLOAT_BITS;
  }
  const bytes = Math.ceil(bits / 8);
  return {
    params,
    nonzeroParams,
    twoFour: share(counts.ffn.groups + counts.attn.groups, counts.ffn.twoFour + counts.attn.twoFour),
    twoFourByScope: { ffn: share(counts.ffn.groups, counts.ffn.twoFour), attn: share(counts.attn.groups, counts.attn.twoFour) },
    bytesDense: params * 4,
    bytes,
    bitsPerWeight: bits / params,
  };
}

const share = (groups: number, twoFour: number) => (groups === 0 ? 0 : twoFour / groups);

function effectiveWeights(model: Model, name: string): Float32Array {
  const weights = model.readTensor(name, 'param');
  const mask = model.readTensor(name, 'mask');
  for (let i = 0; i < weights.length; i++) if (mask[i] === 0) weights[i] = 0;
  return weights;
}
