// Which files of a Hugging Face checkpoint folder a model import reads, and one digest over
// them: config.json, the weights (model.safetensors, or the shard index and every shard it
// names) and tokenizer.json when there is one. The CLI records the digest when it loads a recipe
// that imports the folder; the `import` stage recomputes it and refuses a folder that changed
// since, so a run always says exactly which bits it started from.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface FolderFile {
  /** Relative to the folder. */
  name: string;
  sha256: string;
  bytes: number;
}

const INDEX = 'model.safetensors.index.json';

/** The folder's files an import reads, relative names, sorted. */
export function checkpointFiles(dir: string): string[] {
  const exists = (name: string) => fs.existsSync(path.join(dir, name));
  const files = ['config.json'];
  if (exists(INDEX)) {
    const index = readIndex(path.join(dir, INDEX));
    files.push(INDEX, ...new Set(Object.values(index.weight_map)));
  } else if (exists('model.safetensors')) {
    files.push('model.safetensors');
  } else {
    throw new Error(`${dir} has neither model.safetensors nor ${INDEX}: not a Hugging Face safetensors checkpoint`);
  }
  if (exists('tokenizer.json')) files.push('tokenizer.json');
  return files.sort();
}

function readIndex(file: string): { weight_map: Record<string, string> } {
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  const map = (index as { weight_map?: unknown })?.weight_map;
  if (typeof map !== 'object' || map === null || Object.values(map).some((v) => typeof v !== 'string' || v.includes('..') || path.isAbsolute(v))) {
    throw new Error(`${file} has no \`weight_map\` of tensor names to shard files in the folder`);
  }
  return { weight_map: map as Record<string, string> };
}

/** sha256 of one file, streamed in chunks (checkpoints can be far larger than memory). */
export function fileSha256(file: string): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const chunk = Buffer.allocUnsafe(1 << 22);
  let bytes = 0;
  try {
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; bytes += n) hash.update(chunk.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** The digest over a folder's files: sha256 of `<sha256>  <name>\n` lines in name order. */
export function folderDigest(files: readonly { name: string; sha256: string }[]): string {
  const lines = [...files]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.name}\n`)
    .join('');
  return createHash('sha256').update(lines).digest('hex');
}

/** Every file an import reads, hashed one chunk at a time, and their digest. */
export function checkpointDigest(dir: string): { sha256: string; files: FolderFile[] } {
  const files = checkpointFiles(dir).map((name) => {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing (named by ${path.join(dir, INDEX)})`);
    return { name, ...fileSha256(file) };
  });
  return { sha256: folderDigest(files), files };
}
