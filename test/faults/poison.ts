// Fault injection for the non-finite policy (onNonFinite): makes the engine's gradient NaN on
// chosen steps, so a test can meet a divergent step that the next one recovers from, which no
// honest recipe produces on demand. The poison is keyed by the model's optimizer step counter (the
// updates applied so far) and strikes once per model, so a stage resumed from a checkpoint before
// the poisoned step meets it again, exactly as the uninterrupted stage did.
import { Model } from '../../kernels';

/**
 * From now on, the first forward-backward of each model whose optimizer step counter is in `at`
 * (every one, with 'always') leaves a NaN in the gradient. Returns the function that undoes it.
 */
export function poisonGradients(at: ReadonlySet<number> | 'always'): () => void {
  const original = Model.prototype.forwardBackward;
  const struck = new WeakMap<Model, Set<number>>();
  Model.prototype.forwardBackward = async function (this: Model, ...args: Parameters<Model['forwardBackward']>) {
    const result = await original.apply(this, args);
    const done = struck.get(this) ?? new Set<number>();
    struck.set(this, done);
    if (at === 'always' || (at.has(this.step) && !done.has(this.step))) {
      done.add(this.step);
      const grad = this.read('grad');
      grad[0] = Number.NaN;
      this.write('grad', grad);
    }
    return result;
  };
  return () => {
    Model.prototype.forwardBackward = original;
  };
}
