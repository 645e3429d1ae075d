// exportHf: a model taken through the engine (import → Model → checkpoint state) and written back in
// Hugging Face layout imports to exactly the same bits, for both families, dense and with the
// engine's 2:4 masks applied (param ⊙ mask); the files carry GPT2LMHeadModel / LlamaForCausalLM
// names and a config.json that reads back to the same config; and a model with adapters or an
// output path that cannot hold files is refused with one clear error.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import type { CheckpointState } from '../../../kernels/checkpoint';
import { exportHf, type HfImport, importHf, readHfConfig } from '../../../kernels/hf';
import { Model } from '../../../kernels/index';
import { readSafetensorsHeader } from '../../../kernels/safetensors';
import { asInputs, freshDir, type HfTensors, llamaConfig, type LlamaDims, llamaTensors, TOKENIZER_TEXT, uniform, writeFolder } from './helpers';

const LLAMA: LlamaDims = { layers: 2, dim: 16, heads: 2, hidden: 32, vocab: 20, context: 8, eps: 1e-5, theta: 10000 };
const GPT2 = { layers: 2, dim: 16, heads: 2, hidden: 64, vocab: 24, context: 8 };

function gpt2Tensors(): HfTensors {
  const random = uniform(5);
  const m: HfTensors = new Map();
  const add = (name: string, shape: number[]) => m.set(name, { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, random) });
  const { dim: C, hidden: H } = GPT2;
  add('wte.weight', [GPT2.vocab, C]);
  add('wpe.weight', [GPT2.context, C]);
  for (let l = 0; l < GPT2.layers; l++) {
    for (const [name, shape] of [
      ['ln_1.weight', [C]],
      ['ln_1.bias', [C]],
      ['attn.c_attn.weight', [C, 3 * C]],
      ['attn.c_attn.bias', [3 * C]],
      ['attn.c_proj.weight', [C, C]],
      ['attn.c_proj.bias', [C]],
      ['ln_2.weight', [C]],
      ['ln_2.bias', [C]],
      ['mlp.c_fc.weight', [C, H]],
      ['mlp.c_fc.bias', [H]],
      ['mlp.c_proj.weight', [H, C]],
      ['mlp.c_proj.bias', [C]],
    ] as const) {
      add(`h.${l}.${name}`, [...shape]);
    }
  }
  add('ln_f.weight', [C]);
  add('ln_f.bias', [C]);
  return m;
}

const gpt2Config = { model_type: 'gpt2', n_layer: GPT2.layers, n_embd: GPT2.dim, n_head: GPT2.heads, n_positions: GPT2.context, vocab_size: GPT2.vocab, n_inner: null, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new' };

const FOLDERS = {
  gpt2: () => writeFolder(asInputs(gpt2Tensors()), gpt2Config),
  llama: () => writeFolder(asInputs(llamaTensors(LLAMA, 9)), llamaConfig(LLAMA)),
};

/** The imported model as a stage would hold it: the engine's table and flat buffer, optionally with magnitude 2:4 masks on every linear weight. */
async function checkpointOf(imported: HfImport, sparse: boolean): Promise<CheckpointState> {
  const model = Model.create(imported.config, { threads: 1 });
  try {
    for (const [name, data] of imported.tensors) model.writeTensor(name, data);
    if (sparse) await model.updateMasks(model.tensors.filter((t) => t.kind === 'linear').map((t) => t.name), 'magnitude');
    return {
      config: { ...imported.config },
      tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })),
      params: model.read('param'),
      ...(sparse ? { masks: model.read('mask') } : {}),
      step: 0,
      rng: null,
      data: null,
    };
  } finally {
    model.dispose();
  }
}

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('exportHf', () => {
  for (const family of ['gpt2', 'llama'] as const) {
    for (const sparse of [false, true]) {
      it(`${family}, ${sparse ? 'with 2:4 masks' : 'dense'}: importHf(exportHf(model)) gives back every tensor bit for bit`, async () => {
        const source = await FOLDERS[family]();
        const imported = await importHf(source);
        const state = await checkpointOf(imported, sparse);
        const out = join(freshDir('out'), 'nested', 'export');
        const { files } = await exportHf(state, out, { tokenizer: join(source, 'tokenizer.json') });
        assert.deepEqual(files, ['model.safetensors', 'config.json', 'tokenizer.json'].map((f) => join(out, f)));

        const again = await importHf(out);
        assert.deepEqual(again.config, imported.config);
        assert.equal(readFileSync(join(out, 'tokenizer.json'), 'utf8'), TOKENIZER_TEXT);
        let zeros = 0;
        for (const t of state.tensors) {
          const params = state.params.subarray(t.offset, t.offset + t.size);
          const mask = state.masks?.subarray(t.offset, t.offset + t.size);
          const effective = mask ? params.map((w, i) => w * mask[i]) : params;
          assert.ok(bits(again.tensors.get(t.name)!).equals(bits(effective)), t.name);
          if (mask && t.shape.length === 2 && !t.name.startsWith('tok_emb') && !t.name.startsWith('lm_head') && !t.name.startsWith('pos_emb')) {
            // Every group of 4 along a row keeps at most 2 (the engine's masks).
            const w = again.tensors.get(t.name)!;
            for (let g = 0; g < w.length; g += 4) assert.ok(w.subarray(g, g + 4).filter((x) => x === 0).length >= 2, `${t.name} group ${g / 4}`);
            zeros += w.filter((x) => x === 0).length;
          }
        }
        if (sparse) assert.ok(zeros > 0);
      });
    }
  }

  it('writes GPT2LMHeadModel names (no lm_head: tied) and LlamaForCausalLM names, with a config.json that reads back', async () => {
    const gpt2 = await importHf(await FOLDERS.gpt2());
    const gpt2Out = freshDir('out');
    await exportHf(await checkpointOf(gpt2, false), gpt2Out);
    const header = await readSafetensorsHeader(join(gpt2Out, 'model.safetensors'));
    const gpt2Names = header.tensors.map((t) => t.name);
    assert.deepEqual(gpt2Names.slice(0, 4), ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.ln_1.weight', 'transformer.h.0.ln_1.bias']);
    assert.ok(gpt2Names.every((n) => n.startsWith('transformer.')));
    assert.equal(gpt2Names.length, 2 + 12 * GPT2.layers + 2);
    assert.deepEqual(header.metadata, { format: 'pt' });
    assert.deepEqual(header.tensors.find((t) => t.name === 'transformer.h.1.mlp.c_fc.weight')?.shape, [GPT2.dim, GPT2.hidden], 'Conv1D [in, out]');
    assert.deepEqual(JSON.parse(readFileSync(join(gpt2Out, 'config.json'), 'utf8')), {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_layer: 2,
      n_embd: 16,
      n_head: 2,
      n_positions: 8,
      n_ctx: 8,
      vocab_size: 24,
      n_inner: 64,
      layer_norm_epsilon: 1e-5,
      activation_function: 'gelu_new',
      tie_word_embeddings: true,
      torch_dtype: 'float32',
    });

    // A tied llama checkpoint comes back untied: the engine's head is a tensor of its own.
    const tiedFolder = await writeFolder(asInputs(llamaTensors(LLAMA, 9, true)), llamaConfig(LLAMA, { tie_word_embeddings: true }));
    const tied = await importHf(tiedFolder);
    const llamaOut = freshDir('out');
    await exportHf(await checkpointOf(tied, false), llamaOut, { tokenizer: join(tiedFolder, 'tokenizer.json') });
    const llamaNames = (await readSafetensorsHeader(join(llamaOut, 'model.safetensors'))).tensors.map((t) => t.name);
    assert.deepEqual(llamaNames.slice(0, 5), [
      'model.embed_tokens.weight',
      'model.layers.0.input_layernorm.weight',
      'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight',
    ]);
    assert.deepEqual(llamaNames.slice(-2), ['model.norm.weight', 'lm_head.weight']);
    assert.equal((await readHfConfig(llamaOut)).tieEmbeddings, false);
    const again = await importHf(llamaOut);
    assert.deepEqual(again.config, tied.config);
    assert.deepEqual(again.tensors, tied.tensors);
  });

  it('refuses SLoRB branches and unfolded CAST scales, saying why; folded scales (all 1) are left out', async () => {
    const source = await FOLDERS.llama();
    const imported = await importHf(source);
    const withAdapters = async (adapters: NonNullable<HfImport['config']['adapters']>, scale: number) => {
      const model = Model.create({ ...imported.config, adapters }, { threads: 1 });
      try {
        for (const [name, data] of imported.tensors) model.writeTensor(name, data);
        for (const t of model.tensors.filter((t) => t.name.endsWith('.scale'))) model.writeTensor(t.name, new Float32Array(t.size).fill(scale));
        return { ...(await checkpointOf(imported, false)), config: { ...model.config }, tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })), params: model.read('param') };
      } finally {
        model.dispose();
      }
    };
    const message = (what: string) => `cannot export this llama model in Hugging Face layout: its adapters, ${what}, have no place among LlamaForCausalLM's tensors; the ONNX export keeps them`;
    const both = await withAdapters({ scope: 'ffn', slorbK: 4, scaleSegments: 2 }, 0.5);
    await assert.rejects(exportHf(both, freshDir('out')), { message: message('SLoRB branches (slorbK = 4) and CAST weight scales not folded into the weights (2 segments)') });
    const unfolded = await withAdapters({ scope: 'ffn', slorbK: null, scaleSegments: 2 }, 0.5);
    await assert.rejects(exportHf(unfolded, freshDir('out')), { message: message('CAST weight scales not folded into the weights (2 segments)') });

    const folded = await withAdapters({ scope: 'ffn', slorbK: null, scaleSegments: 2 }, 1);
    const out = freshDir('out');
    await exportHf(folded, out, { tokenizer: join(source, 'tokenizer.json') });
    assert.deepEqual((await importHf(out)).tensors, imported.tensors, 'scales of 1 change nothing, so they are left out');
  });

  it('refuses an output path that is not a writable directory, and a tokenizer it cannot read, before writing anything', async () => {
    const state = await checkpointOf(await importHf(await FOLDERS.gpt2()), false);
    const file = join(freshDir('out'), 'a-file');
    writeFileSync(file, 'not a directory');
    await assert.rejects(exportHf(state, file), { message: `cannot export to ${file}: it exists and is not a directory` });
    const below = join(file, 'model');
    await assert.rejects(exportHf(state, below), { message: `cannot export to ${below}: a parent of it is not a directory` });

    const out = freshDir('out');
    const missing = join(out, 'absent-tokenizer.json');
    await assert.rejects(exportHf(state, out, { tokenizer: missing }), { message: `cannot read the tokenizer ${missing} (ENOENT)` });
    await assert.rejects(readHfConfig(out), /config\.json does not exist/);
  });
});
