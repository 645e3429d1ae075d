// Hugging Face LLaMA import beyond the logits (llama-logits.test.ts): q, k, v stacked into
// attn.qkv, a tied head, sharded checkpoints (index + shards give the single file's bits), F16 and
// BF16 storage, and one clear error for each way a folder can be wrong.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { importHf } from '../../../kernels/hf';
import { type TensorInput, writeSafetensors } from '../../../kernels/safetensors';
import { asInputs, freshDir, llamaConfig, type LlamaDims, llamaTensors, TOKENIZER_TEXT, writeFolder } from './helpers';

const D: LlamaDims = { layers: 2, dim: 16, heads: 2, hidden: 32, vocab: 20, context: 8, eps: 1e-5, theta: 10000 };
const C = D.dim;
const hf = llamaTensors(D, 3);

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** A folder with config.json, tokenizer.json and `shards` (file name → tensors) listed in an index. */
async function writeSharded(shards: Record<string, TensorInput[]>, weightMap?: Record<string, string>): Promise<string> {
  const dir = freshDir('sharded');
  for (const [file, tensors] of Object.entries(shards)) await writeSafetensors(join(dir, file), tensors, { format: 'pt' });
  const map = weightMap ?? Object.fromEntries(Object.entries(shards).flatMap(([file, tensors]) => tensors.map((t) => [t.name, file])));
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: map }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(llamaConfig(D)));
  writeFileSync(join(dir, 'tokenizer.json'), TOKENIZER_TEXT);
  return dir;
}

const inputs = asInputs(hf);
const half = Math.floor(inputs.length / 2);
const SHARD_1 = 'model-00001-of-00002.safetensors';
const SHARD_2 = 'model-00002-of-00002.safetensors';

describe('importHf (llama)', () => {
  it('stacks q, k, v into attn.qkv and maps every other tensor as it is', async () => {
    const imported = await importHf(await writeFolder(inputs, llamaConfig(D)));
    const qkv = imported.tensors.get('blocks.1.attn.qkv.weight')!;
    const p = 'model.layers.1.self_attn.';
    assert.deepEqual(qkv, Float32Array.from([...hf.get(`${p}q_proj.weight`)!.data, ...hf.get(`${p}k_proj.weight`)!.data, ...hf.get(`${p}v_proj.weight`)!.data]));
    const direct: [string, string][] = [
      ['model.embed_tokens.weight', 'tok_emb.weight'],
      ['model.layers.0.input_layernorm.weight', 'blocks.0.norm1.weight'],
      ['model.layers.0.self_attn.o_proj.weight', 'blocks.0.attn.out.weight'],
      ['model.layers.0.post_attention_layernorm.weight', 'blocks.0.norm2.weight'],
      ['model.layers.0.mlp.gate_proj.weight', 'blocks.0.mlp.gate.weight'],
      ['model.layers.0.mlp.up_proj.weight', 'blocks.0.mlp.up.weight'],
      ['model.layers.0.mlp.down_proj.weight', 'blocks.0.mlp.down.weight'],
      ['model.norm.weight', 'norm_f.weight'],
      ['lm_head.weight', 'lm_head.weight'],
    ];
    for (const [hfName, ours] of direct) assert.deepEqual(imported.tensors.get(ours), hf.get(hfName)!.data, ours);
    assert.equal(imported.tensors.size, 1 + 7 * D.layers + 2);
  });

  it('copies the embedding into the head when tie_word_embeddings is set, and ignores RoPE buffers', async () => {
    const tied = asInputs(llamaTensors(D, 3, true));
    tied.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [C / D.heads / 2], data: new Float32Array(C / D.heads / 2) });
    const imported = await importHf(await writeFolder(tied, llamaConfig(D, { tie_word_embeddings: true })));
    const head = imported.tensors.get('lm_head.weight')!;
    assert.deepEqual(head, hf.get('model.embed_tokens.weight')!.data);
    assert.notEqual(head, imported.tensors.get('tok_emb.weight'), 'a copy, not the same array');

    const untiedHead = [...tied, { name: 'lm_head.weight', dtype: 'F32' as const, shape: [D.vocab, C], data: hf.get('lm_head.weight')!.data }];
    const dir = await writeFolder(untiedHead, llamaConfig(D, { tie_word_embeddings: true }));
    await assert.rejects(importHf(dir), {
      message: `${join(dir, 'model.safetensors')}: lm_head.weight differs from model.embed_tokens.weight, but config.json says tie_word_embeddings = true`,
    });
  });

  it('reads a sharded checkpoint to the same bits as the single file, and lists every file read', async () => {
    const single = await importHf(await writeFolder(inputs, llamaConfig(D)));
    const dir = await writeSharded({ [SHARD_1]: inputs.slice(0, half), [SHARD_2]: inputs.slice(half) });
    const sharded = await importHf(dir);
    assert.deepEqual(sharded.config, single.config);
    assert.deepEqual([...sharded.tensors.keys()], [...single.tensors.keys()]);
    for (const [name, data] of single.tensors) assert.ok(bits(sharded.tensors.get(name)!).equals(bits(data)), name);
    const files = ['config.json', 'model.safetensors.index.json', SHARD_1, SHARD_2, 'tokenizer.json'].map((f) => join(dir, f));
    assert.deepEqual(
      sharded.sources,
      files.map((path) => ({ path, sha256: sha256(path), bytes: readFileSync(path).length })),
    );
  });

  it('widens F16 and BF16 weights exactly', async () => {
    // BF16 is the top half of a float32: truncating gives known values. F16 1 + m/1024 is exact.
    const widened = new Map<string, Float32Array>();
    const mixed = inputs.map((t): TensorInput => {
      const data = t.data as Float32Array;
      if (t.shape.length === 2) {
        const top = Uint16Array.from(new Uint32Array(data.slice().buffer), (b) => b >>> 16);
        widened.set(t.name, new Float32Array(Uint32Array.from(top, (h) => h << 16).buffer));
        return { ...t, dtype: 'BF16', data: top };
      }
      const halves = Uint16Array.from(data, (_, i) => 0x3c00 + ((i * 37) % 1024));
      widened.set(t.name, Float32Array.from(halves, (h) => 1 + (h - 0x3c00) / 1024));
      return { ...t, dtype: 'F16', data: halves };
    });
    const imported = await importHf(await writeFolder(mixed, llamaConfig(D)));
    assert.deepEqual(imported.tensors.get('norm_f.weight'), widened.get('model.norm.weight'));
    assert.deepEqual(imported.tensors.get('blocks.0.mlp.down.weight'), widened.get('model.layers.0.mlp.down_proj.weight'));
    const p = 'model.layers.0.self_attn.';
    assert.deepEqual(imported.tensors.get('blocks.0.attn.qkv.weight'), Float32Array.from([...widened.get(`${p}q_proj.weight`)!, ...widened.get(`${p}k_proj.weight`)!, ...widened.get(`${p}v_proj.weight`)!]));
  });

  it('names what is wrong with a folder', async () => {
    const config = (dir: string) => join(dir, 'config.json');
    const index = (dir: string) => join(dir, 'model.safetensors.index.json');

    const narrower = await writeFolder(inputs, llamaConfig(D, { intermediate_size: 40 }));
    await assert.rejects(importHf(narrower), {
      message: `${join(narrower, 'model.safetensors')}: tensor "model.layers.0.mlp.gate_proj.weight" has shape [32, 16], but ${config(narrower)} (intermediate_size = 40) implies [40, 16]`,
    });
    const grouped = await writeFolder(inputs, llamaConfig(D, { num_key_value_heads: 1 }));
    await assert.rejects(importHf(grouped), {
      message: `${config(grouped)}: "num_key_value_heads" is 1 but "num_attention_heads" is 2: the engine has no grouped-query attention, so they must be equal`,
    });
    const headless = await writeFolder(inputs.filter((t) => t.name !== 'lm_head.weight'), llamaConfig(D));
    await assert.rejects(importHf(headless), { message: `${join(headless, 'model.safetensors')}: missing tensor "lm_head.weight", which a llama model with ${config(headless)} has` });
    const noWeights = await writeFolder(null, llamaConfig(D));
    await assert.rejects(importHf(noWeights), { message: `${noWeights} holds neither model.safetensors nor model.safetensors.index.json` });

    const shards = { [SHARD_1]: inputs.slice(0, half), [SHARD_2]: inputs.slice(half) };
    const listed = Object.fromEntries(inputs.map((t, i) => [t.name, i < half ? SHARD_1 : SHARD_2]));

    const missingShard = await writeSharded({ [SHARD_1]: shards[SHARD_1] }, listed);
    await assert.rejects(importHf(missingShard), { message: `${index(missingShard)} names shard "${SHARD_2}", but ${join(missingShard, SHARD_2)} does not exist` });

    const twice = await writeSharded({ [SHARD_1]: shards[SHARD_1], [SHARD_2]: [...shards[SHARD_2], inputs[0]] }, listed);
    await assert.rejects(importHf(twice), { message: `${join(twice, SHARD_2)} holds tensor "${inputs[0].name}", which ${index(twice)} places in "${SHARD_1}"` });

    const absent = await writeSharded({ [SHARD_1]: shards[SHARD_1].slice(1), [SHARD_2]: shards[SHARD_2] }, listed);
    await assert.rejects(importHf(absent), { message: `${index(absent)} places tensor "${inputs[0].name}" in "${SHARD_1}", but ${join(absent, SHARD_1)} does not hold it` });

    const { [inputs[1].name]: _unlisted, ...allButOne } = listed;
    const unlisted = await writeSharded(shards, allButOne);
    await assert.rejects(importHf(unlisted), { message: `${join(unlisted, SHARD_1)} holds tensor "${inputs[1].name}", which ${index(unlisted)} does not list` });

    const outside = await writeSharded(shards, { ...listed, [inputs[1].name]: '../elsewhere.safetensors' });
    await assert.rejects(importHf(outside), {
      message: `${index(outside)}: "weight_map" places tensor "${inputs[1].name}" in "../elsewhere.safetensors", which is not a file name in the folder`,
    });
  });
});
