// Calibration windows: what a quantize stage measures its model on (GPTQ's Hessians, the
// sensitivities, ReQuant's choices). `windows` windows of the model's context drawn from the
// training split by the seeded sampler, from a seed of their own (so they are not the first batch
// a training stage with the same seed draws); with their sha256, for the keys of derived results.
import { createHash } from 'node:crypto';

import { BatchSampler } from '../data/sampler';

export interface Calibration {
  /** [windows, context] */
  inputs: Int32Array;
  /** [windows, context]: inputs shifted by one. */
  targets: Int32Array;
  windows: number;
  context: number;
  /** sha256 of the inputs and targets, little-endian int32. */
  sha256: string;
}

/** A fixed offset that separates the calibration stream from the training batches of the same seed. */
const CALIBRATION_STREAM = 0x5eedca1b;

export function calibrationWindows(train: Int32Array, windows: number, context: number, seed: number): Calibration {
  const { inputs, targets } = BatchSampler.create(train, { batch: windows, context, seed: (seed ^ CALIBRATION_STREAM) >>> 0 }).next();
  const sha256 = createHash('sha256')
    .update(new Uint8Array(inputs.buffer, inputs.byteOffset, inputs.byteLength))
    .update(new Uint8Array(targets.buffer, targets.byteOffset, targets.byteLength))
    .digest('hex');
  return { inputs, targets, windows, context, sha256 };
}

/** The windows [first, first + count) of a calibration set, as a forward pass takes them. */
export function calibrationSlice(c: Calibration, first: number, count: number): { inputs: Int32Array; targets: Int32Array } {
  const T = c.context;
  return { inputs: c.inputs.subarray(first * T, (first + count) * T), targets: c.targets.subarray(first * T, (first + count) * T) };
}
