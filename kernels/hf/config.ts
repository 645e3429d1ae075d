// A Hugging Face `config.json` ↔ the engine's model config, for GPT-2 (`GPT2LMHeadModel`) and
// LLaMA (`LlamaForCausalLM`) checkpoints.
//
// Promises: reading looks only at `<dir>/config.json` (and whether `tokenizer.json` is beside it),
// never at the weights, so the CLI can call it while it validates a recipe. Every setting the
// engine cannot compute exactly (another activation, grouped-query attention, RoPE scaling, biases
// in LLaMA, a GPT-2 with an untied head) is refused with one Error naming the file and the key,
// never approximated. `hfConfigJson` writes the keys that reading takes back to the same config.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { ModelConfig, ModelFamily } from '../index';
import { describeSource, type HfSource } from './source';

/** Where the model's tokenizer comes from: sieve's built-in GPT-2 BPE, or the folder's tokenizer.json. */
export type HfTokenizer = { kind: 'gpt2' } | { kind: 'file'; path: string };

/** The engine config a config.json implies (no adapters), how its head is stored, and its tokenizer. */
export interface HfModelConfig extends Omit<ModelConfig, 'adapters'> {
  /** Whether the checkpoint's LM head is the token embedding (always for gpt2; llama's `tie_word_embeddings`). */
  tieEmbeddings: boolean;
  tokenizer: HfTokenizer;
}

export const CONFIG_FILE = 'config.json';
export const TOKENIZER_FILE = 'tokenizer.json';

/** The vocabulary of sieve's built-in GPT-2 BPE (activities/data/tokenizer.ts, r50k_base). */
const GPT2_BPE_VOCAB = 50_257;

// Transformers' defaults for keys a config.json may leave out.
const GPT2_DEFAULT_NORM_EPS = 1e-5;
const LLAMA_DEFAULT_NORM_EPS = 1e-6;
const LLAMA_DEFAULT_ROPE_THETA = 10_000;

/** config.json's keys for each engine dimension, per family. */
const CONFIG_KEYS = {
  gpt2: { layers: 'n_layer', dim: 'n_embd', heads: 'n_head', context: 'n_positions', vocab: 'vocab_size', mlpHidden: 'n_inner' },
  llama: {
    layers: 'num_hidden_layers',
    dim: 'hidden_size',
    heads: 'num_attention_heads',
    context: 'max_position_embeddings',
    vocab: 'vocab_size',
    mlpHidden: 'intermediate_size',
  },
} as const satisfies Record<ModelFamily, Record<string, string>>;

const show = (value: unknown) => JSON.stringify(value);

/** Typed access to config.json's keys; every failure names the file and the key. */
function keysOf(path: string, json: Record<string, unknown>) {
  const fail = (key: string, why: string): never => {
    throw new Error(`${path}: "${key}" ${why}`);
  };
  const has = (key: string) => json[key] !== undefined;
  return {
    fail,
    has,
    raw: (key: string) => json[key],
    count(key: string, fallback?: number): number {
      const value = json[key] ?? fallback;
      if (value === undefined) return fail(key, 'is missing');
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) return fail(key, `must be a positive integer, got ${show(value)}`);
      return value;
    },
    positive(key: string, fallback: number): number {
      const value = json[key] ?? fallback;
      if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) return fail(key, `must be a positive number, got ${show(value)}`);
      return value;
    },
    flag(key: string, fallback: boolean): boolean {
      const value = json[key] ?? fallback;
      if (typeof value !== 'boolean') return fail(key, `must be true or false, got ${show(value)}`);
      return value;
    },
    /** The key must be absent, null or one of `wanted`, because the engine computes only that. */
    only(key: string, wanted: unknown, why: string): void {
      const value = json[key];
      const allowed = Array.isArray(wanted) ? wanted : [wanted];
      if (value !== undefined && value !== null && !allowed.includes(value)) fail(key, `is ${show(value)}, but ${why}`);
    },
  };
}

type Keys = ReturnType<typeof keysOf>;
type Architecture = Omit<HfModelConfig, 'tokenizer'>;

function gpt2Architecture(keys: Keys): Architecture {
  const dim = keys.count('n_embd');
  const context = keys.has('n_positions') ? keys.count('n_positions') : keys.count('n_ctx');
  // Transformers' two names for the same tanh approximation.
  keys.only('activation_function', ['gelu_new', 'gelu_pytorch_tanh'], 'the engine\'s GPT-2 GELU is the tanh approximation, "gelu_new"');
  keys.only('tie_word_embeddings', true, "sieve's gpt2 family ties the LM head to the token embedding");
  keys.only('scale_attn_weights', true, 'the engine always scales attention scores by 1/√(head size)');
  keys.only('scale_attn_by_inverse_layer_idx', false, 'the engine does not scale attention by layer');
  return {
    family: 'gpt2',
    layers: keys.count('n_layer'),
    dim,
    heads: keys.count('n_head'),
    context,
    vocab: keys.count('vocab_size'),
    // null (the usual value) means 4·n_embd.
    mlpHidden: keys.count('n_inner', 4 * dim),
    normEps: keys.positive('layer_norm_epsilon', GPT2_DEFAULT_NORM_EPS),
    ropeTheta: null,
    tieEmbeddings: true,
  };
}

/** RoPE's base: `rope_theta`, or transformers 5's `rope_parameters` (unscaled RoPE only). */
function llamaRopeTheta(keys: Keys): number {
  const parameters = keys.raw('rope_parameters');
  if (parameters === undefined || parameters === null) return keys.positive('rope_theta', LLAMA_DEFAULT_ROPE_THETA);
  if (typeof parameters !== 'object' || Array.isArray(parameters)) return keys.fail('rope_parameters', `must be an object, got ${show(parameters)}`);
  const { rope_type: type, rope_theta: theta } = parameters as Record<string, unknown>;
  if (type !== undefined && type !== 'default') {
    return keys.fail('rope_parameters', `has rope_type ${show(type)}, but the engine's RoPE is unscaled ("default")`);
  }
  if (theta === undefined) return keys.positive('rope_theta', LLAMA_DEFAULT_ROPE_THETA);
  if (typeof theta !== 'number' || !Number.isFinite(theta) || theta <= 0) return keys.fail('rope_parameters', `has rope_theta ${show(theta)}, not a positive number`);
  return theta;
}

function llamaArchitecture(keys: Keys): Architecture {
  const dim = keys.count('hidden_size');
  const heads = keys.count('num_attention_heads');
  const kvHeads = keys.count('num_key_value_heads', heads);
  if (kvHeads !== heads) {
    keys.fail('num_key_value_heads', `is ${kvHeads} but "num_attention_heads" is ${heads}: the engine has no grouped-query attention, so they must be equal`);
  }
  if (keys.has('head_dim') && keys.raw('head_dim') !== null && keys.count('head_dim') * heads !== dim) {
    keys.fail('head_dim', `is ${show(keys.raw('head_dim'))}, but the engine's head size is hidden_size / num_attention_heads = ${dim / heads}`);
  }
  keys.only('hidden_act', 'silu', 'the engine\'s LLaMA MLP is SiLU-gated ("silu")');
  keys.only('rope_scaling', null, "the engine's RoPE has no scaling: it must be null or absent");
  keys.only('attention_bias', false, "the engine's LLaMA has no biases");
  keys.only('mlp_bias', false, "the engine's LLaMA has no biases");
  return {
    family: 'llama',
    layers: keys.count('num_hidden_layers'),
    dim,
    heads,
    context: keys.count('max_position_embeddings'),
    vocab: keys.count('vocab_size'),
    mlpHidden: keys.count('intermediate_size'),
    normEps: keys.positive('rms_norm_eps', LLAMA_DEFAULT_NORM_EPS),
    ropeTheta: llamaRopeTheta(keys),
    tieEmbeddings: keys.flag('tie_word_embeddings', false),
  };
}

/** The shape rules of the engine that config.json can break, checked here so the message names its keys. */
function checkShapes(keys: Keys, a: Architecture): void {
  const k = CONFIG_KEYS[a.family];
  if (a.dim % a.heads !== 0) keys.fail(k.heads, `= ${a.heads} does not divide "${k.dim}" = ${a.dim}`);
  if (a.family === 'llama' && (a.dim / a.heads) % 2 !== 0) {
    keys.fail(k.heads, `= ${a.heads} gives an odd head size ${a.dim}/${a.heads} = ${a.dim / a.heads}; RoPE needs an even one`);
  }
}

async function isFile(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function tokenizerFor(dir: string, a: Architecture): Promise<HfTokenizer> {
  const path = join(dir, TOKENIZER_FILE);
  if (await isFile(path)) return { kind: 'file', path };
  if (a.family === 'gpt2' && a.vocab === GPT2_BPE_VOCAB) return { kind: 'gpt2' };
  throw new Error(
    `${dir} has no ${TOKENIZER_FILE}; without one, only a gpt2 model with vocab_size ${GPT2_BPE_VOCAB} can use sieve's built-in GPT-2 tokenizer (this is a ${a.family} model with vocab_size ${a.vocab})`,
  );
}

/** Read `<dir>/config.json` and what it implies, with the bytes read (for the import's sources). */
export async function loadHfConfig(dir: string): Promise<{ config: HfModelConfig; source: HfSource }> {
  const path = join(dir, CONFIG_FILE);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new Error(`${path} does not exist: a Hugging Face model folder holds its config.json beside the weights`);
    throw new Error(`cannot read ${path} (${code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${path} is not a JSON object`);
  const keys = keysOf(path, json as Record<string, unknown>);
  const modelType = keys.raw('model_type');
  let architecture: Architecture;
  if (modelType === 'gpt2') architecture = gpt2Architecture(keys);
  else if (modelType === 'llama') architecture = llamaArchitecture(keys);
  else return keys.fail('model_type', `is ${show(modelType)}; sieve imports "gpt2" and "llama" models`);
  checkShapes(keys, architecture);
  return { config: { ...architecture, tokenizer: await tokenizerFor(dir, architecture) }, source: describeSource(path, bytes) };
}

/** The engine config implied by `<dir>/config.json`; reads nothing else (see the file header). */
export async function readHfConfig(dir: string): Promise<HfModelConfig> {
  return (await loadHfConfig(dir)).config;
}

/** config.json for a model written in Hugging Face layout (kernels/hf/export.ts); float32 weights. */
export function hfConfigJson(config: ModelConfig): Record<string, unknown> {
  if (config.family === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_layer: config.layers,
      n_embd: config.dim,
      n_head: config.heads,
      n_positions: config.context,
      n_ctx: config.context,
      vocab_size: config.vocab,
      n_inner: config.mlpHidden,
      layer_norm_epsilon: config.normEps,
      activation_function: 'gelu_new',
      tie_word_embeddings: true,
      torch_dtype: 'float32',
    };
  }
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    num_hidden_layers: config.layers,
    hidden_size: config.dim,
    num_attention_heads: config.heads,
    num_key_value_heads: config.heads,
    intermediate_size: config.mlpHidden,
    max_position_embeddings: config.context,
    vocab_size: config.vocab,
    rms_norm_eps: config.normEps,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    attention_bias: false,
    mlp_bias: false,
    // The engine's llama head is its own tensor, so the export always writes lm_head.weight.
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
}
