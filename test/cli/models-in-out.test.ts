// Models in and out through the real CLI: a LLaMA checkpoint written here in Hugging Face layout
// (config.json, model.safetensors, a byte-level BPE tokenizer.json) is imported by a recipe
// (`model.import`), fine-tuned, pruned to 2:4, quantized (GPTQ + ReQuant, with PQI), evaluated by
// the engine and by ONNX Runtime (runtime both), and exported as ONNX and as a Hugging Face folder; `sieve export` copies and
// converts; a second recipe imports the exported folder and measures the same perplexity, bit for
// bit. And the errors a user meets: a folder without config.json, a key that contradicts it, an
// export of a stage without a model, an unwritable output path.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { onnx } from 'onnx-proto';

import { DevServer } from '../../cli/temporal/dev-server';
import { writeSafetensors } from '../../kernels/safetensors';
import type { ShowOutput, ValidateOutput } from '../../schemas/cli';
import { asInputs, byteLevelTokenizer, llamaConfig, llamaTensors, type LlamaDims } from '../kernels/hf/helpers';
import { lastJson, sieve, tempHome, writeRecipe } from './helpers';

const home = tempHome('models-in-out');
after(async () => {
  await new DevServer(home).stop();
});

// The tokenizer has 256 byte ids, 9 merges and <|endoftext|>: 266 ids; the checkpoint pads its vocabulary to 272.
const MERGES = ['Ġ t', 'h e', 'Ġt he', 'i n', 'Ġ a', 'e r', 'o n', 'Ġ s', 'e d'];
const DIMS: LlamaDims = { layers: 2, dim: 32, heads: 4, hidden: 64, vocab: 272, context: 32, eps: 1e-6, theta: 500 };
const folder = path.join(home, 'tiny-llama');

before(async () => {
  fs.mkdirSync(folder);
  // Small weights, so the imported model starts near uniform and fine-tuning has something to do.
  const tensors = llamaTensors(DIMS, 11);
  for (const [name, t] of tensors) if (!name.includes('norm')) t.data.forEach((v, i) => (t.data[i] = v * 0.1));
  await writeSafetensors(path.join(folder, 'model.safetensors'), asInputs(tensors), { format: 'pt' });
  fs.writeFileSync(path.join(folder, 'config.json'), JSON.stringify(llamaConfig(DIMS)));
  fs.writeFileSync(path.join(folder, 'tokenizer.json'), JSON.stringify(byteLevelTokenizer(MERGES)));
});

const data = `data:
  corpus: moby-dick
  train: { items: [3, 20] }
  eval:
    tail: { corpus: moby-dick, items: [130, 133] }`;

const show = async (id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const stage = (run: ShowOutput, id: string) => run.stages.find((s) => s.id === id)!;
const sha256 = (file: string) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

let run: ShowOutput;

test('an imported LLaMA is fine-tuned, pruned, quantized, evaluated by both runtimes and exported', { timeout: 300_000 }, async () => {
  const recipe = writeRecipe(
    home,
    'in-out.yaml',
    `name: hf-in-out
seed: 2
model: { import: ./tiny-llama }
${data}
stages:
  - { id: base, kind: import }
  - { id: tuned, kind: pretrain, from: base, steps: 20, batch: 8, lr: 3.0e-3 }
  - { id: pruned, kind: prune, from: tuned, scope: all }
  - { id: quant, kind: quantize, from: pruned, bits: 4, group: 16, method: gptq, calibration: 8, sensitivity: pqi, intervals: 8, requant: { outliers: 0.004, significant: 0.004 } }
  - { id: report, kind: evaluate, from: [base, tuned, pruned, quant], runtime: both, batch: 8, sample: { prompt: "Call me", tokens: 8 } }
  - { id: onnx, kind: export, from: pruned }
  - { id: quant-onnx, kind: export, from: quant }
  - { id: hf, kind: export, from: tuned, format: safetensors }
`,
  );
  const validated = await sieve(home, ['validate', recipe, '--json']);
  assert.equal(validated.code, 0, validated.stderr);
  const { recipe: resolved } = JSON.parse(validated.stdout) as Extract<ValidateOutput, { ok: true }>;
  assert.deepEqual(
    { ...resolved.model, import: undefined, tokenizer: undefined },
    { family: 'llama', layers: 2, dim: 32, heads: 4, context: 32, mlpRatio: 2, vocab: 272, normEps: 1e-6, ropeTheta: 500, import: undefined, tokenizer: undefined },
    'every architecture key comes from config.json',
  );
  assert.deepEqual(resolved.model.import, { path: folder, sha256: (resolved.model.import as { sha256: string }).sha256 });
  assert.deepEqual(resolved.model.tokenizer, { file: path.join(folder, 'tokenizer.json'), sha256: sha256(path.join(folder, 'tokenizer.json')), vocab: 266 });

  const r = await sieve(home, ['run', recipe, '--json']);
  assert.equal(r.code, 0, r.stderr);
  run = await show(lastJson<{ id: string }>(r.stdout).id);
  assert.equal(run.status, 'completed');
  const metrics = stage(run, 'report').metrics;
  for (const from of ['base', 'tuned', 'pruned', 'quant']) {
    const [native, ort] = [metrics[`${from}/tail/ppl`]!, metrics[`${from}/tail/ppl/onnxruntime`]!];
    assert.ok(Math.abs(ort / native - 1) < 1e-5, `${from}: native ${native}, onnxruntime ${ort}`);
  }
  assert.ok(metrics['tuned/tail/ppl']! < metrics['base/tail/ppl']!, 'fine-tuning the imported model lowered its perplexity');
  assert.equal(metrics['pruned/two_four'], 1);
  assert.ok(metrics['pruned/bits_per_weight']! < metrics['tuned/bits_per_weight']!);
  // the quantized 2:4 model: still 2:4, smaller again, its loss change predicted beside the measured one
  assert.equal(metrics['quant/two_four'], 1);
  assert.ok(metrics['quant/bits_per_weight']! < metrics['pruned/bits_per_weight']!);
  const quant = stage(run, 'quant');
  const entries = quant.metrics['quant/outliers']! + quant.metrics['quant/significant']!;
  assert.ok(entries > 0);
  // the kept halves' 4-bit codes with 2-bit positions (3 bits a weight), 40 bits per group of 16, 48 bits per sparse entry
  assert.ok(Math.abs(quant.metrics['quant/bits_per_weight']! - (3 + 40 / 16 + (48 * entries) / quant.metrics['quant/weights']!)) < 1e-9);
  assert.ok(Number.isFinite(quant.metrics['sensitivity/pqi/predicted']!) && Number.isFinite(quant.metrics['sensitivity/pqi/actual']!));
  assert.deepEqual(quant.artifacts.filter((a) => a.role !== 'input').map((a) => a.role).sort(), ['model', 'sensitivity']);
  assert.deepEqual(stage(run, 'onnx').artifacts.filter((a) => a.role === 'export').map((a) => a.kind), ['onnx']);
  assert.deepEqual(stage(run, 'hf').artifacts.filter((a) => a.role.startsWith('export')).map((a) => a.role).sort(), ['export', 'export/config.json', 'export/tokenizer.json']);
});

test('sieve export copies an export stage and converts a model stage; a re-import measures the same perplexity', { timeout: 300_000 }, async () => {
  const onnxFile = path.join(home, 'pruned.onnx');
  const copied = await sieve(home, ['export', run.id, '--stage', 'onnx', '--out', onnxFile, '--json']);
  assert.equal(copied.code, 0, copied.stderr);
  assert.equal(sha256(onnxFile), stage(run, 'onnx').artifacts.find((a) => a.role === 'export')!.sha256);
  const model = onnx.ModelProto.decode(fs.readFileSync(onnxFile));
  const meta = Object.fromEntries(model.metadataProps.map((p) => [p.key, p.value]));
  assert.equal(meta['sieve.lineage'], 'pruned <- tuned <- base');
  assert.equal(meta['sieve.recipe_hash'], run.recipeHash);
  assert.equal(meta['sieve.run'], run.id);
  assert.equal(JSON.parse(meta['sieve.sparsity']!).share, 1, 'the exported weights are exactly 2:4');

  const quantFile = path.join(home, 'quant.onnx');
  assert.equal((await sieve(home, ['export', run.id, '--stage', 'quant-onnx', '--out', quantFile])).code, 0);
  const quantized = onnx.ModelProto.decode(fs.readFileSync(quantFile));
  assert.equal(quantized.graph!.node!.filter((n) => n.opType === 'DequantizeLinear').length, 2 * 5, 'every block linear weight of the 2 blocks (qkv, out, gate, up, down) as uint8 codes');

  const out = path.join(home, 'tuned-hf');
  const converted = await sieve(home, ['export', run.id, '--stage', 'tuned', '--format', 'safetensors', '--out', out]);
  assert.equal(converted.code, 0, converted.stderr);
  assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
  assert.equal(sha256(path.join(out, 'model.safetensors')), stage(run, 'hf').artifacts.find((a) => a.role === 'export')!.sha256, 'the export stage and sieve export write the same bytes');

  const again = writeRecipe(home, 'reimport.yaml', `name: hf-reimport\nmodel: { import: ./tuned-hf }\n${data}\nstages:\n  - { id: base, kind: import }\n  - { id: report, kind: evaluate, from: base }\n`);
  const r = await sieve(home, ['run', again, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const reimported = await show(lastJson<{ id: string }>(r.stdout).id);
  assert.equal(stage(reimported, 'report').metrics['base/tail/ppl'], stage(run, 'report').metrics['tuned/tail/ppl'], 'the round trip through Hugging Face layout kept every bit');
});

test('errors: no config.json, a key that contradicts it, a stage without a model, an unwritable path', { timeout: 120_000 }, async () => {
  fs.mkdirSync(path.join(home, 'empty'));
  const missing = writeRecipe(home, 'missing.yaml', `name: bad\nmodel: { import: ./empty }\n${data}\nstages:\n  - { id: base, kind: import }\n`);
  const noConfig = await sieve(home, ['validate', missing]);
  assert.notEqual(noConfig.code, 0);
  assert.match(noConfig.stderr, /empty\/config\.json does not exist[^]*→ at model\.import \(.*missing\.yaml:2:/);

  const contradicting = writeRecipe(home, 'layers.yaml', `name: bad\nmodel: { import: ./tiny-llama, layers: 3 }\n${data}\nstages:\n  - { id: base, kind: import }\n`);
  const layers = await sieve(home, ['validate', contradicting]);
  assert.notEqual(layers.code, 0);
  assert.match(layers.stderr, /`model\.layers` is 3 but .*tiny-llama\/config\.json implies 2; leave it out to take the checkpoint's\n  → at model\.layers/);

  const noModel = await sieve(home, ['export', run.id, '--stage', 'report', '--out', path.join(home, 'x.onnx')]);
  assert.notEqual(noModel.code, 0);
  assert.match(noModel.stderr, /stage report of run .* is an evaluate stage and produced no model to export/);
  assert.ok(!fs.existsSync(path.join(home, 'x.onnx')));

  const unwritable = await sieve(home, ['export', run.id, '--stage', 'pruned', '--out', path.join(home, 'no-such-dir', 'x.onnx')]);
  assert.notEqual(unwritable.code, 0);
  assert.match(unwritable.stderr, /cannot write .*no-such-dir\/x\.onnx \(ENOENT\)/);
});
