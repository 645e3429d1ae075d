// Hugging Face GPT-2 import: a checkpoint this test writes in HF layout (random weights,
// Conv1D [in, out]) comes back under sieve names with every tensor checked element by
// element, the Conv1D weights transposed; plus the prefix, tied-head and dtype variants, the
// files it reports reading, and one clear error for each way a file can fail to be GPT-2.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { importHf } from '../../../kernels/hf';
import type { TensorInput } from '../../../kernels/safetensors';
import { asInputs, type HfTensors, uniform, writeFolder } from './helpers';

const L = 2;
const C = 8;
const H = 32;
const V = 11;
const T = 6;
const HEADS = 2;

const random = uniform(1);

/** HF GPT-2 tensors as GPT2Model names them (no `transformer.`), with random weights. */
function hfTensors(): HfTensors {
  const m: HfTensors = new Map();
  const add = (name: string, shape: number[]) => m.set(name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, random) });
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

const hfConfig = { model_type: 'gpt2', n_head: HEADS, n_embd: C, n_layer: L, n_positions: T, vocab_size: V, n_inner: null, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

describe('importHf (gpt2)', () => {
  it('maps every tensor to sieve names, transposing Conv1D weights, and lists the files it read', async () => {
    const hf = hfTensors();
    // The causal-mask buffers that old GPT-2 checkpoints carry are ignored, whatever their dtype.
    const buffers: TensorInput[] = [
      { name: 'h.0.attn.bias', dtype: 'U8', shape: [1, 1, T, T], data: new Uint8Array(T * T) },
      { name: 'h.1.attn.masked_bias', dtype: 'F32', shape: [], data: Float32Array.from([-1e4]) },
    ];
    const dir = await writeFolder([...asInputs(hf), ...buffers], { ...hfConfig, n_inner: H });
    const imported = await importHf(dir);

    assert.deepEqual(imported.config, { family: 'gpt2', layers: L, dim: C, heads: HEADS, context: T, vocab: V, mlpHidden: H, normEps: 1e-5, ropeTheta: null, adapters: null });
    assert.deepEqual(imported.tokenizer, { kind: 'file', path: join(dir, 'tokenizer.json') });
    assert.deepEqual(
      imported.sources,
      ['config.json', 'model.safetensors', 'tokenizer.json'].map((f) => {
        const path = join(dir, f);
        return { path, sha256: sha256(path), bytes: readFileSync(path).length };
      }),
    );

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
    for (const [hfName, ours] of direct) assert.deepEqual(imported.tensors.get(ours), hf.get(hfName)!.data, ours);
    for (const [hfName, ours] of conv) {
      const [inDim, outDim] = hf.get(hfName)!.shape;
      const src = hf.get(hfName)!.data;
      const dst = imported.tensors.get(ours)!;
      assert.equal(dst.length, src.length, ours);
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

  it('accepts the transformer. prefix, a tied lm_head, F16 and BF16 weights, and the built-in tokenizer for vocab 50257', async () => {
    const hf = hfTensors();
    const inputs = asInputs(hf, 'transformer.');
    // Exactly representable halves, so the widened values are known: F16 1 + i/1024, BF16 1 + i/128.
    const replace = (name: string, input: TensorInput) => (inputs[inputs.findIndex((t) => t.name === name)] = input);
    replace('transformer.ln_f.weight', { name: 'transformer.ln_f.weight', dtype: 'F16', shape: [C], data: Uint16Array.from({ length: C }, (_, i) => 0x3c00 + i) });
    replace('transformer.ln_f.bias', { name: 'transformer.ln_f.bias', dtype: 'BF16', shape: [C], data: Uint16Array.from({ length: C }, (_, i) => 0x3f80 + i) });
    inputs.push({ name: 'lm_head.weight', dtype: 'F32', shape: [V, C], data: hf.get('wte.weight')!.data });
    const imported = await importHf(await writeFolder(inputs, hfConfig));
    assert.deepEqual([...imported.tensors.get('norm_f.weight')!], Array.from({ length: C }, (_, i) => 1 + i / 1024));
    assert.deepEqual([...imported.tensors.get('norm_f.bias')!], Array.from({ length: C }, (_, i) => 1 + i / 128));
    assert.deepEqual(imported.tensors.get('blocks.1.mlp.proj.bias'), hf.get('h.1.mlp.c_proj.bias')!.data);
    assert.equal(imported.config.mlpHidden, 4 * C, 'n_inner null is 4·n_embd');
    assert.equal(imported.sources.length, 3);
  });

  it('names what is wrong', async () => {
    const hf = hfTensors();
    const file = (dir: string) => join(dir, 'model.safetensors');
    const configOf = (dir: string) => join(dir, 'config.json');

    const missing = await writeFolder(asInputs(hf).filter((t) => t.name !== 'h.1.mlp.c_fc.bias'), hfConfig);
    await assert.rejects(importHf(missing), { message: `${file(missing)}: missing tensor "transformer.h.1.mlp.c_fc.bias", which a gpt2 model with ${configOf(missing)} has` });

    const extra = await writeFolder([...asInputs(hf), { name: 'h.0.attn.rotary', dtype: 'F32', shape: [1], data: new Float32Array(1) }], hfConfig);
    await assert.rejects(importHf(extra), { message: `${file(extra)}: unexpected tensor "h.0.attn.rotary", not part of a gpt2 model with ${configOf(extra)}` });

    const moreLayers = await writeFolder(asInputs(hf), { ...hfConfig, n_layer: 1 });
    await assert.rejects(importHf(moreLayers), (err: Error) => err.message.startsWith(`${file(moreLayers)}: unexpected tensors "h.1.ln_1.weight", "h.1.ln_1.bias",`) && err.message.includes('and 7 more'));

    const badShape = asInputs(hf).map((t) => (t.name === 'h.1.mlp.c_fc.weight' ? { ...t, shape: [H, C] } : t));
    const shaped = await writeFolder(badShape, hfConfig);
    await assert.rejects(importHf(shaped), { message: `${file(shaped)}: tensor "h.1.mlp.c_fc.weight" has shape [32, 8], but ${configOf(shaped)} (n_embd = 8) implies [8, 32]` });

    const wider = await writeFolder(asInputs(hf), { ...hfConfig, vocab_size: 12 });
    await assert.rejects(importHf(wider), { message: `${file(wider)}: tensor "wte.weight" has shape [11, 8], but ${configOf(wider)} (vocab_size = 12) implies [12, 8]` });

    const untied = await writeFolder([...asInputs(hf), { name: 'lm_head.weight', dtype: 'F32', shape: [V, C], data: Float32Array.from({ length: V * C }, random) }], hfConfig);
    await assert.rejects(importHf(untied), { message: `${file(untied)}: lm_head.weight differs from transformer.wte.weight, but sieve's gpt2 family ties the LM head to the token embedding` });

    const twice = await writeFolder([...asInputs(hf), { name: 'transformer.wpe.weight', dtype: 'F32', shape: [T, C], data: hf.get('wpe.weight')!.data }], hfConfig);
    await assert.rejects(importHf(twice), { message: `${file(twice)}: tensors "wpe.weight" and "transformer.wpe.weight" both name "transformer.wpe.weight"` });

    const integers = await writeFolder(
      asInputs(hf).map((t) => (t.name === 'ln_f.bias' ? { name: t.name, dtype: 'I32' as const, shape: t.shape, data: new Int32Array(C) } : t)),
      hfConfig,
    );
    await assert.rejects(importHf(integers), { message: `${file(integers)}: tensor "ln_f.bias" has dtype I32, not a float type convertible to F32 (F32, F16, BF16, F64)` });
  });
});
