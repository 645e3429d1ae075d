// Hugging Face GPT-2 import: a checkpoint this test writes in HF layout (random weights,
// Conv1D [in, out]) comes back under sieve names with every tensor checked element by
// element, the Conv1D weights transposed; plus the prefix, dtype and config.json variants
// and one clear error for each way a file can fail to be GPT-2.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { importHfGpt2 } from '../../kernels/hf-gpt2';
import { type TensorInput, writeSafetensors } from '../../kernels/safetensors';

const L = 2;
const C = 8;
const H = 32;
const V = 11;
const T = 6;
const HEADS = 2;

let seed = 1;
function random(n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    out[i] = seed / 2 ** 32 - 0.5;
  }
  return out;
}

/** HF GPT-2 tensors (HF names and shapes) with random weights. */
function hfTensors(): Map<string, { shape: number[]; data: Float32Array }> {
  const m = new Map<string, { shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[]) => m.set(name, { shape, data: random(shape.reduce((a, b) => a * b, 1)) });
  add('wte.weight', [V, C]);
  add('wpe.weight', [T, C]);
  for (let l = 0; l < L; l++) {
    add(`h.${l}.ln_1.weight`, [C]);
    add(`h.${l}.ln_1.bias`, [C]);
    add(`h.${l}.attn.c_attn.weight`, [C, 3 * C]);
    add(`h.${l}.attn.c_attn.bias`, [3 * C]);
    add(`h.${l}.attn.c_proj.weight`, [C, C]);
    add(`h.${l}.attn.c_proj.bias`, [C]);
    add(`h.${l}.ln_2.weight`, [C]);
    add(`h.${l}.ln_2.bias`, [C]);
    add(`h.${l}.mlp.c_fc.weight`, [C, H]);
    add(`h.${l}.mlp.c_fc.bias`, [H]);
    add(`h.${l}.mlp.c_proj.weight`, [H, C]);
    add(`h.${l}.mlp.c_proj.bias`, [C]);
  }
  add('ln_f.weight', [C]);
  add('ln_f.bias', [C]);
  return m;
}

const root = mkdtempSync(join(tmpdir(), 'sieve-hf-gpt2-'));
let dirNo = 0;

/** Write a model directory: model.safetensors (+ config.json when given). */
async function writeModel(tensors: TensorInput[], config?: object): Promise<string> {
  const dir = join(root, `m${dirNo++}`);
  mkdirSync(dir);
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  if (config) writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return dir;
}

const asInputs = (m: Map<string, { shape: number[]; data: Float32Array }>, prefix = ''): TensorInput[] =>
  [...m].map(([name, t]) => ({ name: prefix + name, dtype: 'F32' as const, shape: t.shape, data: t.data }));

const hfConfig = { n_head: HEADS, n_embd: C, n_layer: L, n_positions: T, vocab_size: V, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };

describe('importHfGpt2', () => {
  it('maps every tensor to sieve names, transposing Conv1D weights', async () => {
    const hf = hfTensors();
    // The causal-mask buffers that old GPT-2 checkpoints carry are ignored.
    const buffers: TensorInput[] = [
      { name: 'h.0.attn.bias', dtype: 'F32', shape: [1, 1, T, T], data: new Float32Array(T * T) },
      { name: 'h.1.attn.masked_bias', dtype: 'F32', shape: [], data: Float32Array.from([-1e4]) },
    ];
    const dir = await writeModel([...asInputs(hf), ...buffers], hfConfig);
    const imported = await importHfGpt2(dir);

    assert.deepEqual(imported.config, { family: 'gpt2', layers: L, dim: C, heads: HEADS, context: T, vocab: V, mlpHidden: H, normEps: 1e-5, ropeTheta: null, adapters: null });
    assert.equal(imported.activation, 'gelu_new');
    assert.equal(imported.path, join(dir, 'model.safetensors'));

    const direct: [string, string][] = [['wte.weight', 'tok_emb.weight'], ['wpe.weight', 'pos_emb.weight'], ['ln_f.weight', 'norm_f.weight'], ['ln_f.bias', 'norm_f.bias']];
    const conv: [string, string][] = [];
    for (let l = 0; l < L; l++) {
      for (const [a, b] of [['ln_1', 'norm1'], ['ln_2', 'norm2']]) {
        direct.push([`h.${l}.${a}.weight`, `blocks.${l}.${b}.weight`], [`h.${l}.${a}.bias`, `blocks.${l}.${b}.bias`]);
      }
      for (const [a, b] of [['attn.c_attn', 'attn.qkv'], ['attn.c_proj', 'attn.out'], ['mlp.c_fc', 'mlp.fc'], ['mlp.c_proj', 'mlp.proj']]) {
        conv.push([`h.${l}.${a}.weight`, `blocks.${l}.${b}.weight`]);
        direct.push([`h.${l}.${a}.bias`, `blocks.${l}.${b}.bias`]);
      }
    }
    assert.equal(imported.tensors.size, direct.length + conv.length, 'nothing more, nothing less');
    for (const [hfName, ours] of direct) {
      assert.deepEqual(imported.shapes.get(ours), hf.get(hfName)!.shape, ours);
      assert.deepEqual(imported.tensors.get(ours), hf.get(hfName)!.data, ours);
    }
    for (const [hfName, ours] of conv) {
      const [inDim, outDim] = hf.get(hfName)!.shape;
      assert.deepEqual(imported.shapes.get(ours), [outDim, inDim], ours);
      const src = hf.get(hfName)!.data;
      const dst = imported.tensors.get(ours)!;
      for (let o = 0; o < outDim; o++) {
        for (let i = 0; i < inDim; i++) assert.equal(dst[o * inDim + i], src[i * outDim + o], `${ours}[${o}, ${i}]`);
      }
    }
    // qkv rows: q is HF c_attn output columns [0, C), k [C, 2C), v [2C, 3C).
    const qkv = imported.tensors.get('blocks.0.attn.qkv.weight')!;
    const cAttn = hf.get('h.0.attn.c_attn.weight')!.data;
    assert.equal(qkv[(C + 3) * C + 5], cAttn[5 * 3 * C + C + 3], 'row C + 3 is k, output channel 3');
    assert.deepEqual([...imported.tensors.keys()].slice(0, 4), ['tok_emb.weight', 'pos_emb.weight', 'blocks.0.norm1.weight', 'blocks.0.norm1.bias']);
  });

  it('accepts the transformer. prefix, a tied lm_head, F16 weights and heads given directly', async () => {
    const hf = hfTensors();
    const inputs = asInputs(hf, 'transformer.');
    // F16 storage: exactly representable halves, so the widened values are known.
    const halves = Uint16Array.from({ length: C }, (_, i) => 0x3c00 + i); // 1 + i/1024
    inputs[inputs.findIndex((t) => t.name === 'transformer.ln_f.weight')] = { name: 'transformer.ln_f.weight', dtype: 'F16', shape: [C], data: halves };
    inputs.push({ name: 'lm_head.weight', dtype: 'F32', shape: [V, C], data: hf.get('wte.weight')!.data });
    const file = join(await writeModel(inputs), 'model.safetensors');
    const imported = await importHfGpt2(file, { heads: 4 });
    assert.equal(imported.config.heads, 4);
    assert.deepEqual([...imported.tensors.get('norm_f.weight')!], Array.from({ length: C }, (_, i) => 1 + i / 1024));
    assert.deepEqual(imported.tensors.get('blocks.1.mlp.proj.bias'), hf.get('h.1.mlp.c_proj.bias')!.data);
  });

  it('names what is wrong', async () => {
    const hf = hfTensors();
    const file = (dir: string) => join(dir, 'model.safetensors');

    const noHeads = await writeModel(asInputs(hf));
    await assert.rejects(importHfGpt2(noHeads), {
      message: `${file(noHeads)}: the number of attention heads is not in the weights; pass heads, or put a config.json with n_head beside the file`,
    });
    await assert.rejects(importHfGpt2(noHeads, { heads: 3 }), { message: `${file(noHeads)}: heads = 3 must be a positive integer dividing the width 8` });

    const withConfig = await writeModel(asInputs(hf), hfConfig);
    await assert.rejects(importHfGpt2(withConfig, { heads: 4 }), { message: `heads = 4 was given but ${join(withConfig, 'config.json')} says n_head = 2` });
    const wrongConfig = await writeModel(asInputs(hf), { ...hfConfig, n_layer: 12 });
    await assert.rejects(importHfGpt2(wrongConfig), { message: `${join(wrongConfig, 'config.json')} says n_layer = 12 but the weights in ${file(wrongConfig)} have 2` });

    const missing = await writeModel(asInputs(hf).filter((t) => t.name !== 'h.1.mlp.c_fc.bias'), hfConfig);
    await assert.rejects(importHfGpt2(missing), { message: `${file(missing)}: missing tensor "h.1.mlp.c_fc.bias" (not a GPT-2 checkpoint in Hugging Face layout?)` });

    const extra = await writeModel([...asInputs(hf), { name: 'h.0.attn.rotary', dtype: 'F32', shape: [1], data: new Float32Array(1) }], hfConfig);
    await assert.rejects(importHfGpt2(extra), { message: `${file(extra)}: unexpected tensor "h.0.attn.rotary" (not part of GPT-2)` });

    const badShape = asInputs(hf).map((t) => (t.name === 'h.1.mlp.c_fc.weight' ? { ...t, shape: [H, C] } : t));
    const shaped = await writeModel(badShape, hfConfig);
    await assert.rejects(importHfGpt2(shaped), { message: `${file(shaped)}: tensor "h.1.mlp.c_fc.weight" has shape [32, 8], expected [8, 32] (Conv1D layout [in, out])` });

    const untied = await writeModel([...asInputs(hf), { name: 'lm_head.weight', dtype: 'F32', shape: [V, C], data: random(V * C) }], hfConfig);
    await assert.rejects(importHfGpt2(untied), {
      message: `${file(untied)}: lm_head.weight differs from wte.weight, but sieve's gpt2 family ties the LM head to the token embedding`,
    });

    const gap = await writeModel(asInputs(hf).map((t) => ({ ...t, name: t.name.replace(/^h\.1\./, 'h.2.') })), hfConfig);
    await assert.rejects(importHfGpt2(gap), { message: `${file(gap)}: layers are not numbered 0..1 (no h.1.*)` });
  });
});
