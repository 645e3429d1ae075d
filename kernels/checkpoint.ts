// sieve checkpoints: a training state (weights, AdamW moments, 2:4 masks, step, sampler RNG,
// data position, model config) as one safetensors file. The format is specified in
// docs/checkpoint-format.md; in short, weights keep their own names (any safetensors tool
// opens a checkpoint as a model), moments are `optim.m.<name>` / `optim.v.<name>`, masks are
// `mask.<name>` (only where not all ones), and `__metadata__` carries the rest as strings.
//
// Promises: decoupled from the engine (it deals in a flat Float32Array plus an offset
// table, the engine's own layout); saving is atomic (safetensors.ts writes a temporary
// file and renames it); load(save(state)) is bit-exact, NaN payloads, −0 and subnormals
// included, because floats are only ever copied as bytes; a file that is not a sieve
// checkpoint, is of another version, or does not fit the expected model is refused with
// a HINT saying what to do.
import { z } from 'zod';

import {
  readSafetensors,
  readSafetensorsHeader,
  type SafetensorsHeader,
  type Tensor,
  type TensorInput,
  tensorData,
  writeSafetensors,
  type WriteResult,
} from './safetensors';

export const CHECKPOINT_FORMAT = 'sieve-checkpoint';
export const CHECKPOINT_VERSION = '1';

const positive = z.int().positive();

/** The model config a checkpoint records. Loose: engine fields added later survive a round trip. */
export const CheckpointConfig = z.looseObject({
  family: z.enum(['gpt2', 'llama']),
  layers: positive,
  dim: positive,
  heads: positive,
  context: positive,
  vocab: positive,
  mlpHidden: positive,
  normEps: z.number().positive(),
  /** RoPE base for llama; null for gpt2 (learned positions), as in the engine's config. */
  ropeTheta: z.number().positive().nullable(),
  /** The engine's adapters (SLoRB, weight scales), or null; checkpoints written before they existed read as null. */
  adapters: z
    .strictObject({ scope: z.enum(['attn', 'ffn', 'all']), slorbK: positive.nullable(), scaleSegments: positive.nullable() })
    .nullable()
    .default(null),
});
export type CheckpointConfig = z.infer<typeof CheckpointConfig>;

/** One row of the engine's offset table: `params.subarray(offset, offset + size)` is the tensor. */
export const TensorEntry = z.strictObject({
  name: z
    .string()
    .min(1)
    .refine((n) => !n.startsWith('optim.') && !n.startsWith('mask.') && !n.startsWith('quant.'), 'the prefixes "optim.", "mask." and "quant." are reserved'),
  offset: z.int().nonnegative(),
  size: z.int().nonnegative(),
  shape: z.array(z.int().nonnegative()),
});
export type TensorEntry = z.infer<typeof TensorEntry>;

const Json = z.json();
type Json = z.infer<typeof Json>;

// z.custom rather than z.instanceof: the latter would narrow to Float32Array<ArrayBuffer>,
// refusing at the type level the Float32Array<ArrayBufferLike> the engine's copies
// (Model.read) and Buffer-backed arrays are typed as.
const f32 = z.custom<Float32Array>((value) => value instanceof Float32Array, { error: 'expected a Float32Array' });

const u8 = z.custom<Uint8Array>((value) => value instanceof Uint8Array, { error: 'expected a Uint8Array' });
const i32 = z.custom<Int32Array>((value) => value instanceof Int32Array, { error: 'expected an Int32Array' });
const u16 = z.custom<Uint16Array>((value) => value instanceof Uint16Array, { error: 'expected a Uint16Array' });

/** How a quantized model's weights were quantized (docs/checkpoint-format.md, "Quantized models"). */
export const QuantSettings = z.strictObject({
  bits: z.union([z.literal(2), z.literal(3), z.literal(4), z.literal(8)]),
  group: positive,
  symmetric: z.boolean(),
  method: z.enum(['rtn', 'gptq']),
});
export type QuantSettings = z.infer<typeof QuantSettings>;

/**
 * One quantized weight [rows, cols]: its codes (one byte each), per-group scales and zero points
 * ([rows, cols / group]), and the detached sparse set, 16-bit values at flat indices that replace
 * the dequantized weight there. The weight the model computes with is exactly
 * (code − zero) · scale, with the sparse values written over it.
 */
export const QuantizedTensor = z.strictObject({
  name: z.string(),
  codes: u8,
  scales: f32,
  zeros: u8,
  sparse: z.strictObject({ index: i32, values: u16 }),
});
export type QuantizedTensor = z.infer<typeof QuantizedTensor>;

export const CheckpointState = z.strictObject({
  config: CheckpointConfig,
  tensors: z.array(TensorEntry).min(1, 'the tensor table is empty'),
  /** Flat parameters; tensor i is params[offset_i, offset_i + size_i). */
  params: f32,
  adamM: f32.optional(),
  adamV: f32.optional(),
  /** Same layout as params; 1 = kept. Tensors whose mask is all ones are not stored. */
  masks: f32.optional(),
  step: z.int().nonnegative(),
  /** Sampler RNG state (JSON-able). */
  rng: Json,
  /** Data-loader position (JSON-able). */
  data: Json,
  extra: z.record(z.string(), z.string()).optional(),
  /** A quantized model: its settings and each quantized weight's payload; `params` hold the weights it computes with. */
  quant: z.strictObject({ settings: QuantSettings, tensors: z.array(QuantizedTensor) }).optional(),
});
export type CheckpointState = z.infer<typeof CheckpointState>;

/** Tensor-name prefixes of a quantized weight's payload. */
const QUANT_PARTS = { codes: 'quant.codes.', scales: 'quant.scales.', zeros: 'quant.zeros.', index: 'quant.sparse.index.', values: 'quant.sparse.values.' } as const;

/** The buffers stored besides `params`, with the tensor-name prefix each uses. */
const BUFFERS = [
  { key: 'adamM', prefix: 'optim.m.' },
  { key: 'adamV', prefix: 'optim.v.' },
  { key: 'masks', prefix: 'mask.' },
] as const;

const product = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Check the table against the buffers: sizes match shapes, slices lie inside and never overlap. */
function checkLayout(state: CheckpointState): void {
  const names = new Set<string>();
  for (const t of state.tensors) {
    if (names.has(t.name)) throw new Error(`tensor table lists "${t.name}" twice`);
    names.add(t.name);
    if (product(t.shape) !== t.size) {
      throw new Error(`tensor "${t.name}": shape [${t.shape.join(', ')}] has ${product(t.shape)} elements but size is ${t.size}`);
    }
    if (t.offset + t.size > state.params.length) {
      throw new Error(`tensor "${t.name}" [${t.offset}, ${t.offset + t.size}) lies outside params (${state.params.length} floats)`);
    }
  }
  const byOffset = [...state.tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const [a, b] = [byOffset[i - 1], byOffset[i]];
    if (b.offset < a.offset + a.size) throw new Error(`tensors "${a.name}" and "${b.name}" overlap in params`);
  }
  for (const { key } of BUFFERS) {
    const buffer = state[key];
    if (buffer && buffer.length !== state.params.length) {
      throw new Error(`${key} has ${buffer.length} floats but params has ${state.params.length}`);
    }
  }
}

function isAllOnes(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] !== 1) return false;
  return true;
}

/** Save a training state atomically. Returns the file's size and sha256 for the artifact store. */
export async function saveCheckpoint(path: string, state: CheckpointState): Promise<WriteResult> {
  const parsed = CheckpointState.safeParse(state);
  if (!parsed.success) throw new Error(`cannot save checkpoint ${path}: ${z.prettifyError(parsed.error)}`);
  checkLayout(state);

  const slice = (buffer: Float32Array, t: TensorEntry) => buffer.subarray(t.offset, t.offset + t.size);
  const tensors: TensorInput[] = state.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: slice(state.params, t) }));
  const contents = ['params'];
  for (const { key, prefix } of BUFFERS) {
    const buffer = state[key];
    if (!buffer) continue;
    contents.push(key);
    for (const t of state.tensors) {
      const data = slice(buffer, t);
      if (key === 'masks' && isAllOnes(data)) continue;
      tensors.push({ name: prefix + t.name, dtype: 'F32', shape: t.shape, data });
    }
  }
  if (state.quant) tensors.push(...quantTensors(state));
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    config: JSON.stringify(state.config),
    step: String(state.step),
    rng: JSON.stringify(state.rng),
    data: JSON.stringify(state.data),
    tensors: JSON.stringify(state.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape }))),
    paramCount: String(state.params.length),
    contents: contents.join(','),
  };
  for (const [key, value] of Object.entries(state.extra ?? {})) metadata[`extra.${key}`] = value;
  if (state.quant) metadata.quant = JSON.stringify(state.quant.settings);
  return writeSafetensors(path, tensors, metadata);
}

/** A quantized weight's payload as stored tensors, checked against the weight's shape. */
function quantTensors(state: CheckpointState): TensorInput[] {
  const { settings, tensors } = state.quant!;
  const table = new Map(state.tensors.map((t) => [t.name, t]));
  return tensors.flatMap((q) => {
    const t = table.get(q.name);
    if (!t || t.shape.length !== 2) throw new Error(`quantized tensor "${q.name}" is not a matrix of the checkpoint's table`);
    const [rows, cols] = t.shape;
    if (cols % settings.group !== 0) throw new Error(`quantized tensor "${q.name}": group ${settings.group} does not divide its ${cols} columns`);
    const groups = [rows, cols / settings.group];
    const k = q.sparse.index.length;
    if (q.codes.length !== t.size || q.scales.length !== rows * groups[1] || q.zeros.length !== rows * groups[1] || q.sparse.values.length !== k) {
      throw new Error(`quantized tensor "${q.name}": its codes, scales, zero points or sparse set do not fit [${rows}, ${cols}] in groups of ${settings.group}`);
    }
    return [
      { name: QUANT_PARTS.codes + q.name, dtype: 'U8', shape: t.shape, data: q.codes },
      { name: QUANT_PARTS.scales + q.name, dtype: 'F32', shape: groups, data: q.scales },
      { name: QUANT_PARTS.zeros + q.name, dtype: 'U8', shape: groups, data: q.zeros },
      { name: QUANT_PARTS.index + q.name, dtype: 'I32', shape: [k], data: q.sparse.index },
      { name: QUANT_PARTS.values + q.name, dtype: 'F16', shape: [k], data: q.sparse.values },
    ];
  });
}

export interface CheckpointInfo {
  config: CheckpointConfig;
  tensors: TensorEntry[];
  paramCount: number;
  contents: Set<'params' | 'adamM' | 'adamV' | 'masks'>;
  step: number;
  rng: Json;
  data: Json;
  extra: Record<string, string>;
  quant: QuantSettings | null;
}

const RESUME_HINT = 'HINT: resume with the recipe that wrote this checkpoint, or restart the stage without it.';

/** Parse and check the metadata of a sieve checkpoint; everything but the tensors. */
function parseInfo(path: string, metadata: Record<string, string>): CheckpointInfo {
  if (metadata.format !== CHECKPOINT_FORMAT) {
    const found = metadata.format === undefined ? 'no "format"' : `format "${metadata.format}"`;
    throw new Error(
      `${path} is not a sieve checkpoint (its metadata has ${found}). ` +
        'HINT: a Hugging Face GPT-2 or LLaMA checkpoint folder is brought in with importHf (kernels/hf/).',
    );
  }
  if (metadata.version !== CHECKPOINT_VERSION) {
    throw new Error(
      `${path} is a sieve checkpoint of version ${metadata.version ?? '(none)'}, this build reads version ${CHECKPOINT_VERSION}. ` +
        'HINT: use the sieve version that wrote it (recorded with the run), or restart the stage.',
    );
  }
  const field = <T>(key: string, schema: z.ZodType<T>): T => {
    const raw = metadata[key];
    if (raw === undefined) throw new Error(`${path}: checkpoint metadata lacks "${key}"`);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new Error(`${path}: checkpoint metadata "${key}" is not valid JSON`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new Error(`${path}: checkpoint metadata "${key}" is invalid: ${z.prettifyError(parsed.error)}`);
    return parsed.data;
  };
  const contents = new Set(metadata.contents?.split(',') ?? []);
  const known = ['params', 'adamM', 'adamV', 'masks'];
  if (!contents.has('params') || [...contents].some((c) => !known.includes(c))) {
    throw new Error(`${path}: checkpoint metadata "contents" is "${metadata.contents}", expected params[,adamM][,adamV][,masks]`);
  }
  const extra: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) if (key.startsWith('extra.')) extra[key.slice(6)] = value;
  return {
    config: field('config', CheckpointConfig),
    tensors: field('tensors', z.array(TensorEntry)),
    paramCount: field('paramCount', z.int().nonnegative()),
    contents: contents as CheckpointInfo['contents'],
    step: field('step', z.int().nonnegative()),
    rng: field('rng', Json),
    data: field('data', Json),
    extra,
    quant: metadata.quant === undefined ? null : field('quant', QuantSettings),
  };
}

/** What a loaded checkpoint must match: the model being resumed (and, once it exists, its offset table). */
export interface CheckpointExpectation {
  config?: Partial<CheckpointConfig>;
  tensors?: readonly TensorEntry[];
}

function checkExpectation(path: string, info: CheckpointInfo, expect: CheckpointExpectation): void {
  for (const [key, want] of Object.entries(expect.config ?? {})) {
    const have = (info.config as Record<string, unknown>)[key];
    if (JSON.stringify(have) !== JSON.stringify(want)) {
      throw new Error(`${path} was saved for a model with ${key} = ${JSON.stringify(have)}, this run's model has ${key} = ${JSON.stringify(want)}. ${RESUME_HINT}`);
    }
  }
  if (expect.tensors) {
    const have = new Map(info.tensors.map((t) => [t.name, t]));
    for (const want of expect.tensors) {
      const t = have.get(want.name);
      if (!t) throw new Error(`${path} has no tensor "${want.name}", which this run's model needs. ${RESUME_HINT}`);
      if (t.offset !== want.offset || t.size !== want.size || JSON.stringify(t.shape) !== JSON.stringify(want.shape)) {
        throw new Error(
          `${path}: tensor "${want.name}" is [${t.shape.join(', ')}] at offset ${t.offset}, ` +
            `this run's model lays it out as [${want.shape.join(', ')}] at offset ${want.offset}. ${RESUME_HINT}`,
        );
      }
    }
    if (info.tensors.length !== expect.tensors.length) {
      const wanted = new Set(expect.tensors.map((t) => t.name));
      const extra = info.tensors.find((t) => !wanted.has(t.name));
      throw new Error(`${path} has tensor "${extra?.name}", which this run's model does not. ${RESUME_HINT}`);
    }
  }
}

/** Read a checkpoint's metadata (config, step, table, RNG, data position) without its tensors. */
export async function readCheckpointInfo(path: string): Promise<CheckpointInfo & { header: SafetensorsHeader }> {
  const header = await readSafetensorsHeader(path);
  return { ...parseInfo(path, header.metadata), header };
}

/** Copy a stored F32 tensor's bytes into its slice of a flat buffer (bytes, never numbers: bit-exact). */
function place(path: string, target: Float32Array, entry: TensorEntry, tensor: Tensor): void {
  if (tensor.dtype !== 'F32' || JSON.stringify(tensor.shape) !== JSON.stringify(entry.shape)) {
    throw new Error(
      `${path}: tensor "${tensor.name}" is ${tensor.dtype} [${tensor.shape.join(', ')}], ` +
        `the checkpoint's table says F32 [${entry.shape.join(', ')}]. HINT: the file was edited or written by another tool.`,
    );
  }
  new Uint8Array(target.buffer, target.byteOffset + entry.offset * 4, entry.size * 4).set(tensor.bytes);
}

/** Load a checkpoint, optionally checking it fits the model being resumed. */
export async function loadCheckpoint(path: string, expect: CheckpointExpectation = {}): Promise<CheckpointState> {
  const file = await readSafetensors(path);
  const info = parseInfo(path, file.metadata);
  checkExpectation(path, info, expect);
  const state: CheckpointState = {
    config: info.config,
    tensors: info.tensors,
    params: new Float32Array(info.paramCount),
    step: info.step,
    rng: info.rng,
    data: info.data,
    ...(Object.keys(info.extra).length > 0 ? { extra: info.extra } : {}),
  };
  for (const { key } of BUFFERS) {
    if (info.contents.has(key)) state[key] = new Float32Array(info.paramCount);
  }
  try {
    checkLayout(state);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  }
  state.masks?.fill(1);

  const expected = new Map<string, { target: Float32Array; entry: TensorEntry; optional: boolean }>();
  for (const entry of info.tensors) {
    expected.set(entry.name, { target: state.params, entry, optional: false });
    for (const { key, prefix } of BUFFERS) {
      const target = state[key];
      if (target) expected.set(prefix + entry.name, { target, entry, optional: key === 'masks' });
    }
  }
  const quantParts = new Map<string, Tensor>();
  for (const tensor of file.tensors) {
    if (info.quant && tensor.name.startsWith('quant.')) {
      quantParts.set(tensor.name, tensor);
      continue;
    }
    const slot = expected.get(tensor.name);
    if (!slot) throw new Error(`${path}: unexpected tensor "${tensor.name}" (not in the checkpoint's table)`);
    place(path, slot.target, slot.entry, tensor);
    expected.delete(tensor.name);
  }
  for (const [name, slot] of expected) {
    if (!slot.optional) throw new Error(`${path}: tensor "${name}" is missing. HINT: the file was edited or truncated; restart the stage.`);
  }
  if (info.quant) state.quant = { settings: info.quant, tensors: readQuantTensors(path, quantParts) };
  return state;
}

/** The quantized weights' payloads, by weight name, from their stored parts (every part present, with its dtype). */
function readQuantTensors(path: string, parts: Map<string, Tensor>): QuantizedTensor[] {
  const names = [...parts.keys()].filter((n) => n.startsWith(QUANT_PARTS.codes)).map((n) => n.slice(QUANT_PARTS.codes.length));
  const part = <D extends 'U8' | 'F32' | 'I32' | 'F16'>(prefix: string, name: string, dtype: D) => {
    const t = parts.get(prefix + name);
    if (!t || t.dtype !== dtype) throw new Error(`${path}: the quantized weight "${name}" lacks its ${dtype} tensor "${prefix + name}". HINT: the file was edited or truncated.`);
    parts.delete(prefix + name);
    // A copy, so the payload does not pin the whole file's bytes.
    return tensorData(t as Tensor & { dtype: D }).slice();
  };
  const tensors = names.map((name) => ({
    name,
    codes: part(QUANT_PARTS.codes, name, 'U8') as Uint8Array,
    scales: part(QUANT_PARTS.scales, name, 'F32') as Float32Array,
    zeros: part(QUANT_PARTS.zeros, name, 'U8') as Uint8Array,
    sparse: { index: part(QUANT_PARTS.index, name, 'I32') as Int32Array, values: part(QUANT_PARTS.values, name, 'F16') as Uint16Array },
  }));
  const stray = [...parts.keys()][0];
  if (stray !== undefined) throw new Error(`${path}: unexpected tensor "${stray}" (not part of a quantized weight)`);
  return tensors;
}
