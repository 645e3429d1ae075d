// A Hugging Face LlamaForCausalLM checkpoint (written here: random weights, HF names and layouts,
// config.json) imported into the engine gives the logits LLaMA computes from those weights. The
// reference is HF's LlamaForCausalLM forward written out in float64 over the HF tensors — RMSNorm
// x·rsqrt(mean(x²) + eps)·w, RoPE by rotate_half with inv_freq = θ^(−2i/HS), causal softmax
// attention scaled by 1/√HS, silu(gate)·up, an untied head — so a wrong row order in q/k/v, a RoPE
// pairing other than (i, i + HS/2), a wrong θ or epsilon shows up as a mismatch. The second test
// proves the first would notice: q's rows in Meta's interleaved RoPE order are far off.
// Measured: max |Δ| = 1.3e-6 on logits up to 3.4 (float32 engine vs float64 reference); the
// tolerance leaves 15× for other BLAS kernels. Permuted q rows miss by 4.6.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { importHf } from '../../../kernels/hf';
import { Model } from '../../../kernels/index';
import { asInputs, type HfTensors, llamaConfig, type LlamaDims, llamaTensors, writeFolder } from './helpers';

const D: LlamaDims = { layers: 2, dim: 32, heads: 4, hidden: 64, vocab: 48, context: 16, eps: 1e-6, theta: 500 };
const HS = D.dim / D.heads;
const TOLERANCE = 2e-5;

/** LlamaForCausalLM in float64 over HF tensors: logits [T][V] of one sequence. */
function referenceLogits(w: HfTensors, tokens: readonly number[]): Float64Array[] {
  const get = (name: string) => w.get(name)!.data;
  const C = D.dim;
  const rmsNorm = (x: Float64Array, g: Float32Array) => {
    const r = 1 / Math.sqrt(x.reduce((a, v) => a + v * v, 0) / x.length + D.eps);
    return x.map((v, i) => v * r * g[i]);
  };
  // nn.Linear: y = W x with W stored [out, in].
  const linear = (x: Float64Array, W: Float32Array) =>
    Float64Array.from({ length: W.length / x.length }, (_, o) => x.reduce((a, xi, i) => a + W[o * x.length + i] * xi, 0));
  const invFreq = Array.from({ length: HS / 2 }, (_, i) => D.theta ** (-(2 * i) / HS));
  // q·cos + rotate_half(q)·sin, rotate_half(x) = [−x₂, x₁] per head.
  const rope = (x: Float64Array, position: number) => {
    const out = new Float64Array(x.length);
    for (let h = 0; h < D.heads; h++) {
      for (let i = 0; i < HS / 2; i++) {
        const a = x[h * HS + i];
        const b = x[h * HS + i + HS / 2];
        const cos = Math.cos(position * invFreq[i]);
        const sin = Math.sin(position * invFreq[i]);
        out[h * HS + i] = a * cos - b * sin;
        out[h * HS + i + HS / 2] = b * cos + a * sin;
      }
    }
    return out;
  };
  const silu = (v: number) => v / (1 + Math.exp(-v));

  const embedding = get('model.embed_tokens.weight');
  let xs = tokens.map((tok) => Float64Array.from(embedding.subarray(tok * C, (tok + 1) * C)));
  for (let l = 0; l < D.layers; l++) {
    const p = (n: string) => get(`model.layers.${l}.${n}`);
    const normed = xs.map((x) => rmsNorm(x, p('input_layernorm.weight')));
    const q = normed.map((x, t) => rope(linear(x, p('self_attn.q_proj.weight')), t));
    const k = normed.map((x, t) => rope(linear(x, p('self_attn.k_proj.weight')), t));
    const v = normed.map((x) => linear(x, p('self_attn.v_proj.weight')));
    xs = xs.map((x, t) => {
      const attended = new Float64Array(C);
      for (let h = 0; h < D.heads; h++) {
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < HS; i++) dot += q[t][h * HS + i] * k[s][h * HS + i];
          return dot / Math.sqrt(HS);
        });
        const max = Math.max(...scores);
        const e = scores.map((sc) => Math.exp(sc - max));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < HS; i++) attended[h * HS + i] += (e[s] / z) * v[s][h * HS + i];
      }
      const r = x.map((xi, i) => xi + linear(attended, p('self_attn.o_proj.weight'))[i]);
      const n2 = rmsNorm(r, p('post_attention_layernorm.weight'));
      const gate = linear(n2, p('mlp.gate_proj.weight'));
      const up = linear(n2, p('mlp.up_proj.weight'));
      const down = linear(gate.map((g, i) => silu(g) * up[i]), p('mlp.down_proj.weight'));
      return r.map((ri, i) => ri + down[i]);
    });
  }
  return xs.map((x) => linear(rmsNorm(x, get('model.norm.weight')), get('lm_head.weight')));
}

async function worstDifference(hf: HfTensors, tensors: Map<string, Float32Array>, config: Parameters<typeof Model.create>[0]): Promise<{ worst: number; largest: number }> {
  const model = Model.create(config, { threads: 1 });
  try {
    for (const [name, data] of tensors) model.writeTensor(name, data);
    const B = 2;
    const T = D.context;
    const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 5) % D.vocab);
    const logits = await model.logits(tokens, B, T);
    let worst = 0;
    let largest = 0;
    for (let b = 0; b < B; b++) {
      const ref = referenceLogits(hf, [...tokens.subarray(b * T, (b + 1) * T)]);
      for (let t = 0; t < T; t++) {
        for (let v = 0; v < D.vocab; v++) {
          worst = Math.max(worst, Math.abs(logits[(b * T + t) * D.vocab + v] - ref[t][v]));
          largest = Math.max(largest, Math.abs(ref[t][v]));
        }
      }
    }
    return { worst, largest };
  } finally {
    model.dispose();
  }
}

const hf = llamaTensors(D, 11);

test('an imported HF LLaMA checkpoint gives the logits LlamaForCausalLM computes from the same weights', async () => {
  const imported = await importHf(await writeFolder(asInputs(hf), llamaConfig(D)));
  assert.deepEqual(imported.config, { family: 'llama', layers: 2, dim: 32, heads: 4, context: 16, vocab: 48, mlpHidden: 64, normEps: 1e-6, ropeTheta: 500, adapters: null });
  const { worst, largest } = await worstDifference(hf, imported.tensors, imported.config);
  assert.ok(largest > 1, `logits of a useful size (largest ${largest})`);
  assert.ok(worst < TOLERANCE, `largest logit difference ${worst}`);
});

test("q's rows in another RoPE order (Meta's interleaved pairs) miss by far more than the tolerance", async () => {
  const imported = await importHf(await writeFolder(asInputs(hf), llamaConfig(D)));
  for (let l = 0; l < D.layers; l++) {
    const qkv = imported.tensors.get(`blocks.${l}.attn.qkv.weight`)!;
    const q = qkv.slice(0, D.dim * D.dim);
    // Row h·HS + 2i + s of the permuted q is row h·HS + s·HS/2 + i of HF's (rotate_half) q.
    for (let h = 0; h < D.heads; h++) {
      for (let i = 0; i < HS / 2; i++) {
        for (let s = 0; s < 2; s++) {
          const from = h * HS + s * (HS / 2) + i;
          const to = h * HS + 2 * i + s;
          qkv.set(q.subarray(from * D.dim, (from + 1) * D.dim), to * D.dim);
        }
      }
    }
  }
  const { worst } = await worstDifference(hf, imported.tensors, imported.config);
  assert.ok(worst > 100 * TOLERANCE, `permuted q rows still match within ${worst}`);
});
