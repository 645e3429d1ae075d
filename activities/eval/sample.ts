// The greedy continuation of a prompt: the text a model writes when it always takes its most
// likely next token. A quick, human-readable check that a compressed model still writes
// sensible text, and that two runtimes run the same model (their samples must match).
import type { Tokenizer } from '../data/tokenizer';

/** What can produce next-token logits: the native engine's Model, or ONNX Runtime's. */
export interface LogitsRunner {
  logits(tokens: Int32Array, B: number, T: number): Promise<Float32Array>;
}

export interface GreedySample {
  prompt: string;
  /** The continuation alone, decoded. */
  text: string;
  tokens: number[];
}

/**
 * `count` tokens after `prompt`, each the argmax of the model's next-token logits over the
 * tokenizer's vocabulary (a model may have more embedding rows than the tokenizer has tokens),
 * conditioning on at most the last `context` tokens. Ties go to the smaller id.
 */
export async function greedySample(model: LogitsRunner, tokenizer: Tokenizer, prompt: string, count: number, context: number, vocab: number): Promise<GreedySample> {
  const ids = Array.from(tokenizer.encode(prompt));
  if (ids.length === 0) throw new Error(`the sample prompt ${JSON.stringify(prompt)} encodes to no tokens`);
  const start = ids.length;
  const choosable = Math.min(vocab, tokenizer.vocabSize);
  for (let n = 0; n < count; n++) {
    const window = Int32Array.from(ids.slice(-context));
    const T = window.length;
    const logits = await model.logits(window, 1, T);
    const last = logits.subarray((T - 1) * vocab, T * vocab);
    let best = 0;
    for (let v = 1; v < choosable; v++) if (last[v] > last[best]) best = v;
    ids.push(best);
  }
  const tokens = ids.slice(start);
  return { prompt, text: tokenizer.decode(tokens), tokens };
}
