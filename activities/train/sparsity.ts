// What the 2:4 stages (prune, sparse-train) share: which weights a scope covers, the sparsity
// measures recorded as metrics, and the check that a model promised to be 2:4 is exactly 2:4
// before its stage records success. The per-weight work is the engine's (kernels/index.ts).

import { ApplicationFailure } from '@temporalio/common';
import type { MaskMethod, Model } from '../../kernels';
import type { SparsityScope } from '../../schemas/stages/prune';
import { ERROR_TYPES } from '../../workflows/contract';

/** The block linear weights in `scope`: the tensors a 2:4 method masks. */
export function sparseWeights(model: Model, scope: SparsityScope): string[] {
  return model.tensors.filter((t) => t.kind === 'linear' && t.scope !== null && (scope === 'all' || t.scope === scope)).map((t) => t.name);
}

/**
 * Recomputes the masks of `names` and measures the change: the flip rate of the whole set and of
 * each tensor (changed mask entries / entries, METHODS §2.3) as metrics.
 */
export async function refreshMasks(model: Model, names: string[], method: MaskMethod): Promise<Record<string, number>> {
  const flips = await model.updateMasks(names, method);
  const sizes = names.map((n) => model.info(n).size);
  const metrics: Record<string, number> = { 'sparse/flip_rate': sum(flips) / sum(sizes) };
  names.forEach((name, i) => (metrics[`sparse/flip_rate/${name}`] = flips[i] / sizes[i]));
  return metrics;
}

/** Σ|w| at pruned positions over Σ|w|, for the whole set (`sparse/pruned_mass`). */
export function prunedMass(model: Model, names: string[]): number {
  const stats = model.maskStats(names);
  return sum(stats.map((s) => s.prunedAbs)) / sum(stats.map((s) => s.totalAbs));
}

/**
 * Throws unless every group of four weights in `names` has at most two nonzeros (along the input
 * dimension, and along the output dimension too for a transposable mask). A violation is a bug,
 * the same on every attempt: the stage fails without a retry, naming the tensors.
 */
export function requireTwoFour(model: Model, names: string[], bothWays: boolean): void {
  const violations = model.count24(names, { bothWays });
  const bad = names.map((name, i) => [name, violations[i]] as const).filter(([, v]) => v > 0);
  if (bad.length === 0) return;
  throw ApplicationFailure.create({
    type: ERROR_TYPES.badInput,
    nonRetryable: true,
    message: `the output is not 2:4${bothWays ? ' both ways' : ''}: ${bad.map(([name, v]) => `${name} has ${v} groups with more than 2 nonzeros`).join('; ')}`,
  });
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
