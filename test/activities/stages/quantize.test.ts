// The quantize stage on its own (MockActivityEnvironment, the real engine and artifact store), on
// GPT-2 and LLaMA models, dense and 2:4: the stored payload dequantizes to exactly the weights the
// model computes with; codes lie on the grid; GPTQ beats RTN on its layer-output objective; a 2:4
// model stays exactly 2:4; ReQuant's sparse sets are disjoint, within budget, restore the original
// weights to 16-bit precision, and with r_o = r_s = 0 it is the base quantizer bit for bit; bits
// per weight count the sparse sets; the sensitivity report is an artifact of its own, reused by a
// second stage; and a cancelled stage run again gives the same bits.
import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';

import { dequantize } from '../../../kernels';
import { f16Bits, f16ToNumber } from '../../../kernels/half';
import { loadCheckpoint, saveCheckpoint, type CheckpointState } from '../../../kernels/checkpoint';
import { modelFromCheckpoint } from '../../../activities/train/model-state';
import { readSafetensors } from '../../../kernels/safetensors';
import type { StageOutput, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('quantize');
const stored = (sha: string) => `${home}/artifacts/${sha.slice(0, 2)}/${sha}`;

const requant = { method: 'rtn', bits: 3, group: 8, calibration: 6, sensitivity: 'pqi', intervals: 4, requant: { outliers: 0.01, significant: 0.01, rounds: 2 } };
const recipeOf = (family: 'gpt2' | 'llama') =>
  Recipe.parse({
    name: `quantize-${family}`,
    seed: 5,
    model: { family, layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
    data: { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
    stages: [
      { id: 'dense', kind: 'pretrain', steps: 10, batch: 4, lr: 0.01 },
      { id: 'pruned', kind: 'prune', from: 'dense', scope: 'all' },
      { id: 'rtn', kind: 'quantize', from: 'dense', bits: 4, group: 8 },
      { id: 'rtn-requant-0', kind: 'quantize', from: 'dense', bits: 4, group: 8, requant: { outliers: 0, significant: 0 } },
      { id: 'gptq', kind: 'quantize', from: 'dense', bits: 4, group: 8, method: 'gptq', calibration: 6 },
      { id: 'sparse-gptq', kind: 'quantize', from: 'pruned', bits: 3, group: 8, method: 'gptq', gptq: { actOrder: true }, calibration: 6 },
      { id: 'requant', kind: 'quantize', from: 'dense', ...requant },
      { id: 'pqi-only', kind: 'quantize', from: 'dense', bits: 3, group: 8, calibration: 6, sensitivity: 'pqi', intervals: 4 },
      { id: 'taylor2', kind: 'quantize', from: 'dense', bits: 3, group: 8, calibration: 6, sensitivity: 'taylor2' },
    ],
  });

for (const family of ['gpt2', 'llama'] as const) {
  describe(`quantize (${family})`, () => {
    const recipe = recipeOf(family);
    const task = (stageId: string, inputs: Record<string, StageOutput>): StageTask => ({ runId: 'r', recipe, stageId, inputs, cacheKey: 'k', resumeFrom: null });
    const run = async (stageId: string, inputs: Record<string, StageOutput>) => (await activityEnv(fakeWorkflow().client).run(activities.quantize, task(stageId, inputs))).output;
    const model = async (output: StageOutput) => loadCheckpoint(stored(artifact(output, 'model').sha256));
    let dense: StageOutput;
    let denseModel: CheckpointState;
    let pruned: StageOutput;
    before(async () => {
      dense = (await activityEnv(fakeWorkflow().client).run(activities.pretrain, task('dense', {}))).output;
      pruned = (await activityEnv(fakeWorkflow().client).run(activities.prune, task('pruned', { dense }))).output;
      denseModel = await model(dense);
    });

    /** Each quantized weight as the payload says: (code − zero)·scale, the sparse values over it. */
    const fromPayload = (ckpt: CheckpointState) =>
      new Map(
        ckpt.quant!.tensors.map((q) => {
          const [rows, cols] = ckpt.tensors.find((t) => t.name === q.name)!.shape;
          const w = dequantize({ rows, cols, spec: { bits: ckpt.quant!.settings.bits, group: ckpt.quant!.settings.group, symmetric: ckpt.quant!.settings.symmetric }, codes: q.codes, scales: q.scales, zeros: q.zeros });
          q.sparse.index.forEach((i, k) => (w[i] = f16ToNumber(q.sparse.values[k])));
          return [q.name, w];
        }),
      );
    const paramsOf = (ckpt: CheckpointState, name: string) => {
      const t = ckpt.tensors.find((e) => e.name === name)!;
      return ckpt.params.subarray(t.offset, t.offset + t.size);
    };

    it('rtn: codes on the grid, and the model computes with exactly the dequantized payload', async () => {
      const output = await run('rtn', { dense });
      const ckpt = await model(output);
      assert.deepEqual(ckpt.quant!.settings, { bits: 4, group: 8, symmetric: false, method: 'rtn' });
      assert.equal(ckpt.quant!.tensors.length, family === 'gpt2' ? 4 : 5, 'scope all: qkv, out and the MLP weights');
      for (const [name, w] of fromPayload(ckpt)) {
        assert.deepEqual(paramsOf(ckpt, name), w, `${name}: params are the dequantized payload`);
        const q = ckpt.quant!.tensors.find((t) => t.name === name)!;
        assert.ok(q.codes.every((c) => c <= 15) && q.zeros.every((z) => z <= 15));
        assert.equal(q.sparse.index.length, 0);
        // round to nearest: within half a step of the original
        const original = paramsOf(denseModel, name);
        w.forEach((v, i) => assert.ok(Math.abs(v - original[i]) <= 0.5 * q.scales[Math.floor(i / 8)] * (1 + 1e-6), `${name}[${i}]`));
      }
      assert.equal(output.metrics['quant/bits_per_weight'], 4 + 40 / 8, '4-bit codes + a float32 scale and a uint8 zero point per 8 weights');
      assert.ok(!ckpt.adamM && !ckpt.adamV, 'a quantized model carries no optimizer state');
      // a weight edited after the fact no longer matches its payload, and loading says so
      const name = ckpt.quant!.tensors[1].name;
      const t = ckpt.tensors.find((e) => e.name === name)!;
      ckpt.params[t.offset + 5] += 0.25;
      const edited = path.join(home, `edited-${family}.safetensors`);
      await saveCheckpoint(edited, ckpt);
      await assert.rejects(modelFromCheckpoint(edited, { threads: 1, device: 'cpu' }), new RegExp(`weight ${name.replace(/\./g, '\\.')}\\[5\\] is .*the checkpoint was altered`));
    });

    it('requant with r_o = r_s = 0 is the base quantizer bit for bit; GPTQ has the lower layer-output error', async () => {
      const [base, zero, gptq] = [await run('rtn', { dense }), await run('rtn-requant-0', { dense }), await run('gptq', { dense })];
      assert.equal(artifact(zero, 'model').sha256, artifact(base, 'model').sha256);
      assert.ok(gptq.metrics['quant/output_error'] < zero.metrics['quant/output_error'], `${gptq.metrics['quant/output_error']} < ${zero.metrics['quant/output_error']}`);
    });

    it('a 2:4 model stays exactly 2:4 (GPTQ with act order)', async () => {
      const output = await run('sparse-gptq', { pruned });
      const ckpt = await model(output);
      for (const [name, w] of fromPayload(ckpt)) {
        const cols = ckpt.tensors.find((t) => t.name === name)!.shape[1];
        for (let g = 0; g < w.length; g += 4) assert.ok([0, 1, 2, 3].filter((k) => w[g + k] !== 0).length <= 2, `${name} group ${g / 4} of rows of ${cols}`);
      }
      // the kept half's codes cost bits + 2 (their position)
      assert.equal(output.metrics['quant/bits_per_weight'], (3 + 2) / 2 + 40 / 8);
    });

    it('requant: disjoint sparse sets within budget, restored to 16 bits, counted in the bits per weight', async () => {
      const output = await run('requant', { dense });
      const ckpt = await model(output);
      const total = output.metrics['quant/weights'];
      const outliers = output.metrics['quant/outliers'];
      const significant = output.metrics['quant/significant'];
      assert.ok(outliers > 0 && outliers <= Math.floor(0.01 * total), `outliers ${outliers} of ${total}`);
      assert.ok(significant > 0 && significant <= Math.floor(0.01 * total), `significant ${significant}`);
      let entries = 0;
      for (const q of ckpt.quant!.tensors) {
        const index = [...q.sparse.index];
        assert.equal(new Set(index).size, index.length, 'no position is detached twice');
        assert.deepEqual(index, [...index].sort((a, b) => a - b));
        const original = paramsOf(denseModel, q.name);
        index.forEach((i, k) => assert.equal(q.sparse.values[k], f16Bits(original[i]), `${q.name}[${i}] is the original weight in 16 bits`));
        entries += index.length;
      }
      assert.equal(entries, outliers + significant);
      assert.ok(Math.abs(output.metrics['quant/bits_per_weight'] - (3 + 5 + (48 * entries) / total)) < 1e-12);
      for (const [name, w] of fromPayload(ckpt)) assert.deepEqual(paramsOf(ckpt, name), w);
      // the sensitivity of the base step, its own artifact
      const report = await readSafetensors(stored(artifact(output, 'sensitivity').sha256));
      const meta = JSON.parse(report.metadata.derived);
      assert.equal(meta.metric, 'pqi');
      assert.equal(meta.rule, 'right');
      assert.equal(meta.layers.length, family === 'gpt2' ? 4 : 5);
      for (const l of meta.layers) assert.ok(Number.isFinite(l.predictedAlone) && Number.isFinite(l.actualAlone));
      // PQI with 4 right-endpoint intervals: near the actual change of the calibration loss
      const { predicted, actual } = { predicted: output.metrics['sensitivity/pqi/predicted'], actual: output.metrics['sensitivity/pqi/actual'] };
      assert.ok(Math.abs(predicted - actual) < 0.5 * Math.abs(actual), `pqi ${predicted} vs actual ${actual}`);
      assert.ok(Number.isFinite(output.metrics['quant/calibration_loss']));
    });

    it('a second stage that needs the same sensitivity reuses the artifact; taylor2 reports beside it', async () => {
      const first = await run('requant', { dense });
      const second = await run('pqi-only', { dense });
      assert.equal(artifact(second, 'sensitivity').sha256, artifact(first, 'sensitivity').sha256);
      const taylor = await run('taylor2', { dense });
      assert.notEqual(artifact(taylor, 'sensitivity').sha256, artifact(first, 'sensitivity').sha256);
      assert.equal(taylor.metrics['sensitivity/taylor2/actual'], first.metrics['sensitivity/pqi/actual'], 'the same step, the same actual ΔL');
    });

    it('cancelled mid-way and run again, it gives the same bits', async () => {
      const whole = await run('requant', { dense });
      const first = activityEnv(fakeWorkflow().client);
      let beats = 0;
      first.env.on('heartbeat', () => {
        if (++beats === 3) first.env.cancel();
      });
      await assert.rejects(first.run(activities.quantize, task('requant', { dense })), /cancel/i);
      const again = await run('requant', { dense });
      assert.equal(artifact(again, 'model').sha256, artifact(whole, 'model').sha256);
    });
  });
}
