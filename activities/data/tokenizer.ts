// Tokenizers: `bytes` (the UTF-8 bytes of the text, vocab 256), `gpt2` (GPT-2's BPE, the
// r50k_base encoding of gpt-tokenizer, vocab 50257; its ranks ship in the package, so nothing is
// downloaded), and Hugging Face tokenizer.json files (./hf-tokenizer.ts).
//
// Promises: encode is deterministic and returns Int32Array ids in [0, vocabSize); decode
// rejects an id outside the vocabulary instead of guessing. Corpus text is data, never
// control: a literal "<|endoftext|>" in a corpus is encoded as ordinary text, so an
// arbitrary file can never make encoding throw or smuggle in a document boundary.
import * as r50k from 'gpt-tokenizer/encoding/r50k_base';

import { fileSha256 } from '../../kernels/hf/digest';
import { TokenizerName, type TokenizerSpec } from '../../schemas/data';
import { loadTokenizerFile } from './hf-tokenizer';

export interface Tokenizer {
  readonly name: string;
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

/** Tokenizer files already loaded, by their content's sha256 (loading a large tokenizer.json takes a while). */
const files = new Map<string, Tokenizer>();

/**
 * The tokenizer a recipe names: a built-in one, or a Hugging Face tokenizer.json, whose bytes must
 * still be those the recipe was loaded against (`sha256`, filled in by the CLI): a file edited
 * between submitting and running would tokenize the data differently from what the run records.
 */
export function getTokenizer(spec: TokenizerSpec): Tokenizer {
  if (typeof spec === 'string') {
    const tokenizer = TOKENIZERS[spec];
    if (!tokenizer) throw new Error(`unknown tokenizer "${String(spec)}": expected one of ${TokenizerName.options.join(', ')}, or { file: <tokenizer.json> }`);
    return tokenizer;
  }
  const { sha256 } = fileSha256(spec.file);
  if (spec.sha256 !== undefined && sha256 !== spec.sha256) {
    throw new Error(`the tokenizer file ${spec.file} changed since the recipe was loaded (sha256 ${sha256.slice(0, 12)}…, recorded ${spec.sha256.slice(0, 12)}…)`);
  }
  let tokenizer = files.get(sha256);
  if (!tokenizer) {
    tokenizer = loadTokenizerFile(spec.file);
    files.set(sha256, tokenizer);
  }
  return tokenizer;
}
