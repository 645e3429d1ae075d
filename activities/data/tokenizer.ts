// Tokenizers: `bytes` (the UTF-8 bytes of the text, vocab 256) and `gpt2` (GPT-2's BPE,
// the r50k_base encoding of gpt-tokenizer, vocab 50257; its ranks ship in the package, so
// nothing is downloaded).
//
// Promises: encode is deterministic and returns Int32Array ids in [0, vocabSize); decode
// rejects an id outside the vocabulary instead of guessing. Corpus text is data, never
// control: a literal "<|endoftext|>" in a corpus is encoded as ordinary text, so an
// arbitrary file can never make encoding throw or smuggle in a document boundary.
import * as r50k from 'gpt-tokenizer/encoding/r50k_base';

import { TokenizerName } from '../../schemas/data';

export interface Tokenizer {
  readonly name: TokenizerName;
  readonly vocabSize: number;
  encode(text: string): Int32Array;
  decode(ids: ArrayLike<number>): string;
}

function checkIds(name: TokenizerName, vocabSize: number, ids: ArrayLike<number>): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(`token id ${id} at position ${i} is outside the ${name} vocabulary [0, ${vocabSize})`);
    }
  }
}

/** One token per UTF-8 byte. Decoding a cut through a multi-byte character yields U+FFFD for it. */
export const bytesTokenizer: Tokenizer = {
  name: 'bytes',
  vocabSize: 256,
  encode(text) {
    const bytes = Buffer.from(text, 'utf8');
    const ids = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i];
    return ids;
  },
  decode(ids) {
    checkIds('bytes', 256, ids);
    return Buffer.from(Uint8Array.from(ids)).toString('utf8');
  },
};

// An empty disallow-list (and no allow-list) makes special-token text plain text; the
// library's default would throw on it.
const PLAIN_TEXT = { disallowedSpecial: new Set<string>() };

/** GPT-2 BPE (r50k_base): 50,000 merges + 256 byte tokens + <|endoftext|> (50256). */
export const gpt2Tokenizer: Tokenizer = {
  name: 'gpt2',
  vocabSize: r50k.vocabularySize,
  encode(text) {
    return Int32Array.from(r50k.encode(text, PLAIN_TEXT));
  },
  decode(ids) {
    checkIds('gpt2', r50k.vocabularySize, ids);
    return r50k.decode(Array.from(ids));
  },
};

const TOKENIZERS: Record<TokenizerName, Tokenizer> = { bytes: bytesTokenizer, gpt2: gpt2Tokenizer };

export function getTokenizer(name: TokenizerName): Tokenizer {
  const tokenizer = TOKENIZERS[name];
  if (!tokenizer) throw new Error(`unknown tokenizer "${String(name)}": expected one of ${TokenizerName.options.join(', ')}`);
  return tokenizer;
}
