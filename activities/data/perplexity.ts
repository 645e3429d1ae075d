// The pinned perplexity protocol (DESIGN.md), version 1:
//   - cut the whole evaluation token stream into consecutive non-overlapping windows of
//     `context` tokens, dropping the last partial window;
//   - in each window, every position but the first is predicted from its prefix within
//     the window (no context carried across windows);
//   - perplexity = exp(mean NLL over every predicted position), N × (context − 1) of them.
// The protocol object goes into every result, so two perplexities are comparable exactly
// when their protocols are equal. The mean is accumulated in float64, in stream order,
// so the reduction itself is deterministic and adds no float32 rounding.
import type { PerplexityProtocol } from '../../schemas/data';

export const PROTOCOL_NAME = 'non-overlapping-windows';
export const PROTOCOL_VERSION = 1;

export interface PerplexityWindows {
  /** [N, context]: window n is stream[n·context, (n+1)·context). A view of the stream, not a copy. */
  tokens: Int32Array;
  windows: number;
  context: number;
  protocol: PerplexityProtocol;
}

/** Cut an evaluation stream into the protocol's windows. */
export function perplexityWindows(stream: Int32Array, context: number, name = 'evaluation stream'): PerplexityWindows {
  if (!Number.isInteger(context) || context < 2) {
    throw new Error(`perplexity context must be an integer ≥ 2 (one token to condition on, one to predict), got ${context}`);
  }
  const windows = Math.floor(stream.length / context);
  if (windows === 0) {
    throw new Error(
      `${name} has ${stream.length} tokens, fewer than one perplexity window of context = ${context} tokens`,
    );
  }
  return {
    tokens: stream.subarray(0, windows * context),
    windows,
    context,
    protocol: {
      name: PROTOCOL_NAME,
      version: PROTOCOL_VERSION,
      context,
      windows,
      streamTokens: stream.length,
      predicted: windows * (context - 1),
      droppedTailTokens: stream.length - windows * context,
    },
  };
}

export interface PerplexityResult {
  meanNll: number;
  perplexity: number;
  predicted: number;
  protocol: PerplexityProtocol;
}

/**
 * Reduce per-position NLLs (natural log) to the protocol's perplexity. `nll` is laid out
 * [N, context − 1]: entry (n, t) is −log p(window[n][t + 1] | window[n][0..t]).
 */
export function reducePerplexity(nll: ArrayLike<number>, protocol: PerplexityProtocol): PerplexityResult {
  const predicted = protocol.windows * (protocol.context - 1);
  if (nll.length !== predicted) {
    throw new Error(
      `expected ${predicted} NLLs (${protocol.windows} windows × ${protocol.context - 1} predicted positions), got ${nll.length}`,
    );
  }
  let sum = 0;
  for (let i = 0; i < nll.length; i++) {
    const v = nll[i];
    if (!Number.isFinite(v)) {
      const row = Math.floor(i / (protocol.context - 1));
      const col = (i % (protocol.context - 1)) + 1;
      throw new Error(`NLL of window ${row}, position ${col} is ${v}: the model's output is not finite`);
    }
    sum += v;
  }
  const meanNll = sum / predicted;
  return { meanNll, perplexity: Math.exp(meanNll), predicted, protocol };
}
