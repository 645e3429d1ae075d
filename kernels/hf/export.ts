// Export a sieve model (a checkpoint state) as a Hugging Face folder that transformers'
// `from_pretrained` reads: `model.safetensors` in the names and layouts of GPT2LMHeadModel
// (`transformer.`-prefixed, Conv1D weights [in, out], no lm_head.weight: it is tied, which is what
// GPT2LMHeadModel.save_pretrained itself writes) or LlamaForCausalLM, a `config.json`, and
// optionally the tokenizer.json the model was imported with.
//
// Promises: the weights written are the effective ones, param ⊙ mask (a 2:4 model's zeros are in
// the file), in float32, so importHf of the folder gives back exactly those bits. Each file is
// written to a temporary name and renamed into place, so a file under its final name is complete.
// A model with adapters (SLoRB branches, CAST scales) is refused, since HF naming has no place for
// them, and so is an output path that is not a writable directory; each is one Error naming it.
import { access, constants, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

import type { CheckpointState } from '../checkpoint';
import { writeFileAtomic } from '../files';
import { type TensorInput, writeSafetensors } from '../safetensors';
import { CONFIG_FILE, hfConfigJson, TOKENIZER_FILE } from './config';
import { hfLayout, sieveShape, transpose } from './layout';
import { WEIGHTS_FILE } from './weights';

export interface HfExportOptions {
  /** A tokenizer.json to copy into the folder: for an imported model, the one it came with (HfImport.tokenizer). */
  tokenizer?: string;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** A weight-scale tensor (CAST's `X.scale`): identity once the scales are folded into the weights. */
const isScale = (name: string) => name.endsWith('.scale');

/**
 * Adapters have no place among Hugging Face's tensors: SLoRB branches are refused, and so are CAST
 * weight scales, unless they are all 1 (a finished CAST stage folds them into the weights and
 * resets them), when leaving them out changes nothing.
 */
function refuseAdapters(checkpoint: CheckpointState, architecture: string): void {
  const adapters = checkpoint.config.adapters;
  if (adapters === null) return;
  const kinds = [];
  if (adapters.slorbK !== null) kinds.push(`SLoRB branches (slorbK = ${adapters.slorbK})`);
  const unfolded = checkpoint.tensors.some((t) => isScale(t.name) && checkpoint.params.subarray(t.offset, t.offset + t.size).some((v) => v !== 1));
  if (adapters.scaleSegments !== null && unfolded) kinds.push(`CAST weight scales not folded into the weights (${adapters.scaleSegments} segments)`);
  if (kinds.length === 0) return;
  throw new Error(
    `cannot export this ${checkpoint.config.family} model in Hugging Face layout: its adapters, ${kinds.join(' and ')}, have no place among ${architecture}'s tensors; the ONNX export keeps them`,
  );
}

/** Each sieve tensor's effective weights, param ⊙ mask, checked against the layout's table. */
function effectiveWeights(checkpoint: CheckpointState, layout: ReturnType<typeof hfLayout>): Map<string, Float32Array> {
  const table = new Map(checkpoint.tensors.map((t) => [t.name, t]));
  const weights = new Map<string, Float32Array>();
  for (const m of layout.tensors) {
    const entry = table.get(m.ours);
    const want = sieveShape(m);
    if (!entry) throw new Error(`cannot export: the checkpoint has no tensor "${m.ours}", which a ${checkpoint.config.family} model with its config has`);
    if (shapeText(entry.shape) !== shapeText(want)) {
      throw new Error(`cannot export: tensor "${m.ours}" is ${shapeText(entry.shape)} in the checkpoint, but its config implies ${shapeText(want)}`);
    }
    const params = checkpoint.params.subarray(entry.offset, entry.offset + entry.size);
    const mask = checkpoint.masks?.subarray(entry.offset, entry.offset + entry.size);
    weights.set(m.ours, mask ? params.map((w, i) => w * mask[i]) : params);
  }
  const extra = checkpoint.tensors.find((t) => !weights.has(t.name) && !isScale(t.name));
  if (extra) throw new Error(`cannot export: the checkpoint has tensor "${extra.name}", which has no place in ${layout.architecture}'s tensors`);
  return weights;
}

/** The HF tensors, in the layout's order: sieve tensors transposed (Conv1D) or split by rows (q, k, v). */
function hfTensors(weights: Map<string, Float32Array>, layout: ReturnType<typeof hfLayout>): TensorInput[] {
  const out: TensorInput[] = [];
  for (const m of layout.tensors) {
    const shape = m.hfShape.map((d) => d.size);
    let data = weights.get(m.ours)!;
    // sieve [out, in] is stored as Conv1D's [in, out] = shape.
    if (m.transposed) data = transpose(data, shape[1], shape[0]);
    const partSize = data.length / m.hf.length;
    m.hf.forEach((name, i) => out.push({ name, dtype: 'F32', shape, data: data.subarray(i * partSize, (i + 1) * partSize) }));
  }
  return out;
}

/** Make `dir` (and its parents) if needed; refuse with one sentence when it cannot hold files. */
async function prepareDirectory(dir: string): Promise<void> {
  const what = await stat(dir).catch(() => undefined);
  if (what && !what.isDirectory()) throw new Error(`cannot export to ${dir}: it exists and is not a directory`);
  try {
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOTDIR' || code === 'EEXIST' ? 'a parent of it is not a directory' : `it is not a writable directory (${code ?? (err as Error).message})`;
    throw new Error(`cannot export to ${dir}: ${why}`);
  }
}

async function readTokenizer(path: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read the tokenizer ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`the tokenizer ${path} is not valid JSON (${(err as Error).message})`);
  }
  return bytes;
}

/** Write `checkpoint`'s model into `dir` in Hugging Face layout; returns the files written. */
export async function exportHf(checkpoint: CheckpointState, dir: string, options: HfExportOptions = {}): Promise<{ files: string[] }> {
  const { config } = checkpoint;
  // The engine's llama head is its own tensor: written untied, whatever the model was imported from.
  const layout = hfLayout({ ...config, tieEmbeddings: config.family === 'gpt2' });
  refuseAdapters(checkpoint, layout.architecture);
  const tensors = hfTensors(effectiveWeights(checkpoint, layout), layout);
  const tokenizer = options.tokenizer === undefined ? undefined : await readTokenizer(options.tokenizer);

  await prepareDirectory(dir);
  const files = [join(dir, WEIGHTS_FILE), join(dir, CONFIG_FILE)];
  // `format: pt` is what transformers' safetensors loader expects in the metadata.
  await writeSafetensors(files[0], tensors, { format: 'pt' });
  await writeFileAtomic(files[1], Buffer.from(`${JSON.stringify(hfConfigJson(config), null, 2)}\n`));
  if (tokenizer) {
    files.push(join(dir, TOKENIZER_FILE));
    await writeFileAtomic(files[2], tokenizer);
  }
  return { files };
}
