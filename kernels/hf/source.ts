// A file an import read: its path, size and sha256. The import stage hashes these into its cache
// key, so a checkpoint folder whose files change is seen as a different input.
import { createHash } from 'node:crypto';

export interface HfSource {
  path: string;
  sha256: string;
  bytes: number;
}

export function describeSource(path: string, bytes: Uint8Array): HfSource {
  return { path, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length };
}
