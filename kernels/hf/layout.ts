// How the engine's tensors are stored in a Hugging Face checkpoint: for each sieve tensor, the HF
// tensor(s) holding it, their shapes, and whether they are transposed. One table per family
// (gpt2.ts, llama.ts); the importer reads along it and the exporter writes along it, so the two
// are inverse by construction.
import type { ModelFamily } from '../index';
import { gpt2Layout } from './gpt2';
import { llamaLayout } from './llama';

/** One dimension of an HF tensor: its size, and the config.json key(s) it follows (for errors). */
export interface Dim {
  size: number;
  /** e.g. `n_embd = 32`. */
  from: string;
}

export interface TensorMapping {
  /** The sieve name (docs/architecture.md). */
  ours: string;
  /** The HF tensors whose rows, stacked in order, form it: one, except llama's q, k, v → attn.qkv. */
  hf: string[];
  /** The shape of each HF tensor in `hf`. */
  hfShape: Dim[];
  /** A Conv1D weight (GPT-2), stored [in, out]: the transpose of sieve's nn.Linear [out, in]. */
  transposed: boolean;
}

export interface HfLayout {
  /** The transformers class whose names these are (config.json's `architectures`). */
  architecture: string;
  /** In the engine's table order. */
  tensors: TensorMapping[];
  /** An HF head tied to the embedding: a checkpoint may omit it, and one that has it must hold the embedding's values. */
  tiedHead: { hf: string; embedding: string; why: string } | null;
  /** Tensors some checkpoints carry that hold no weights (causal masks, RoPE tables). */
  isIgnored(name: string): boolean;
  /** A checkpoint's tensor name in this layout's naming. */
  canonicalName(name: string): string;
}

export interface LayoutConfig {
  family: ModelFamily;
  layers: number;
  dim: number;
  context: number;
  vocab: number;
  mlpHidden: number;
  tieEmbeddings: boolean;
}

export function hfLayout(config: LayoutConfig): HfLayout {
  return config.family === 'gpt2' ? gpt2Layout(config) : llamaLayout(config);
}

/** The sieve shape a mapping produces. */
export function sieveShape(m: TensorMapping): number[] {
  const hf = m.hfShape.map((d) => d.size);
  if (m.transposed) return [hf[1], hf[0]];
  return [hf[0] * m.hf.length, ...hf.slice(1)];
}

/** [rows, cols] row-major → [cols, rows] row-major. */
export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}
