// A Hugging Face `tokenizer.json` as a sieve Tokenizer (tokenizer.ts), through the pure-JS
// @huggingface/tokenizers: byte-level BPE (GPT-2 style), sentencepiece-style BPE with byte fallback
// (LLaMA), Unigram and WordPiece files all load.
//
// Promises, as for the built-in tokenizers: encode returns Int32Array ids in [0, vocabSize) and
// adds no special tokens (no BOS/EOS from the file's post-processor: corpus text is tokenized as a
// stream); decode rejects an id outside the vocabulary. Corpus text is data, never control: the
// library always matches the strings of added tokens in the text before its model sees it, with no
// option to stop it, so a literal "<s>" or "<|endoftext|>" in a corpus would become the control
// token. Encoding therefore runs on a second instance built without the *special* added tokens
// (transformers' `split_special_tokens=True`): their strings are tokenized as ordinary text, while
// non-special added tokens still match as usual. vocabSize counts added tokens (the highest id + 1).
// decode turns off `clean_up_tokenization_spaces`, which would delete spaces before punctuation, so
// decode(encode(text)) is text for byte-level and byte-fallback files. Characters that a file has
// neither a token, a byte fallback nor an unknown token for are dropped by the library.
import { readFileSync } from 'node:fs';

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';

import type { Tokenizer } from './tokenizer';

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

function parse(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the tokenizer file ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`the tokenizer file ${path} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`the tokenizer file ${path} is not a JSON object`);
  return json as Record<string, unknown>;
}

/** A tokenizer.json as a Tokenizer named by its path. Reads the file once, now. */
export function loadTokenizerFile(path: string): Tokenizer {
  const json = parse(path);
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new Error(`the tokenizer file ${path}: "added_tokens" is not a list`);
  let full: HfTokenizer;
  let plainText: HfTokenizer;
  try {
    full = new HfTokenizer({ ...json, added_tokens: added }, {});
    plainText = new HfTokenizer({ ...json, added_tokens: (added as AddedToken[]).filter((t) => !t.special) }, {});
  } catch (err) {
    throw new Error(`the tokenizer file ${path} cannot be loaded: ${(err as Error).message}`);
  }
  const vocabSize = full.model?.vocab.length ?? 0;
  if (vocabSize === 0) throw new Error(`the tokenizer file ${path} has an empty vocabulary`);

  return {
    name: path,
    vocabSize,
    encode(text) {
      const { tokens } = plainText.encode(text, { add_special_tokens: false });
      const ids = new Int32Array(tokens.length);
      tokens.forEach((token, i) => {
        const id = full.token_to_id(token);
        if (id === undefined) throw new Error(`the tokenizer file ${path} produced the token ${JSON.stringify(token)}, which is not in its vocabulary`);
        ids[i] = id;
      });
      return ids;
    },
    decode(ids) {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize || full.id_to_token(id) === undefined) {
          throw new Error(`token id ${id} at position ${i} is outside the vocabulary of ${path} (${vocabSize} ids)`);
        }
      }
      // The library refuses an empty list.
      if (ids.length === 0) return '';
      return full.decode(Array.from(ids), { clean_up_tokenization_spaces: false });
    },
  };
}
