// A Hugging Face GPT-2 checkpoint (written here in HF layout: Conv1D [in, out] weights, HF names,
// config.json) imported into the engine gives the logits that GPT-2 itself computes from those
// weights. The reference is GPT-2's forward written out in float64 directly over the HF tensors,
// so a wrong transpose, a swapped q/k/v block or a wrong epsilon shows up as a mismatch.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { importHf } from '../../../kernels/hf';
import { Model } from '../../../kernels/index';
import { writeSafetensors } from '../../../kernels/safetensors';
import { TOKENIZER_TEXT } from './helpers';

const L = 2;
const C = 16;
const HEADS = 4;
const H = 4 * C;
const V = 23;
const CTX = 12;
const EPS = 1e-5;

let seed = 7;
function uniform(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 2 ** 32 - 0.5;
}

type Hf = Map<string, { shape: number[]; data: Float32Array }>;

function hfWeights(): Hf {
  const m: Hf = new Map();
  // Norm gains near 1 and small matrices keep every layer in a regime where errors would show.
  const add = (name: string, shape: number[], scale: number, offset = 0) =>
    m.set(name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => offset + scale * uniform()) });
  add('wte.weight', [V, C], 0.8);
  add('wpe.weight', [CTX, C], 0.4);
  for (let l = 0; l < L; l++) {
    add(`h.${l}.ln_1.weight`, [C], 0.4, 1);
    add(`h.${l}.ln_1.bias`, [C], 0.2);
    add(`h.${l}.attn.c_attn.weight`, [C, 3 * C], 0.6);
    add(`h.${l}.attn.c_attn.bias`, [3 * C], 0.2);
    add(`h.${l}.attn.c_proj.weight`, [C, C], 0.4);
    add(`h.${l}.attn.c_proj.bias`, [C], 0.2);
    add(`h.${l}.ln_2.weight`, [C], 0.4, 1);
    add(`h.${l}.ln_2.bias`, [C], 0.2);
    add(`h.${l}.mlp.c_fc.weight`, [C, H], 0.4);
    add(`h.${l}.mlp.c_fc.bias`, [H], 0.2);
    add(`h.${l}.mlp.c_proj.weight`, [H, C], 0.3);
    add(`h.${l}.mlp.c_proj.bias`, [C], 0.2);
  }
  add('ln_f.weight', [C], 0.4, 1);
  add('ln_f.bias', [C], 0.2);
  return m;
}

/** GPT-2 (HF semantics) in float64 over HF tensors: logits [T, V] of one sequence. */
function referenceLogits(w: Hf, tokens: readonly number[]): Float64Array[] {
  const get = (name: string) => w.get(name)!.data;
  const layerNorm = (x: Float64Array, g: Float32Array, b: Float32Array) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
    const r = 1 / Math.sqrt(variance + EPS);
    return x.map((v, i) => (v - mean) * r * g[i] + b[i]);
  };
  // Conv1D: y = x W + b with W stored [in, out].
  const conv1d = (x: Float64Array, W: Float32Array, b: Float32Array) => {
    const out = Float64Array.from(b);
    for (let i = 0; i < x.length; i++) for (let j = 0; j < out.length; j++) out[j] += x[i] * W[i * out.length + j];
    return out;
  };
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

  const wte = get('wte.weight');
  const wpe = get('wpe.weight');
  let xs = tokens.map((tok, t) => Float64Array.from({ length: C }, (_, c) => wte[tok * C + c] + wpe[t * C + c]));
  const d = C / HEADS;
  for (let l = 0; l < L; l++) {
    const p = (n: string) => get(`h.${l}.${n}`);
    const qkv = xs.map((x) => conv1d(layerNorm(x, p('ln_1.weight'), p('ln_1.bias')), p('attn.c_attn.weight'), p('attn.c_attn.bias')));
    const attended = xs.map((_, t) => {
      const y = new Float64Array(C);
      for (let h = 0; h < HEADS; h++) {
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < d; i++) dot += qkv[t][h * d + i] * qkv[s][C + h * d + i];
          return dot / Math.sqrt(d);
        });
        const max = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - max));
        const z = e.reduce((a, v) => a + v, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < d; i++) y[h * d + i] += (e[s] / z) * qkv[s][2 * C + h * d + i];
      }
      return y;
    });
    xs = xs.map((x, t) => {
      const a = conv1d(attended[t], p('attn.c_proj.weight'), p('attn.c_proj.bias'));
      const r = x.map((v, i) => v + a[i]);
      const hidden = conv1d(layerNorm(r, p('ln_2.weight'), p('ln_2.bias')), p('mlp.c_fc.weight'), p('mlp.c_fc.bias')).map(gelu);
      const m = conv1d(hidden, p('mlp.c_proj.weight'), p('mlp.c_proj.bias'));
      return r.map((v, i) => v + m[i]);
    });
  }
  return xs.map((x) => {
    const f = layerNorm(x, get('ln_f.weight'), get('ln_f.bias'));
    return Float64Array.from({ length: V }, (_, v) => f.reduce((a, fi, c) => a + fi * wte[v * C + c], 0));
  });
}

test('an imported HF GPT-2 checkpoint gives the logits GPT-2 computes from the same weights', async () => {
  const hf = hfWeights();
  const dir = mkdtempSync(join(tmpdir(), 'sieve-hf-logits-'));
  // As GPT2LMHeadModel saves it: under `transformer.`, with the tied head and the mask buffers.
  const tensors = [...hf].map(([name, t]) => ({ name: `transformer.${name}`, dtype: 'F32' as const, shape: t.shape, data: t.data }));
  tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [V, C], data: hf.get('wte.weight')!.data });
  for (let l = 0; l < L; l++) tensors.push({ name: `transformer.h.${l}.attn.bias`, dtype: 'F32', shape: [1, 1, CTX, CTX], data: new Float32Array(CTX * CTX) });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const config = { model_type: 'gpt2', n_head: HEADS, n_embd: C, n_layer: L, n_positions: CTX, vocab_size: V, layer_norm_epsilon: EPS, activation_function: 'gelu_new' };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeFileSync(join(dir, 'tokenizer.json'), TOKENIZER_TEXT);

  const imported = await importHf(dir);
  const model = Model.create(imported.config, { threads: 1 });
  try {
    assert.deepEqual([...imported.tensors.keys()].sort(), model.tensors.map((t) => t.name).sort(), 'the import fills every engine tensor, nothing else');
    for (const [name, data] of imported.tensors) model.writeTensor(name, data);

    const B = 2;
    const T = CTX;
    const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 3) % V);
    const logits = await model.logits(tokens, B, T);
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const ref = referenceLogits(hf, [...tokens.subarray(b * T, (b + 1) * T)]);
      for (let t = 0; t < T; t++) {
        for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(logits[(b * T + t) * V + v] - ref[t][v]));
      }
    }
    assert.ok(worst < 2e-4, `largest logit difference ${worst}`);
  } finally {
    model.dispose();
  }
});
