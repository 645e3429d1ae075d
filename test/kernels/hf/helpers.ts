// Shared by the Hugging Face checkpoint tests: seeded random weights, LLaMA tensors under
// LlamaForCausalLM's names, and writing a checkpoint folder (config.json, model.safetensors,
// a tokenizer.json stand-in) the way transformers' save_pretrained lays it out.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { type TensorInput, writeSafetensors } from '../../../kernels/safetensors';

/** HF name → shape and float32 values, in file order. */
export type HfTensors = Map<string, { shape: number[]; data: Float32Array }>;

/** A seeded uniform generator on [-0.5, 0.5) (LCG: reproducible, no dependency). */
export function uniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

export interface LlamaDims {
  layers: number;
  dim: number;
  heads: number;
  hidden: number;
  vocab: number;
  context: number;
  eps: number;
  theta: number;
}

/**
 * LlamaForCausalLM tensors with random weights: norm gains near 1 and matrices of moderate size keep
 * every layer where a wrong layout or rotation would show. `tied` leaves lm_head.weight out.
 */
export function llamaTensors(d: LlamaDims, seed: number, tied = false): HfTensors {
  const random = uniform(seed);
  const m: HfTensors = new Map();
  const add = (name: string, shape: number[], scale: number, offset = 0) =>
    m.set(name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + scale * random()) });
  const { dim: C, hidden: H, vocab: V } = d;
  add('model.embed_tokens.weight', [V, C], 2);
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [C], 0.4, 1);
    add(`${p}self_attn.q_proj.weight`, [C, C], 0.8);
    add(`${p}self_attn.k_proj.weight`, [C, C], 0.8);
    add(`${p}self_attn.v_proj.weight`, [C, C], 0.6);
    add(`${p}self_attn.o_proj.weight`, [C, C], 0.4);
    add(`${p}post_attention_layernorm.weight`, [C], 0.4, 1);
    add(`${p}mlp.gate_proj.weight`, [H, C], 0.6);
    add(`${p}mlp.up_proj.weight`, [H, C], 0.6);
    add(`${p}mlp.down_proj.weight`, [C, H], 0.4);
  }
  add('model.norm.weight', [C], 0.4, 1);
  if (!tied) add('lm_head.weight', [V, C], 0.6);
  return m;
}

export function llamaConfig(d: LlamaDims, extra: object = {}): object {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    num_hidden_layers: d.layers,
    hidden_size: d.dim,
    num_attention_heads: d.heads,
    num_key_value_heads: d.heads,
    intermediate_size: d.hidden,
    max_position_embeddings: d.context,
    vocab_size: d.vocab,
    rms_norm_eps: d.eps,
    rope_theta: d.theta,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
    ...extra,
  };
}

export const asInputs = (m: HfTensors, prefix = ''): TensorInput[] =>
  [...m].map(([name, t]) => ({ name: prefix + name, dtype: 'F32' as const, shape: t.shape, data: t.data }));

/** A tokenizer.json stand-in: the importer records the file (path, sha256) and never parses it. */
export const TOKENIZER_TEXT = '{"version":"1.0","model":{"type":"BPE","vocab":{},"merges":[]}}';

const root = mkdtempSync(join(tmpdir(), 'sieve-hf-'));
let folderNo = 0;

/** A fresh empty folder under the test's temporary root. */
export function freshDir(name = 'm'): string {
  const dir = join(root, `${name}${folderNo++}`);
  mkdirSync(dir);
  return dir;
}

/** Write a checkpoint folder: model.safetensors (unless `tensors` is null), config.json, and tokenizer.json unless told not to. */
export async function writeFolder(tensors: TensorInput[] | null, config: object | null, options: { tokenizer?: boolean } = {}): Promise<string> {
  const dir = freshDir();
  if (tensors) await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  if (options.tokenizer ?? true) writeFileSync(join(dir, 'tokenizer.json'), TOKENIZER_TEXT);
  return dir;
}

/** GPT-2's byte → printable character table (the byte-level alphabet). */
function byteLevelAlphabet(): string[] {
  const printable = [...Array.from({ length: 94 }, (_, i) => 33 + i), ...Array.from({ length: 12 }, (_, i) => 161 + i), ...Array.from({ length: 82 }, (_, i) => 174 + i)];
  const chars: string[] = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) chars[b] = String.fromCharCode(printable.includes(b) ? b : 256 + shifted++);
  return chars;
}

/** Merges in rank order; each merge's result gets the next id after `firstId`. */
export function mergeVocab(merges: string[], firstId: number): Record<string, number> {
  return Object.fromEntries(merges.map((m, i) => [m.replace(' ', ''), firstId + i]));
}

/**
 * A byte-level BPE tokenizer.json like GPT-2's: ids 0–255 are the bytes (id = byte value), then one
 * id per merge, then the special <|endoftext|>. Any text encodes.
 */
export function byteLevelTokenizer(merges: string[]): object {
  const endOfText = 256 + merges.length;
  return {
    version: '1.0',
    added_tokens: [{ id: endOfText, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab: { ...Object.fromEntries(byteLevelAlphabet().map((c, b) => [c, b])), ...mergeVocab(merges, 256), '<|endoftext|>': endOfText },
      merges,
    },
  };
}
