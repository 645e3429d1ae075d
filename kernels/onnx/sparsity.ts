// kernels/onnx/sparsity.ts — how 2:4 an exported model's linear weights are, as the `sieve.sparsity`
// metadata of an ONNX export says it. Pure functions over float32 weights in the engine's [out, in]
// layout; the export stage can reuse them on any weight.
//
// A group is 4 consecutive inputs of one row (the engine's groups: along a linear weight's input
// dim); it is 2:4 when at most 2 of its 4 weights are non-zero. NaN counts as non-zero, as in the
// engine's count24, and −0 as zero.

/** A weight's groups of 4 inputs, and how many of them are 2:4. */
export interface GroupCount {
  groups: number;
  twoFour: number;
}

/** The groups of a [rows, cols] weight (cols a multiple of 4) and how many are 2:4. */
export function countTwoFour(weights: Float32Array, rows: number, cols: number): GroupCount {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1 || weights.length !== rows * cols) {
    throw new RangeError(`a [${rows}, ${cols}] weight needs ${rows * cols} values, got ${weights.length}`);
  }
  if (cols % 4 !== 0) throw new RangeError(`a [${rows}, ${cols}] weight has no groups of 4 inputs: ${cols} is not a multiple of 4`);
  let twoFour = 0;
  for (let g = 0; g < weights.length; g += 4) {
    const nonZero = +(weights[g] !== 0) + +(weights[g + 1] !== 0) + +(weights[g + 2] !== 0) + +(weights[g + 3] !== 0);
    if (nonZero <= 2) twoFour++;
  }
  return { groups: weights.length / 4, twoFour };
}

/** Share of a [rows, cols] weight's groups of 4 consecutive inputs that hold at most 2 non-zeros (1: exactly 2:4). */
export function twoFourShare(weights: Float32Array, rows: number, cols: number): number {
  const { groups, twoFour } = countTwoFour(weights, rows, cols);
  return twoFour / groups;
}

export interface SparsityReport {
  /** Per linear weight: whether every group is 2:4, and the share that is; null for a width that is not a multiple of 4. */
  tensors: Record<string, { twoFour: boolean; share: number | null }>;
  /** Share of 2:4 groups over every linear weight that has groups (weighted by groups, not averaged per tensor). */
  share: number;
}

/** The report over linear weights, from each one's count (null: its input width is not a multiple of 4, so it has no groups). */
export function sparsityReport(counts: ReadonlyMap<string, GroupCount | null>): SparsityReport {
  const tensors: SparsityReport['tensors'] = {};
  let groups = 0;
  let twoFour = 0;
  for (const [name, count] of counts) {
    if (count === null) {
      tensors[name] = { twoFour: false, share: null };
      continue;
    }
    tensors[name] = { twoFour: count.twoFour === count.groups, share: count.twoFour / count.groups };
    groups += count.groups;
    twoFour += count.twoFour;
  }
  return { tensors, share: groups === 0 ? 0 : twoFour / groups };
}
