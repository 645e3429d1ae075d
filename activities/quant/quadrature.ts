// Rules for ∫₀¹ f(s) ds ≈ Σ_k weight_k f(s_k) with N equal intervals: the points the
// post-quantization integral samples the gradient at (METHODS.md §6.2).
//   right     s_k = k/N, k = 1..N: includes the quantized end; first-order, and over-estimates a
//             convex path's integral like the paper's table (N = 4 → 0.1042, …, 32 → 0.1026 against
//             0.1024). The stage's rule, as the paper's convergence suggests.
//   left      s_k = (k−1)/N: includes the start, never the quantized end.
//   midpoint  s_k = (k−½)/N: second order; exact on quadratics.
import type { QuadratureRule } from '../../kernels';

export type QuadratureKind = 'right' | 'left' | 'midpoint';

const OFFSET: Record<QuadratureKind, number> = { right: 1, left: 0, midpoint: 0.5 };

export function quadrature(intervals: number, kind: QuadratureKind): QuadratureRule & { points: Float64Array; weights: Float64Array } {
  if (!Number.isInteger(intervals) || intervals < 1) throw new RangeError(`intervals must be a whole number >= 1, got ${intervals}`);
  const points = Float64Array.from({ length: intervals }, (_, k) => (k + OFFSET[kind]) / intervals);
  return { points, weights: new Float64Array(intervals).fill(1 / intervals) };
}
