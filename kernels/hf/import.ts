// Import a Hugging Face GPT-2 or LLaMA checkpoint folder as engine tensors: config.json → the
// engine's config, the weights (single file or shards; F32, F16, BF16) → sieve names and layouts
// along the family's table (layout.ts).
//
// Promises: every HF tensor is either mapped or deliberately ignored (layout.ts says which); a
// tensor that is missing, unexpected, or whose shape contradicts config.json is one Error naming the
// tensor (and, for shapes, the config key). F16 and BF16 widen to float32 exactly, and F32 is copied
// as is, so importing what exportHf wrote gives back its bits. `sources` lists every file read with
// its sha256, for the import stage's cache key.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { ModelConfig } from '../index';
import { type Tensor, toFloat32 } from '../safetensors';
import { CONFIG_FILE, type HfTokenizer, loadHfConfig } from './config';
import { type Dim, hfLayout, transpose } from './layout';
import { describeSource, type HfSource } from './source';
import { readHfWeights } from './weights';

export interface HfImport {
  /** The engine config (no adapters). */
  config: ModelConfig;
  /** sieve name → weights in sieve layout, in the engine's table order. */
  tensors: Map<string, Float32Array>;
  /** Every file read: config.json, the index (when sharded), the safetensors file(s), tokenizer.json (when there is one). */
  sources: HfSource[];
  tokenizer: HfTokenizer;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

/** The tensor as a float32 array of its own (never a view pinning the file's buffer). */
function floats(file: string, tensor: Tensor): Float32Array {
  try {
    const data = toFloat32(tensor);
    return data.buffer === tensor.bytes.buffer ? data.slice() : data;
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}

function checkShape(file: string, configPath: string, tensor: Tensor, want: Dim[]): void {
  const wanted = want.map((d) => d.size);
  if (shapeText(tensor.shape) === shapeText(wanted)) return;
  // Name the key behind the first dimension that differs, or all of them when the rank does.
  const culprits = tensor.shape.length === want.length ? want.filter((d, i) => d.size !== tensor.shape[i]).slice(0, 1) : want;
  const keys = [...new Set(culprits.map((d) => d.from))].join(', ');
  throw new Error(`${file}: tensor "${tensor.name}" has shape ${shapeText(tensor.shape)}, but ${configPath} (${keys}) implies ${shapeText(wanted)}`);
}

function stackRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.every((v, i) => v === y[i]);
}

/** Import the Hugging Face checkpoint in `dir` (config.json, model.safetensors or its shards, tokenizer.json). */
export async function importHf(dir: string): Promise<HfImport> {
  const { config: hf, source: configSource } = await loadHfConfig(dir);
  const configPath = join(dir, CONFIG_FILE);
  const weights = await readHfWeights(dir);
  const layout = hfLayout(hf);

  // Names as the layout spells them; a checkpoint that has one tensor under two names is ambiguous.
  const byName = new Map<string, { tensor: Tensor; file: string }>();
  for (const [name, entry] of weights.tensors) {
    const canonical = layout.canonicalName(name);
    const other = byName.get(canonical);
    if (other) throw new Error(`${weights.origin}: tensors "${other.tensor.name}" and "${name}" both name "${canonical}"`);
    byName.set(canonical, entry);
  }
  const need = (name: string) => {
    const entry = byName.get(name);
    if (!entry) throw new Error(`${weights.origin}: missing tensor "${name}", which a ${hf.family} model with ${configPath} has`);
    return entry;
  };

  const tensors = new Map<string, Float32Array>();
  const used = new Set<string>();
  for (const m of layout.tensors) {
    const parts = m.hf.map((name) => {
      const { tensor, file } = need(name);
      checkShape(file, configPath, tensor, m.hfShape);
      used.add(name);
      return floats(file, tensor);
    });
    const data = parts.length === 1 ? parts[0] : stackRows(parts);
    tensors.set(m.ours, m.transposed ? transpose(data, m.hfShape[0].size, m.hfShape[1].size) : data);
  }

  const head = layout.tiedHead;
  const headEntry = head && byName.get(head.hf);
  if (head && headEntry) {
    const embedding = byName.get(head.embedding)!;
    const same =
      shapeText(headEntry.tensor.shape) === shapeText(embedding.tensor.shape) && sameBits(floats(headEntry.file, headEntry.tensor), floats(embedding.file, embedding.tensor));
    if (!same) throw new Error(`${headEntry.file}: ${head.hf} differs from ${head.embedding}, but ${head.why}`);
    used.add(head.hf);
  }
  const unexpected = [...byName].filter(([name]) => !used.has(name) && !layout.isIgnored(name)).map(([, e]) => `"${e.tensor.name}"`);
  if (unexpected.length > 0) {
    const listed = unexpected.length > 5 ? `${unexpected.slice(0, 5).join(', ')} and ${unexpected.length - 5} more` : unexpected.join(', ');
    throw new Error(`${weights.origin}: unexpected tensor${unexpected.length > 1 ? 's' : ''} ${listed}, not part of a ${hf.family} model with ${configPath}`);
  }

  const sources = [configSource, ...weights.sources];
  if (hf.tokenizer.kind === 'file') sources.push(describeSource(hf.tokenizer.path, await readFile(hf.tokenizer.path)));
  const { family, layers, dim, heads, context, vocab, mlpHidden, normEps, ropeTheta } = hf;
  return {
    config: { family, layers, dim, heads, context, vocab, mlpHidden, normEps, ropeTheta, adapters: null },
    tensors,
    sources,
    tokenizer: hf.tokenizer,
  };
}
