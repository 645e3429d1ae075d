// Checkpoints: bit-exact round trips (NaN payloads, −0, subnormals), the on-disk names a
// plain safetensors reader sees, masks stored only where not all ones, sampler resume
// through the file, and refusals with a HINT for foreign, newer or mismatched files.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { BatchSampler } from '../../activities/data/sampler';
import { type CheckpointState, loadCheckpoint, readCheckpointInfo, saveCheckpoint } from '../../kernels/checkpoint';
import { readSafetensors, writeSafetensors } from '../../kernels/safetensors';

const dir = mkdtempSync(join(tmpdir(), 'sieve-checkpoint-'));
const config = { family: 'gpt2' as const, layers: 1, dim: 4, heads: 2, context: 8, vocab: 6, mlpHidden: 16, normEps: 1e-5, ropeTheta: null, adapters: null };

// A toy table with a 4-float gap of padding between the first two tensors.
const table = [
  { name: 'tok_emb.weight', offset: 0, size: 24, shape: [6, 4] },
  { name: 'blocks.0.mlp.fc.weight', offset: 28, size: 64, shape: [16, 4] },
  { name: 'blocks.0.mlp.fc.bias', offset: 92, size: 16, shape: [16] },
];
const PARAMS = 108;

/** Floats with awkward bit patterns: quiet and signalling NaNs with payloads, ±0, subnormals, ±inf. */
function awkward(n: number, salt: number): Float32Array {
  const bits = new Uint32Array(n);
  const specials = [0x7fc00001, 0xffbadbad, 0x7f800001, 0x80000000, 0x00000000, 0x00000001, 0x807fffff, 0x7f800000, 0xff800000];
  for (let i = 0; i < n; i++) bits[i] = i < specials.length ? specials[(i + salt) % specials.length] : (Math.imul(i + 1, 2654435761) + salt) >>> 0;
  return new Float32Array(bits.buffer);
}

const bitsOf = (f: Float32Array) => [...new Uint32Array(f.buffer, f.byteOffset, f.length)];

function state(overrides: Partial<CheckpointState> = {}): CheckpointState {
  const masks = new Float32Array(PARAMS).fill(1);
  for (let i = 28; i < 92; i += 2) masks[i] = 0; // fc.weight sparsified; the others all ones
  return {
    config,
    tensors: table,
    params: awkward(PARAMS, 0),
    adamM: awkward(PARAMS, 3),
    adamV: awkward(PARAMS, 5),
    masks,
    step: 1234,
    rng: { algorithm: 'xoshiro128**', s: [1, 2, 3, 4] },
    data: { batches: 1234, stream: 'train' },
    extra: { stage: 'sste', note: 'ok' },
    ...overrides,
  };
}

/** The state as it comes back: padding between tensors is not stored and returns as zeros. */
function withZeroPadding(f: Float32Array): Float32Array {
  const out = f.slice();
  out.fill(0, 24, 28);
  return out;
}

describe('saveCheckpoint / loadCheckpoint', () => {
  it('round-trips every bit of params, moments and masks, and the metadata', async () => {
    const path = join(dir, 'full.safetensors');
    const original = state();
    const written = await saveCheckpoint(path, original);
    assert.match(written.sha256, /^[0-9a-f]{64}$/);
    const loaded = await loadCheckpoint(path, { config, tensors: table });
    assert.deepEqual(bitsOf(loaded.params), bitsOf(withZeroPadding(original.params)));
    assert.deepEqual(bitsOf(loaded.adamM!), bitsOf(withZeroPadding(original.adamM!)));
    assert.deepEqual(bitsOf(loaded.adamV!), bitsOf(withZeroPadding(original.adamV!)));
    const expectedMasks = original.masks!.slice();
    expectedMasks.fill(1, 24, 28);
    assert.deepEqual(bitsOf(loaded.masks!), bitsOf(expectedMasks));
    assert.deepEqual(
      { config: loaded.config, tensors: loaded.tensors, step: loaded.step, rng: loaded.rng, data: loaded.data, extra: loaded.extra },
      { config, tensors: table, step: 1234, rng: original.rng, data: original.data, extra: original.extra },
    );
  });

  it('is a plain safetensors model under our tensor names', async () => {
    const path = join(dir, 'names.safetensors');
    await saveCheckpoint(path, state());
    const file = await readSafetensors(path);
    assert.deepEqual(file.tensors.map((t) => t.name), [
      'tok_emb.weight', 'blocks.0.mlp.fc.weight', 'blocks.0.mlp.fc.bias',
      'optim.m.tok_emb.weight', 'optim.m.blocks.0.mlp.fc.weight', 'optim.m.blocks.0.mlp.fc.bias',
      'optim.v.tok_emb.weight', 'optim.v.blocks.0.mlp.fc.weight', 'optim.v.blocks.0.mlp.fc.bias',
      'mask.blocks.0.mlp.fc.weight', // the only mask that is not all ones
    ]);
    assert.ok(file.tensors.every((t) => t.dtype === 'F32'));
    assert.deepEqual(file.byName.get('blocks.0.mlp.fc.weight')!.shape, [16, 4]);
    assert.deepEqual(Object.keys(file.metadata).sort(), [
      'config', 'contents', 'data', 'extra.note', 'extra.stage', 'format', 'paramCount', 'rng', 'step', 'tensors', 'version',
    ]);
    assert.equal(file.metadata.format, 'sieve-checkpoint');
    assert.equal(file.metadata.version, '1');
    assert.deepEqual(JSON.parse(file.metadata.config), config);
    assert.equal(file.metadata.contents, 'params,adamM,adamV,masks');
  });

  it('keeps absent buffers absent and all-ones masks implicit', async () => {
    const bare = join(dir, 'bare.safetensors');
    await saveCheckpoint(bare, state({ adamM: undefined, adamV: undefined, masks: undefined, extra: undefined }));
    const loaded = await loadCheckpoint(bare);
    assert.equal(loaded.adamM, undefined);
    assert.equal(loaded.masks, undefined);
    assert.equal(loaded.extra, undefined);

    const dense = join(dir, 'dense-masks.safetensors');
    await saveCheckpoint(dense, state({ masks: new Float32Array(PARAMS).fill(1) }));
    assert.ok((await readSafetensors(dense)).tensors.every((t) => !t.name.startsWith('mask.')));
    assert.ok((await loadCheckpoint(dense)).masks!.every((v) => v === 1));
  });

  it('preserves config fields it does not know', async () => {
    const path = join(dir, 'config.safetensors');
    await saveCheckpoint(path, state({ config: { ...config, tiedHead: true } }));
    assert.equal((await loadCheckpoint(path)).config.tiedHead, true);
  });

  it('records the adapters; a checkpoint written before they existed reads as adapters: null', async () => {
    const path = join(dir, 'adapters.safetensors');
    const adapters = { scope: 'ffn' as const, slorbK: 4, scaleSegments: null };
    await saveCheckpoint(path, state({ config: { ...config, adapters } }));
    assert.deepEqual((await loadCheckpoint(path, { config: { ...config, adapters } })).config.adapters, adapters);
    await assert.rejects(loadCheckpoint(path, { config }), /was saved for a model with adapters = \{"scope":"ffn","slorbK":4,"scaleSegments":null\}, this run's model has adapters = null/);
    const old = join(dir, 'before-adapters.safetensors');
    const { adapters: _, ...before } = config;
    await saveCheckpoint(old, state({ config: before as CheckpointState['config'] }));
    const file = await readSafetensors(old);
    assert.equal(JSON.parse(file.metadata.config).adapters, undefined, 'written without the field');
    assert.equal((await loadCheckpoint(old, { config })).config.adapters, null);
  });

  it('reads the metadata without the tensors', async () => {
    const path = join(dir, 'info.safetensors');
    await saveCheckpoint(path, state({ step: 77 }));
    const info = await readCheckpointInfo(path);
    assert.equal(info.step, 77);
    assert.equal(info.paramCount, PARAMS);
    assert.deepEqual([...info.contents], ['params', 'adamM', 'adamV', 'masks']);
    assert.equal(info.header.tensors.length, 10);
  });

  it('resumes the batch sampler through the file to the same batches', async () => {
    const tokens = Int32Array.from({ length: 500 }, (_, i) => (i * 7) % 256);
    const uninterrupted = BatchSampler.create(tokens, { batch: 4, context: 8, seed: 5 });
    const interrupted = BatchSampler.create(tokens, { batch: 4, context: 8, seed: 5 });
    for (let i = 0; i < 3; i++) {
      uninterrupted.next();
      interrupted.next();
    }
    const path = join(dir, 'sampler.safetensors');
    await saveCheckpoint(path, state({ rng: interrupted.state(), step: 3 }));
    const resumed = BatchSampler.restore(tokens, (await loadCheckpoint(path)).rng);
    for (let i = 0; i < 5; i++) assert.deepEqual(resumed.next().inputs, uninterrupted.next().inputs);
  });
});

describe('quantized models', () => {
  const payload = () => ({
    name: 'blocks.0.mlp.fc.weight',
    codes: Uint8Array.from({ length: 64 }, (_, i) => i % 16),
    scales: Float32Array.from({ length: 32 }, (_, i) => 0.01 * (i + 1)),
    zeros: Uint8Array.from({ length: 32 }, (_, i) => i % 16),
    sparse: { index: Int32Array.from([3, 17, 40]), values: Uint16Array.from([0x3c00, 0xbc00, 0x0001]) },
  });
  const quant = { settings: { bits: 4 as const, group: 2, symmetric: false, method: 'gptq' as const }, tensors: [payload()] };

  it('round-trips the payload (codes, scales, zero points, sparse sets) under quant.* names, settings in the metadata', async () => {
    const file = join(dir, 'quant.safetensors');
    await saveCheckpoint(file, state({ adamM: undefined, adamV: undefined, quant }));
    const back = await loadCheckpoint(file);
    assert.deepEqual(back.quant, quant);
    assert.deepEqual((await readCheckpointInfo(file)).quant, quant.settings);
    const names = new Map((await readSafetensors(file)).tensors.map((t) => [t.name, [t.dtype, t.shape]]));
    assert.deepEqual(names.get('quant.codes.blocks.0.mlp.fc.weight'), ['U8', [16, 4]]);
    assert.deepEqual(names.get('quant.scales.blocks.0.mlp.fc.weight'), ['F32', [16, 2]]);
    assert.deepEqual(names.get('quant.sparse.values.blocks.0.mlp.fc.weight'), ['F16', [3]]);
  });

  it('refuses a payload that does not fit its weight', async () => {
    const short = { ...payload(), scales: new Float32Array(31) };
    await assert.rejects(saveCheckpoint(join(dir, 'q-bad.safetensors'), state({ quant: { ...quant, tensors: [short] } })), /do not fit \[16, 4\] in groups of 2/);
    await assert.rejects(saveCheckpoint(join(dir, 'q-bad.safetensors'), state({ quant: { ...quant, tensors: [{ ...payload(), name: 'blocks.0.mlp.fc.bias' }] } })), /is not a matrix/);
  });
});

describe('refusals', () => {
  it('rejects a state whose table does not fit its buffers', async () => {
    const path = join(dir, 'bad.safetensors');
    const bad = (tensors: typeof table, more: Partial<CheckpointState> = {}) => saveCheckpoint(path, state({ tensors, ...more }));
    await assert.rejects(bad([{ ...table[0], size: 23 }]), { message: 'tensor "tok_emb.weight": shape [6, 4] has 24 elements but size is 23' });
    await assert.rejects(bad([{ ...table[0], offset: 90 }]), { message: 'tensor "tok_emb.weight" [90, 114) lies outside params (108 floats)' });
    await assert.rejects(bad([table[0], { ...table[1], offset: 20 }]), { message: 'tensors "tok_emb.weight" and "blocks.0.mlp.fc.weight" overlap in params' });
    await assert.rejects(bad(table, { adamV: new Float32Array(3) }), { message: 'adamV has 3 floats but params has 108' });
    await assert.rejects(bad([{ ...table[0], name: 'optim.m.x' }]), /the prefixes "optim\.", "mask\." and "quant\." are reserved/);
  });

  it('refuses a safetensors file that is not a sieve checkpoint, with a HINT', async () => {
    const path = join(dir, 'hf.safetensors');
    await writeSafetensors(path, [{ name: 'wte.weight', dtype: 'F32', shape: [1], data: new Float32Array(1) }], { format: 'pt' });
    await assert.rejects(loadCheckpoint(path), {
      message: `${path} is not a sieve checkpoint (its metadata has format "pt"). HINT: a Hugging Face GPT-2 or LLaMA checkpoint folder is brought in with importHf (kernels/hf/).`,
    });
  });

  it('refuses another version, with a HINT', async () => {
    const path = join(dir, 'v2.safetensors');
    await saveCheckpoint(path, state());
    const file = await readSafetensors(path);
    await writeSafetensors(path, file.tensors.map((t) => ({ ...t, data: t.bytes })), { ...file.metadata, version: '2' });
    await assert.rejects(loadCheckpoint(path), {
      message: `${path} is a sieve checkpoint of version 2, this build reads version 1. HINT: use the sieve version that wrote it (recorded with the run), or restart the stage.`,
    });
  });

  it('refuses a checkpoint of another model, with a HINT', async () => {
    const path = join(dir, 'other.safetensors');
    await saveCheckpoint(path, state());
    const hint = 'HINT: resume with the recipe that wrote this checkpoint, or restart the stage without it.';
    await assert.rejects(loadCheckpoint(path, { config: { dim: 8 } }), {
      message: `${path} was saved for a model with dim = 4, this run's model has dim = 8. ${hint}`,
    });
    await assert.rejects(loadCheckpoint(path, { tensors: [...table, { name: 'norm_f.weight', offset: 108, size: 4, shape: [4] }] }), {
      message: `${path} has no tensor "norm_f.weight", which this run's model needs. ${hint}`,
    });
    await assert.rejects(loadCheckpoint(path, { tensors: [table[0], { ...table[1], shape: [4, 16] }, table[2]] }), {
      message: `${path}: tensor "blocks.0.mlp.fc.weight" is [16, 4] at offset 28, this run's model lays it out as [4, 16] at offset 28. ${hint}`,
    });
    await assert.rejects(loadCheckpoint(path, { tensors: table.slice(0, 2) }), {
      message: `${path} has tensor "blocks.0.mlp.fc.bias", which this run's model does not. ${hint}`,
    });
  });

  it('refuses edited files: a missing, extra or reshaped tensor', async () => {
    const path = join(dir, 'edited.safetensors');
    await saveCheckpoint(path, state());
    const file = await readSafetensors(path);
    const rewrite = (tensors: typeof file.tensors) => writeSafetensors(path, tensors.map((t) => ({ ...t, data: t.bytes })), file.metadata);

    await rewrite(file.tensors.filter((t) => t.name !== 'optim.v.tok_emb.weight'));
    await assert.rejects(loadCheckpoint(path), { message: `${path}: tensor "optim.v.tok_emb.weight" is missing. HINT: the file was edited or truncated; restart the stage.` });

    await rewrite([...file.tensors, { ...file.tensors[2], name: 'stray' }]);
    await assert.rejects(loadCheckpoint(path), { message: `${path}: unexpected tensor "stray" (not in the checkpoint's table)` });

    await rewrite(file.tensors.map((t) => (t.name === 'blocks.0.mlp.fc.bias' ? { ...t, shape: [4, 4] } : t)));
    await assert.rejects(loadCheckpoint(path), {
      message: `${path}: tensor "blocks.0.mlp.fc.bias" is F32 [4, 4], the checkpoint's table says F32 [16]. HINT: the file was edited or written by another tool.`,
    });
  });
});
