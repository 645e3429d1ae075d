// The weights of a Hugging Face checkpoint folder: `model.safetensors`, or the shards named by
// `model.safetensors.index.json` (its `weight_map`: tensor → shard file), as transformers looks
// for them (the single file first).
//
// Promises: every tensor comes back once, with the file that holds it; a shard that is missing,
// a tensor outside the shard the index names (so also one in two shards) or absent from it is one
// Error naming the index and the shard. Tensors are views into the files' buffers, converted by the
// caller, so a buffer tensor of another dtype (a BOOL causal mask) costs nothing when it is ignored.
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';

import { readSafetensors, type Tensor } from '../safetensors';
import { describeSource, type HfSource } from './source';

export const WEIGHTS_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

export interface HfWeights {
  /** What errors about the checkpoint as a whole name: the single file, or the index. */
  origin: string;
  tensors: Map<string, { tensor: Tensor; file: string }>;
  /** Every file read: the index (when sharded), then the safetensors file(s). */
  sources: HfSource[];
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

async function readSingle(path: string): Promise<HfWeights> {
  const file = await readSafetensors(path);
  const tensors = new Map(file.tensors.map((tensor) => [tensor.name, { tensor, file: path }]));
  return { origin: path, tensors, sources: [describeSource(path, file.buffer)] };
}

/** The index's weight_map, checked: tensor name → shard file name (a plain name inside the folder). */
async function readIndex(path: string): Promise<{ weightMap: Map<string, string>; source: HfSource }> {
  const bytes = await readFile(path);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`);
  }
  const map = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`${path} has no "weight_map" object (tensor name → shard file)`);
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(map)) {
    // A plain file name: an index must not send the reader outside the folder.
    if (typeof shard !== 'string' || shard === '' || basename(shard) !== shard || shard === '.' || shard === '..') {
      throw new Error(`${path}: "weight_map" places tensor "${name}" in ${JSON.stringify(shard)}, which is not a file name in the folder`);
    }
    weightMap.set(name, shard);
  }
  return { weightMap, source: describeSource(path, bytes) };
}

async function readSharded(dir: string, indexPath: string): Promise<HfWeights> {
  const { weightMap, source } = await readIndex(indexPath);
  const shards = [...new Set(weightMap.values())];
  for (const shard of shards) {
    if (!(await exists(join(dir, shard)))) throw new Error(`${indexPath} names shard "${shard}", but ${join(dir, shard)} does not exist`);
  }
  const tensors: HfWeights['tensors'] = new Map();
  const sources = [source];
  for (const shard of shards) {
    const path = join(dir, shard);
    const file = await readSafetensors(path);
    sources.push(describeSource(path, file.buffer));
    for (const tensor of file.tensors) {
      const listed = weightMap.get(tensor.name);
      if (listed === undefined) throw new Error(`${path} holds tensor "${tensor.name}", which ${indexPath} does not list`);
      if (listed !== shard) throw new Error(`${path} holds tensor "${tensor.name}", which ${indexPath} places in "${listed}"`);
      tensors.set(tensor.name, { tensor, file: path });
    }
  }
  for (const [name, shard] of weightMap) {
    if (!tensors.has(name)) throw new Error(`${indexPath} places tensor "${name}" in "${shard}", but ${join(dir, shard)} does not hold it`);
  }
  return { origin: indexPath, tensors, sources };
}

/** Every tensor of the checkpoint in `dir`, by its HF name. */
export async function readHfWeights(dir: string): Promise<HfWeights> {
  const single = join(dir, WEIGHTS_FILE);
  if (await exists(single)) return readSingle(single);
  const index = join(dir, INDEX_FILE);
  if (await exists(index)) return readSharded(dir, index);
  throw new Error(`${dir} holds neither ${WEIGHTS_FILE} nor ${INDEX_FILE}`);
}
