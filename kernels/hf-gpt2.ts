// Importer for Hugging Face GPT-2 safetensors checkpoints (`model.safetensors` of
// GPT2Model / GPT2LMHeadModel) into sieve's tensor names and layouts.
//
// HF names are `h.N.attn.c_attn.weight` etc., optionally under `transformer.`. HF GPT-2
// uses Conv1D, whose weight is stored [in, out]; sieve uses nn.Linear's [out, in], so every
// Conv1D weight is transposed. c_attn's output columns are q, then k, then v, which after
// the transpose are exactly the rows of our `attn.qkv.weight`. The tied `lm_head.weight`
// (checked equal to `wte.weight` when present) and the causal-mask buffers `attn.bias` /
// `attn.masked_bias` are dropped.
//
// Promises: every HF tensor is either mapped, or deliberately ignored; anything missing,
// unexpected or of the wrong shape is one clear error naming the tensor. Dimensions come
// from shapes; `heads` cannot (it is not visible in any shape), so it is passed in or read
// from `n_head` in the config.json beside the file, and the two must agree.
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { CheckpointConfig } from './checkpoint';
import { readSafetensors, type Tensor, toFloat32 } from './safetensors';

export interface HfGpt2Options {
  /** Attention heads; required unless config.json beside the file gives `n_head`. */
  heads?: number;
}

export interface HfGpt2Import {
  config: CheckpointConfig;
  /** sieve name → weights in sieve layout, in sieve's table order (docs/architecture.md). */
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /**
   * The HF `activation_function` (default `gelu_new`, the tanh approximation of GELU):
   * the engine's GELU must be the same one for the logits to match.
   */
  activation: string;
  /** The safetensors file read. */
  path: string;
}

interface HfConfig {
  n_head?: number;
  n_embd?: number;
  n_layer?: number;
  n_positions?: number;
  vocab_size?: number;
  layer_norm_epsilon?: number;
  activation_function?: string;
}

/** HF's GPT-2 LayerNorm epsilon when config.json does not say. */
const DEFAULT_NORM_EPS = 1e-5;

async function readHfConfig(path: string): Promise<HfConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as HfConfig;
  } catch {
    throw new Error(`${path} is not valid JSON`);
  }
}

/** One HF tensor → sieve tensor rule: the sieve name and whether the HF weight is a Conv1D [in, out]. */
interface Rule {
  hf: string;
  ours: string;
  /** Expected HF shape. */
  shape: number[];
  conv1d: boolean;
}

function rules(layers: number, C: number, H: number, V: number, T: number): Rule[] {
  const list: Rule[] = [
    { hf: 'wte.weight', ours: 'tok_emb.weight', shape: [V, C], conv1d: false },
    { hf: 'wpe.weight', ours: 'pos_emb.weight', shape: [T, C], conv1d: false },
  ];
  for (let l = 0; l < layers; l++) {
    const h = `h.${l}.`;
    const b = `blocks.${l}.`;
    list.push(
      { hf: `${h}ln_1.weight`, ours: `${b}norm1.weight`, shape: [C], conv1d: false },
      { hf: `${h}ln_1.bias`, ours: `${b}norm1.bias`, shape: [C], conv1d: false },
      { hf: `${h}attn.c_attn.weight`, ours: `${b}attn.qkv.weight`, shape: [C, 3 * C], conv1d: true },
      { hf: `${h}attn.c_attn.bias`, ours: `${b}attn.qkv.bias`, shape: [3 * C], conv1d: false },
      { hf: `${h}attn.c_proj.weight`, ours: `${b}attn.out.weight`, shape: [C, C], conv1d: true },
      { hf: `${h}attn.c_proj.bias`, ours: `${b}attn.out.bias`, shape: [C], conv1d: false },
      { hf: `${h}ln_2.weight`, ours: `${b}norm2.weight`, shape: [C], conv1d: false },
      { hf: `${h}ln_2.bias`, ours: `${b}norm2.bias`, shape: [C], conv1d: false },
      { hf: `${h}mlp.c_fc.weight`, ours: `${b}mlp.fc.weight`, shape: [C, H], conv1d: true },
      { hf: `${h}mlp.c_fc.bias`, ours: `${b}mlp.fc.bias`, shape: [H], conv1d: false },
      { hf: `${h}mlp.c_proj.weight`, ours: `${b}mlp.proj.weight`, shape: [H, C], conv1d: true },
      { hf: `${h}mlp.c_proj.bias`, ours: `${b}mlp.proj.bias`, shape: [C], conv1d: false },
    );
  }
  list.push(
    { hf: 'ln_f.weight', ours: 'norm_f.weight', shape: [C], conv1d: false },
    { hf: 'ln_f.bias', ours: 'norm_f.bias', shape: [C], conv1d: false },
  );
  return list;
}

/** [rows, cols] row-major → [cols, rows] row-major. */
function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  }
  return out;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const isIgnoredBuffer = (name: string) => /^h\.\d+\.attn\.(bias|masked_bias)$/.test(name);

/** Import a Hugging Face GPT-2 safetensors file (or a directory holding `model.safetensors`). */
export async function importHfGpt2(path: string, options: HfGpt2Options = {}): Promise<HfGpt2Import> {
  const file = (await stat(path).catch(() => undefined))?.isDirectory() ? join(path, 'model.safetensors') : path;
  const configPath = join(dirname(file), 'config.json');
  const [st, hfConfig] = await Promise.all([readSafetensors(file), readHfConfig(configPath)]);

  // Normalise names: GPT2LMHeadModel nests the body under `transformer.`.
  const byName = new Map<string, Tensor>();
  for (const t of st.tensors) {
    const name = t.name.startsWith('transformer.') ? t.name.slice('transformer.'.length) : t.name;
    if (byName.has(name)) throw new Error(`${file}: tensor "${name}" appears both with and without the "transformer." prefix`);
    byName.set(name, t);
  }

  const need = (name: string) => {
    const t = byName.get(name);
    if (!t) throw new Error(`${file}: missing tensor "${name}" (not a GPT-2 checkpoint in Hugging Face layout?)`);
    return t;
  };
  const wte = need('wte.weight');
  const wpe = need('wpe.weight');
  const fc = need('h.0.mlp.c_fc.weight');
  if (wte.shape.length !== 2 || wpe.shape.length !== 2 || fc.shape.length !== 2) {
    throw new Error(`${file}: wte, wpe and h.0.mlp.c_fc weights must be matrices, got ${shapeText(wte.shape)}, ${shapeText(wpe.shape)}, ${shapeText(fc.shape)}`);
  }
  const [V, C] = wte.shape;
  const T = wpe.shape[0];
  const H = fc.shape[1];
  const layerIds = new Set<number>();
  for (const name of byName.keys()) {
    const m = /^h\.(\d+)\./.exec(name);
    if (m) layerIds.add(Number(m[1]));
  }
  const layers = layerIds.size;
  for (let l = 0; l < layers; l++) {
    if (!layerIds.has(l)) throw new Error(`${file}: layers are not numbered 0..${layers - 1} (no h.${l}.*)`);
  }

  const heads = options.heads ?? hfConfig?.n_head;
  if (heads === undefined) {
    throw new Error(`${file}: the number of attention heads is not in the weights; pass heads, or put a config.json with n_head beside the file`);
  }
  if (options.heads !== undefined && hfConfig?.n_head !== undefined && options.heads !== hfConfig.n_head) {
    throw new Error(`heads = ${options.heads} was given but ${configPath} says n_head = ${hfConfig.n_head}`);
  }
  if (!Number.isInteger(heads) || heads < 1 || C % heads !== 0) {
    throw new Error(`${file}: heads = ${heads} must be a positive integer dividing the width ${C}`);
  }
  const inferred = { n_embd: C, n_layer: layers, n_positions: T, vocab_size: V };
  for (const [key, value] of Object.entries(inferred)) {
    const stated = hfConfig?.[key as keyof HfConfig];
    if (stated !== undefined && stated !== value) {
      throw new Error(`${configPath} says ${key} = ${stated} but the weights in ${file} have ${value}`);
    }
  }

  const tensors = new Map<string, Float32Array>();
  const shapes = new Map<string, number[]>();
  const mapped = new Set<string>();
  for (const rule of rules(layers, C, H, V, T)) {
    const t = need(rule.hf);
    if (shapeText(t.shape) !== shapeText(rule.shape)) {
      const layout = rule.conv1d ? ' (Conv1D layout [in, out])' : '';
      throw new Error(`${file}: tensor "${rule.hf}" has shape ${shapeText(t.shape)}, expected ${shapeText(rule.shape)}${layout}`);
    }
    let data: Float32Array;
    try {
      data = toFloat32(t);
    } catch (err) {
      throw new Error(`${file}: ${(err as Error).message}`);
    }
    if (rule.conv1d) {
      const [inDim, outDim] = rule.shape;
      tensors.set(rule.ours, transpose(data, inDim, outDim));
      shapes.set(rule.ours, [outDim, inDim]);
    } else {
      // A copy, so the result does not pin the whole file's buffer in memory.
      tensors.set(rule.ours, data.buffer === t.bytes.buffer ? data.slice() : data);
      shapes.set(rule.ours, rule.shape);
    }
    mapped.add(rule.hf);
  }

  for (const [name, t] of byName) {
    if (mapped.has(name) || isIgnoredBuffer(name)) continue;
    if (name === 'lm_head.weight') {
      const head = toFloat32(t);
      const emb = tensors.get('tok_emb.weight')!;
      if (shapeText(t.shape) !== shapeText([V, C]) || head.some((v, i) => !Object.is(v, emb[i]))) {
        throw new Error(`${file}: lm_head.weight differs from wte.weight, but sieve's gpt2 family ties the LM head to the token embedding`);
      }
      continue;
    }
    throw new Error(`${file}: unexpected tensor "${t.name}" (not part of GPT-2)`);
  }

  return {
    config: {
      family: 'gpt2',
      layers,
      dim: C,
      heads,
      context: T,
      vocab: V,
      mlpHidden: H,
      normEps: hfConfig?.layer_norm_epsilon ?? DEFAULT_NORM_EPS,
      ropeTheta: null,
      adapters: null,
    },
    tensors,
    shapes,
    activation: hfConfig?.activation_function ?? 'gelu_new',
    path: file,
  };
}
