// A safetensors reader and writer, following the format of huggingface/safetensors exactly:
//
//   [u64 little-endian N][N bytes of UTF-8 JSON header][byte buffer]
//
// The header maps each tensor name to { dtype, shape, data_offsets: [begin, end) } (offsets
// relative to the byte buffer), plus an optional "__metadata__" of string → string. Tensors
// are little-endian, row-major, and tile the byte buffer exactly: no holes, no overlaps,
// nothing after the last one. Writers pad the header with spaces to a multiple of 8 bytes
// so the buffer starts aligned.
//
// Promises: reading validates all of the above and names the file and the tensor at fault;
// a file is read into one Buffer and tensors are views into it (copied only when a
// third-party file leaves one misaligned for its element type). Writing streams the
// tensors to a temporary file beside the target, fsyncs it and renames it into place, so
// a crash never leaves a half-written file under the final name.
import { createHash, randomBytes } from 'node:crypto';
import { constants as bufferConstants } from 'node:buffer';
import { open, rename, unlink } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';

import { f16BitsToF32Bits } from './half';

/** Element sizes in bytes of every dtype the format defines. */
export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

/** The reference implementation refuses headers above 100 MB; so do we, before allocating them. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** [begin, end) relative to the byte buffer after the header. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  path: string;
  /** N, the header's length in bytes (padding included). */
  headerBytes: number;
  /** Where the byte buffer starts in the file: 8 + N. */
  dataStart: number;
  fileBytes: number;
  metadata: Record<string, string>;
  /** In file order (ascending offsets). */
  tensors: TensorInfo[];
}

export interface Tensor extends TensorInfo {
  /** The tensor's bytes: a view into the file's buffer. */
  bytes: Uint8Array;
}

export interface SafetensorsFile extends Omit<SafetensorsHeader, 'tensors'> {
  /** The whole file; every tensor's `bytes` is a view into it. */
  buffer: Buffer;
  /** In file order (ascending offsets). */
  tensors: Tensor[];
  /** The same tensors by name. */
  byName: Map<string, Tensor>;
}

function fail(path: string, message: string): never {
  throw new Error(`${path}: ${message}`);
}

function assertLittleEndianHost(): void {
  // Typed-array views use the host's byte order; safetensors is little-endian.
  if (endianness() !== 'LE') throw new Error('safetensors tensors are little-endian; this host is big-endian');
}

function isDtype(value: unknown): value is Dtype {
  return typeof value === 'string' && Object.hasOwn(DTYPE_SIZES, value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Elements in a tensor of this shape, or undefined when it would not be a safe integer. */
function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** Read and validate N: the header must fit in the file and under the format's limit. */
function headerLength(path: string, prefix: Buffer, fileBytes: number): number {
  if (fileBytes < 8) fail(path, `truncated: ${fileBytes} bytes, too short for the 8-byte header length`);
  const n = prefix.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) fail(path, `header length ${n} exceeds the format's limit of ${MAX_HEADER_BYTES} bytes`);
  if (n > BigInt(fileBytes - 8)) {
    fail(path, `truncated: the header claims ${n} bytes but only ${fileBytes - 8} follow the length field`);
  }
  if (n < 2n) fail(path, `header length ${n} is too short for a JSON object`);
  return Number(n);
}

/** Parse and check the JSON header against a byte buffer of `dataBytes` bytes. */
function parseHeader(path: string, headerBytes: Buffer, dataBytes: number): Pick<SafetensorsHeader, 'metadata' | 'tensors'> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    fail(path, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) fail(path, 'header does not start with "{"');
  // Starting with "{" and parsing as JSON means it is an object.
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch (err) {
    fail(path, `header is not valid JSON (${(err as Error).message})`);
  }

  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, '__metadata__ is not an object');
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') fail(path, `__metadata__ value for "${key}" is not a string`);
        metadata[key] = value;
      }
      continue;
    }
    const where = `tensor "${name}"`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(path, `${where}: entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDtype(dtype)) fail(path, `${where}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(path, `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      fail(path, `${where}: data_offsets ${JSON.stringify(offsets)} is not [begin, end] with 0 ≤ begin ≤ end`);
    }
    const elements = elementCount(shape);
    const needed = elements === undefined ? undefined : elements * DTYPE_SIZES[dtype];
    const [begin, end] = offsets as [number, number];
    if (needed === undefined || needed !== end - begin) {
      fail(path, `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${needed ?? 'too many'} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    tensors.push({ name, dtype, shape: shape as number[], dataOffsets: [begin, end] });
  }

  // The tensors must tile [0, dataBytes) exactly. Zero-byte tensors sort before a
  // non-empty one at the same offset and take no room.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let cursor = 0;
  let previous: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < cursor) {
      fail(path, `tensor "${t.name}" [${begin}, ${end}) overlaps tensor "${previous!.name}" [${previous!.dataOffsets[0]}, ${previous!.dataOffsets[1]})`);
    }
    if (begin > cursor) {
      const after = previous ? `after tensor "${previous.name}"` : 'at the start of the byte buffer';
      fail(path, `hole of ${begin - cursor} bytes ${after}, before tensor "${t.name}" at ${begin}`);
    }
    cursor = end;
    previous = t;
  }
  if (cursor > dataBytes) {
    fail(path, `truncated: tensor "${previous!.name}" ends at byte ${cursor} of the buffer but the file holds only ${dataBytes}`);
  }
  if (cursor < dataBytes) {
    const last = previous ? `the last tensor "${previous.name}"` : 'the header (no tensors)';
    fail(path, `${dataBytes - cursor} unused bytes after ${last}`);
  }
  return { metadata, tensors };
}

/** Read and validate only the header (tensor table and metadata), not the tensors. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const file = await openForRead(path);
  try {
    const { size } = await file.stat();
    const prefix = Buffer.alloc(8);
    await file.read(prefix, 0, Math.min(8, size), 0);
    const n = headerLength(path, prefix, size);
    const header = Buffer.alloc(n);
    await file.read(header, 0, n, 8);
    return { path, headerBytes: n, dataStart: 8 + n, fileBytes: size, ...parseHeader(path, header, size - 8 - n) };
  } finally {
    await file.close();
  }
}

async function openForRead(path: string) {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new Error(`cannot open safetensors file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Read a whole file into one buffer, validate it, and expose every tensor as a view. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  assertLittleEndianHost();
  const file = await openForRead(path);
  let buffer: Buffer;
  try {
    const { size } = await file.stat();
    if (size > bufferConstants.MAX_LENGTH) fail(path, `${size} bytes is more than one Buffer can hold`);
    // allocUnsafeSlow: an ArrayBuffer of our own at offset 0 (not a slice of the small-
    // buffer pool), so element alignment inside the file is alignment in memory.
    buffer = Buffer.allocUnsafeSlow(size);
    const CHUNK = 1 << 30;
    for (let at = 0; at < size; ) {
      const { bytesRead } = await file.read(buffer, at, Math.min(CHUNK, size - at), at);
      if (bytesRead === 0) fail(path, `file shrank while being read (${at} of ${size} bytes)`);
      at += bytesRead;
    }
  } finally {
    await file.close();
  }
  const n = headerLength(path, buffer, buffer.length);
  const dataStart = 8 + n;
  const header = parseHeader(path, buffer.subarray(8, dataStart), buffer.length - dataStart);
  const tensors = header.tensors.map((t) => ({
    ...t,
    bytes: buffer.subarray(dataStart + t.dataOffsets[0], dataStart + t.dataOffsets[1]),
  }));
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const { metadata } = header;
  return { path, headerBytes: n, dataStart, fileBytes: buffer.length, metadata, tensors, buffer, byName };
}

type TypedArrayFor = {
  F64: Float64Array;
  F32: Float32Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
  /** Raw half-precision bits; `toFloat32` converts them. */
  F16: Uint16Array;
  BF16: Uint16Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
};

const CONSTRUCTORS = {
  F64: Float64Array,
  F32: Float32Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
} as const;

/** The tensor's elements as their natural typed array: a view when aligned, otherwise a copy. */
export function tensorData<D extends Dtype>(tensor: Tensor & { dtype: D }): TypedArrayFor[D] {
  assertLittleEndianHost();
  const Ctor = CONSTRUCTORS[tensor.dtype];
  const { bytes } = tensor;
  // `new Uint8Array(bytes)` copies into a fresh buffer (Buffer#slice would only re-view it).
  const aligned = bytes.byteOffset % Ctor.BYTES_PER_ELEMENT === 0 ? bytes : new Uint8Array(bytes);
  return new Ctor(aligned.buffer as ArrayBuffer, aligned.byteOffset, aligned.byteLength / Ctor.BYTES_PER_ELEMENT) as TypedArrayFor[D];
}

/**
 * A floating-point tensor as float32, for importing weights. F32 is a view when aligned;
 * F16 and BF16 widen exactly; F64 rounds to nearest.
 */
export function toFloat32(tensor: Tensor): Float32Array {
  switch (tensor.dtype) {
    case 'F32':
      return tensorData(tensor as Tensor & { dtype: 'F32' });
    case 'F64':
      return Float32Array.from(tensorData(tensor as Tensor & { dtype: 'F64' }));
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const half = tensorData(tensor as Tensor & { dtype: 'BF16' });
      const bits = new Uint32Array(half.length);
      for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
      return new Float32Array(bits.buffer);
    }
    case 'F16': {
      const half = tensorData(tensor as Tensor & { dtype: 'F16' });
      const bits = new Uint32Array(half.length);
      for (let i = 0; i < half.length; i++) bits[i] = f16BitsToF32Bits(half[i]);
      return new Float32Array(bits.buffer);
    }
    default:
      throw new Error(`tensor "${tensor.name}" has dtype ${tensor.dtype}, not a float type convertible to F32 (F32, F16, BF16, F64)`);
  }
}

export interface TensorInput {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  /** The dtype's typed array (Uint16Array holds F16/BF16 bits), or raw little-endian bytes as a Uint8Array. */
  data: ArrayBufferView;
}

export interface WriteResult {
  path: string;
  bytes: number;
  /** sha256 (hex) of the file as written, for content-addressed storage. */
  sha256: string;
}

/** The header JSON, padded with spaces to a multiple of 8 bytes. Keys keep the given order. */
function encodeHeader(tensors: readonly TensorInput[], metadata: Record<string, string> | undefined): Buffer {
  const entries: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) entries.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const t of tensors) {
    const size = t.data.byteLength;
    entries.push(`${JSON.stringify(t.name)}:${JSON.stringify({ dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] })}`);
    offset += size;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20);
  json.copy(padded);
  return padded;
}

function checkInputs(path: string, tensors: readonly TensorInput[], metadata: Record<string, string> | undefined): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = `tensor "${t.name}"`;
    if (t.name.length === 0) fail(path, 'a tensor name cannot be empty');
    if (t.name === METADATA_KEY) fail(path, `"${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (seen.has(t.name)) fail(path, `${where} is given twice`);
    seen.add(t.name);
    if (!isDtype(t.dtype)) fail(path, `${where}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!t.shape.every((d) => isCount(d))) fail(path, `${where}: shape [${t.shape.join(', ')}] is not a list of non-negative integers`);
    const Ctor = CONSTRUCTORS[t.dtype];
    if (!(t.data instanceof Ctor) && !(t.data instanceof Uint8Array)) {
      fail(path, `${where}: ${t.dtype} data must be a ${Ctor.name} or raw bytes in a Uint8Array, got ${t.data.constructor.name}`);
    }
    const elements = elementCount(t.shape);
    const needed = elements === undefined ? undefined : elements * DTYPE_SIZES[t.dtype];
    if (needed !== t.data.byteLength) {
      fail(path, `${where}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${needed ?? 'too many'} bytes, data has ${t.data.byteLength}`);
    }
  }
  for (const [key, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== 'string') fail(path, `metadata "${key}" must be a string, got ${typeof value}`);
  }
}

/**
 * Write tensors (in the given order) and metadata to `path` atomically: stream to a
 * temporary file in the same directory, fsync, rename over `path`, fsync the directory.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorInput[],
  metadata?: Record<string, string>,
): Promise<WriteResult> {
  assertLittleEndianHost();
  checkInputs(path, tensors, metadata);
  const header = encodeHeader(tensors, metadata);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));

  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const hash = createHash('sha256');
  let bytes = 0;
  let file;
  try {
    file = await open(temp, 'wx');
  } catch (err) {
    throw new Error(`cannot write ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'} creating ${temp})`, { cause: err });
  }
  try {
    const put = async (chunk: Uint8Array) => {
      // Bounded chunks: one write call is limited to 2 GiB.
      const CHUNK = 1 << 30;
      for (let at = 0; at < chunk.length; ) {
        const piece = chunk.subarray(at, Math.min(at + CHUNK, chunk.length));
        const { bytesWritten } = await file!.write(piece, 0, piece.length, bytes);
        hash.update(piece.subarray(0, bytesWritten));
        at += bytesWritten;
        bytes += bytesWritten;
      }
    };
    await put(prefix);
    await put(header);
    for (const t of tensors) await put(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    await file.sync();
    await file.close();
    file = undefined;
    await rename(temp, path);
  } catch (err) {
    await file?.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw new Error(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  // Make the rename itself durable; some file systems cannot fsync a directory, which is fine.
  const dir = await open(dirname(path), 'r').catch(() => undefined);
  await dir?.sync().catch(() => {});
  await dir?.close();
  return { path, bytes, sha256: hash.digest('hex') };
}
