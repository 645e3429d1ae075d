// safetensors: round-trips of every dtype, the exact byte layout, half-precision widening,
// views vs copies, and one clear error (file + tensor) for each kind of malformed file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  readSafetensors,
  readSafetensorsHeader,
  type Tensor,
  tensorData,
  toFloat32,
  writeSafetensors,
} from '../../kernels/safetensors';

const dir = mkdtempSync(join(tmpdir(), 'sieve-safetensors-'));
let fileNo = 0;
const nextPath = () => join(dir, `t${fileNo++}.safetensors`);

/** A file from a header (object or raw string), data bytes, and optionally a forged length field. */
function rawFile(header: object | string | Buffer, data: Uint8Array = new Uint8Array(0), length?: bigint): string {
  const json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(json.length));
  const path = nextPath();
  writeFileSync(path, Buffer.concat([prefix, json, data]));
  return path;
}

async function rejects(path: string, message: string) {
  await assert.rejects(readSafetensors(path), { message: `${path}: ${message}` });
}

describe('writeSafetensors / readSafetensors', () => {
  it('round-trips every dtype, scalars and empty tensors, in order, with metadata', async () => {
    const tensors = [
      { name: 'f32', dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -0, NaN, Infinity, 1e-45, -3.5]) },
      { name: 'f64', dtype: 'F64', shape: [2], data: Float64Array.from([Math.PI, -1e300]) },
      { name: 'f16', dtype: 'F16', shape: [3], data: Uint16Array.from([0x3c00, 0xc000, 0x7c00]) },
      { name: 'bf16', dtype: 'BF16', shape: [1], data: Uint16Array.from([0x3f80]) },
      { name: 'i64', dtype: 'I64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) },
      { name: 'u64', dtype: 'U64', shape: [1], data: BigUint64Array.from([2n ** 64n - 1n]) },
      { name: 'i32', dtype: 'I32', shape: [], data: Int32Array.from([-7]) },
      { name: 'u32', dtype: 'U32', shape: [1], data: Uint32Array.from([4294967295]) },
      { name: 'i16', dtype: 'I16', shape: [1], data: Int16Array.from([-32768]) },
      { name: 'u16', dtype: 'U16', shape: [1], data: Uint16Array.from([65535]) },
      { name: 'i8', dtype: 'I8', shape: [2], data: Int8Array.from([-128, 127]) },
      { name: 'u8', dtype: 'U8', shape: [2], data: Uint8Array.from([0, 255]) },
      { name: 'bool', dtype: 'BOOL', shape: [3], data: Uint8Array.from([1, 0, 1]) },
      { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      { name: 'blocks.0.attn.qkv.weight', dtype: 'F32', shape: [1, 1], data: Float32Array.from([2]) },
    ] as const;
    const path = nextPath();
    const written = await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode ✓' });
    const fileBytes = readFileSync(path);
    assert.equal(written.bytes, fileBytes.length);
    assert.equal(written.sha256, createHash('sha256').update(fileBytes).digest('hex'));
    assert.equal(fileBytes.readBigUInt64LE(0) % 8n, 0n, 'header padded to 8 bytes');

    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { format: 'pt', note: 'ünïcode ✓' });
    assert.equal(file.dataStart % 8, 0);
    // File order is the given order, except that the zero-byte tensor sorts first at its offset.
    assert.deepEqual(file.tensors.map((t) => t.name).filter((n) => n !== 'empty'), tensors.map((t) => t.name).filter((n) => n !== 'empty'));
    for (const t of tensors) {
      const got = file.byName.get(t.name)!;
      assert.equal(got.dtype, t.dtype);
      assert.deepEqual(got.shape, t.shape);
      const data = tensorData(got);
      assert.equal(data.constructor, t.dtype === 'BOOL' ? Uint8Array : t.data.constructor, t.name);
      assert.deepEqual(Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), t.name);
    }
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left behind');
  });

  it('writes the exact layout of the format', async () => {
    const path = nextPath();
    await writeSafetensors(path, [
      { name: 'a', dtype: 'U8', shape: [2], data: Uint8Array.from([7, 8]) },
      { name: 'b', dtype: 'I32', shape: [1], data: Int32Array.from([1]) },
    ], { k: 'v' });
    const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    const expected = Buffer.concat([Buffer.alloc(8), Buffer.from(padded), Buffer.from([7, 8, 1, 0, 0, 0])]);
    expected.writeBigUInt64LE(BigInt(padded.length));
    assert.deepEqual(readFileSync(path), expected);
  });

  it('views aligned tensors in the file buffer and copies misaligned ones', async () => {
    const path = nextPath();
    await writeSafetensors(path, [
      { name: 'aligned', dtype: 'F32', shape: [2], data: Float32Array.from([1.5, 2.5]) },
      { name: 'odd', dtype: 'U8', shape: [1], data: Uint8Array.from([9]) },
      { name: 'misaligned', dtype: 'F32', shape: [2], data: Float32Array.from([3.5, -4.5]) },
    ]);
    const file = await readSafetensors(path);
    const aligned = tensorData(file.byName.get('aligned')! as Tensor & { dtype: 'F32' });
    assert.equal(aligned.buffer, file.buffer.buffer, 'a view, not a copy');
    const misaligned = toFloat32(file.byName.get('misaligned')!);
    assert.notEqual(misaligned.buffer, file.buffer.buffer);
    assert.deepEqual([...misaligned], [3.5, -4.5]);
  });

  it('widens F16, BF16 and F64 to float32 exactly', async () => {
    const f16 = [0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x3555];
    const f16Values = [1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -0, Infinity, -Infinity, 0.333251953125];
    // Exactly representable in bfloat16 (low 16 float32 bits zero), including a float32 subnormal.
    const bf16Values = [1, -2.5, 3.140625, 2 ** -130, -0];
    const bf16 = bf16Values.map((v) => new Uint32Array(Float32Array.from([v]).buffer)[0] >>> 16);
    const path = nextPath();
    await writeSafetensors(path, [
      { name: 'h', dtype: 'F16', shape: [f16.length + 1], data: Uint16Array.from([...f16, 0x7e01]) },
      { name: 'b', dtype: 'BF16', shape: [bf16.length], data: Uint16Array.from(bf16) },
      { name: 'd', dtype: 'F64', shape: [2], data: Float64Array.from([0.1, 1e300]) },
      { name: 'i', dtype: 'I32', shape: [1], data: Int32Array.from([1]) },
    ]);
    const file = await readSafetensors(path);
    const h = toFloat32(file.byName.get('h')!);
    assert.deepEqual([...h.subarray(0, f16.length)], f16Values);
    assert.equal(new Uint32Array(h.buffer)[f16.length], 0x7fc02000, 'NaN payload kept');
    assert.deepEqual([...toFloat32(file.byName.get('b')!)], bf16Values);
    assert.deepEqual([...toFloat32(file.byName.get('d')!)], [Math.fround(0.1), Infinity]);
    assert.throws(() => toFloat32(file.byName.get('i')!), { message: 'tensor "i" has dtype I32, not a float type convertible to F32 (F32, F16, BF16, F64)' });
  });

  it('reads the header alone', async () => {
    const path = nextPath();
    await writeSafetensors(path, [{ name: 'w', dtype: 'F32', shape: [3, 2], data: new Float32Array(6) }], { a: 'b' });
    const header = await readSafetensorsHeader(path);
    assert.deepEqual(header.tensors, [{ name: 'w', dtype: 'F32', shape: [3, 2], dataOffsets: [0, 24] }]);
    assert.deepEqual(header.metadata, { a: 'b' });
    assert.equal(header.fileBytes, header.dataStart + 24);
  });
});

describe('malformed files are rejected with the file and tensor named', () => {
  const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });

  it('truncation and bad length fields', async () => {
    const tiny = nextPath();
    writeFileSync(tiny, Buffer.from([1, 2, 3]));
    await rejects(tiny, 'truncated: 3 bytes, too short for the 8-byte header length');
    await rejects(rawFile({}, undefined, 100n), 'truncated: the header claims 100 bytes but only 2 follow the length field');
    await rejects(rawFile({}, undefined, 2n ** 40n), "header length 1099511627776 exceeds the format's limit of 100000000 bytes");
    await rejects(rawFile({ w: f32(0, 8) }, new Uint8Array(4)), 'truncated: tensor "w" ends at byte 8 of the buffer but the file holds only 4');
    await rejects(rawFile({ w: f32(0, 8) }, new Uint8Array(12)), '4 unused bytes after the last tensor "w"');
    await assert.rejects(readSafetensors(join(dir, 'absent.safetensors')), {
      message: `cannot open safetensors file ${join(dir, 'absent.safetensors')} (ENOENT)`,
    });
  });

  it('headers that are not a JSON object', async () => {
    await rejects(rawFile(' {}'), 'header does not start with "{"');
    await rejects(rawFile('[]'), 'header does not start with "{"');
    await rejects(rawFile('{"w": '), 'header is not valid JSON (Unexpected end of JSON input)');
    await rejects(rawFile(Buffer.from([0x7b, 0xff, 0x7d])), 'header is not valid UTF-8');
  });

  it('bad entries', async () => {
    await rejects(rawFile({ w: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, new Uint8Array(16)), 'tensor "w": unknown dtype "F128"');
    await rejects(rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), 'tensor "w": shape [-1] is not a list of non-negative integers');
    await rejects(rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4)), 'tensor "w": data_offsets [4,0] is not [begin, end] with 0 ≤ begin ≤ end');
    await rejects(rawFile({ w: f32(0, 8, [3]) }, new Uint8Array(8)), 'tensor "w": shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8');
    await rejects(rawFile({ __metadata__: { step: 3 } }), '__metadata__ value for "step" is not a string');
  });

  it('overlaps and holes', async () => {
    await rejects(rawFile({ a: f32(0, 8), b: f32(4, 12) }, new Uint8Array(12)), 'tensor "b" [4, 12) overlaps tensor "a" [0, 8)');
    await rejects(rawFile({ a: f32(0, 4), b: f32(8, 12) }, new Uint8Array(12)), 'hole of 4 bytes after tensor "a", before tensor "b" at 8');
    await rejects(rawFile({ b: f32(4, 8) }, new Uint8Array(8)), 'hole of 4 bytes at the start of the byte buffer, before tensor "b" at 4');
  });
});

describe('writer input checks', () => {
  it('rejects inconsistent tensors before creating any file', async () => {
    const path = join(dir, 'never.safetensors');
    const f = (name: string, data: ArrayBufferView, shape = [2]) => ({ name, dtype: 'F32' as const, shape, data });
    await assert.rejects(writeSafetensors(path, [f('w', new Float32Array(2)), f('w', new Float32Array(2))]), { message: `${path}: tensor "w" is given twice` });
    await assert.rejects(writeSafetensors(path, [f('w', new Float64Array(2))]), { message: `${path}: tensor "w": F32 data must be a Float32Array or raw bytes in a Uint8Array, got Float64Array` });
    await assert.rejects(writeSafetensors(path, [f('w', new Float32Array(3))]), { message: `${path}: tensor "w": shape [2] of F32 needs 8 bytes, data has 12` });
    await assert.rejects(writeSafetensors(path, [f('__metadata__', new Float32Array(2))]), { message: `${path}: "__metadata__" is reserved and cannot name a tensor` });
    await assert.rejects(writeSafetensors(join(dir, 'no-such-dir', 'x.safetensors'), []), { message: /^cannot write .*no-such-dir\/x\.safetensors \(ENOENT creating / });
    assert.deepEqual(readdirSync(dir).filter((name) => name.startsWith('never') || name.endsWith('.tmp')), []);
  });
});
