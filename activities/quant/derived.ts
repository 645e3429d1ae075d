// Results a quantize stage derives from content alone — a sensitivity report, one ReQuant round's
// PQI — kept in the artifact store under a key that hashes everything they depend on (the model's
// and the perturbation's bytes, the calibration windows, the settings, the code version). A second
// stage that needs the same result, or a retry of a killed one, reads it instead of recomputing.
import { createHash } from 'node:crypto';

import { readSafetensors, toFloat32, writeSafetensors, type TensorInput } from '../../kernels/safetensors';
import type { ComputeDeps } from '../compute';
import { codeVersion } from '../store/provenance';
import { writeToStore } from '../train/stage';

/** sha256 over a JSON description and the bytes of some arrays, in order. */
export function derivedKey(description: Record<string, unknown>, arrays: readonly ArrayBufferView[] = []): string {
  const h = createHash('sha256').update(JSON.stringify({ ...description, code: codeVersion() }));
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
}

/** sha256 of arrays' bytes, in order. */
export function bytesSha256(arrays: readonly ArrayBufferView[]): string {
  const h = createHash('sha256');
  for (const a of arrays) h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  return h.digest('hex');
}

export interface DerivedTensors {
  /** Float32 tensors by name. */
  tensors: Map<string, Float32Array>;
  /** JSON metadata. */
  meta: unknown;
  sha256: string;
  bytes: number;
  /** Whether it came from the store rather than `compute`. */
  reused: boolean;
}

/**
 * The result stored under `key`, or `compute`'s, which is then stored (a safetensors file of
 * float32 tensors with its metadata as JSON) and indexed under `key`.
 */
export async function derivedTensors(
  deps: ComputeDeps,
  key: string,
  compute: () => Promise<{ tensors: Map<string, Float32Array>; meta: unknown }>,
): Promise<DerivedTensors> {
  const found = await deps.store.findDerived(key);
  if (found) {
    const file = await readSafetensors(found.path);
    const tensors = new Map(file.tensors.map((t) => [t.name, toFloat32(t)]));
    return { tensors, meta: JSON.parse(file.metadata.derived ?? 'null'), sha256: found.sha256, bytes: found.bytes, reused: true };
  }
  const result = await compute();
  const inputs: TensorInput[] = [...result.tensors].map(([name, data]) => ({ name, dtype: 'F32', shape: [data.length], data }));
  const stored = await writeToStore(deps, (file) => writeSafetensors(file, inputs, { derived: JSON.stringify(result.meta) }));
  await deps.store.recordDerived(key, stored.sha256);
  return { ...result, sha256: stored.sha256, bytes: stored.bytes, reused: false };
}
