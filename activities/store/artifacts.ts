// The artifact store: content-addressed files under SIEVE_HOME/artifacts/<aa>/<sha256>.
//
// An artifact's name is the sha256 of its bytes, so identical outputs are stored once and
// shared by every stage and run that produces or uses them, and any damage is detectable:
// verify() and read() hash the file again and throw ArtifactMissingError or
// ArtifactCorruptError, naming the artifact and where it was expected. put() writes through
// a temporary file in the same directory tree, fsyncs it and renames it into place, so a
// reader (or a crash) never sees a half-written artifact. Stored files are made read-only.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_TYPES } from '../../workflows/contract';
import { sha256Hex } from './hash';

/** SIEVE_HOME as an absolute path: the environment variable, or `./.sieve` in the working directory. */
export function sieveHome(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.SIEVE_HOME || '.sieve');
}

/**
 * Creates a directory of SIEVE_HOME (the home itself included) private to its user (0700): the
 * database, artifacts and the Temporal store are nobody else's business. A directory that exists
 * keeps the mode its owner gave it.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const CHUNK_BYTES = 4 << 20;

/** The artifact's file is not where the store keeps it. */
export class ArtifactMissingError extends Error {
  // The name is the failure type Temporal sees; the workflow does not retry it.
  override readonly name = ERROR_TYPES.artifactMissing;
  constructor(
    readonly sha256: string,
    readonly path: string,
  ) {
    super(`artifact ${sha256} is missing: expected it at ${path}`);
  }
}

/** The artifact's file exists but its bytes no longer hash to its name. */
export class ArtifactCorruptError extends Error {
  override readonly name = ERROR_TYPES.artifactCorrupt;
  constructor(
    readonly sha256: string,
    readonly path: string,
    readonly actualSha256: string,
  ) {
    super(`artifact ${sha256} is corrupt: ${path} now hashes to ${actualSha256}`);
  }
}

/** Where an artifact lives relative to SIEVE_HOME (`artifacts/<aa>/<sha256>`), the form the database records. */
export function artifactRelativePath(sha256: string): string {
  // Also keeps anything but a digest (`../`, say) from becoming a path.
  if (!SHA256_HEX.test(sha256)) throw new TypeError(`not an artifact id (64 lowercase hex digits): ${JSON.stringify(sha256)}`);
  return path.posix.join('artifacts', sha256.slice(0, 2), sha256);
}

export interface StoredArtifact {
  sha256: string;
  bytes: number;
  /** Absolute path of the stored file. */
  path: string;
}

export interface PutOptions {
  /** Move the source file into the store instead of copying it (it is still hashed first). */
  move?: boolean;
}

export interface ArtifactStore {
  /** SIEVE_HOME, absolute. */
  readonly home: string;
  /** Stores bytes or a file; returns its sha256, size and absolute path. Storing existing content is a no-op rewrite. */
  put(source: Uint8Array | string, options?: PutOptions): Promise<StoredArtifact>;
  /** Where the artifact lives (absolute), whether or not it exists. */
  path(sha256: string): string;
  /** Re-hashes the file; throws ArtifactMissingError or ArtifactCorruptError. */
  verify(sha256: string): Promise<StoredArtifact>;
  /** The artifact's bytes, verified against its name; throws like verify(). */
  read(sha256: string): Promise<Buffer>;
  /**
   * The artifact a derived computation stored under `key` (a sha256 of everything that determines
   * its result), or null when there is none, or it is gone or damaged. Lets a stage reuse part of
   * its work (a sensitivity another stage computed) below the granularity of the stage cache.
   */
  findDerived(key: string): Promise<StoredArtifact | null>;
  /** Records that the computation named `key` produced artifact `sha256` (already stored). */
  recordDerived(key: string, sha256: string): Promise<void>;
}

export function createArtifactStore(home: string = sieveHome()): ArtifactStore {
  const absoluteHome = path.resolve(home);
  const root = path.join(absoluteHome, 'artifacts');
  const tmpDir = path.join(root, 'tmp');

  const artifactPath = (sha256: string): string => path.join(absoluteHome, artifactRelativePath(sha256));

  /** Moves a complete, fsynced file into its content-addressed place and makes the rename durable. */
  const install = async (file: string, sha256: string): Promise<string> => {
    const target = artifactPath(sha256);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    await chmod(file, 0o444);
    // Renaming over an existing copy is safe (same name, same bytes) and repairs a damaged one.
    await rename(file, target);
    await fsyncDirectory(path.dirname(target));
    return target;
  };

  const put = async (source: Uint8Array | string, options: PutOptions = {}): Promise<StoredArtifact> => {
    ensurePrivateDir(absoluteHome);
    await mkdir(tmpDir, { recursive: true, mode: 0o700 });
    if (typeof source === 'string' && options.move) {
      const { sha256, bytes } = await hashFile(source);
      await fsyncFile(source);
      try {
        return { sha256, bytes, path: await install(source, sha256) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
        // Another filesystem: copy through the store's own temp directory, then drop the source.
        const copied = await put(source);
        await unlink(source);
        return copied;
      }
    }
    const temp = path.join(tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}.partial`);
    try {
      const { sha256, bytes } = await writeHashed(source, temp);
      return { sha256, bytes, path: await install(temp, sha256) };
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  };

  const verify = async (sha256: string): Promise<StoredArtifact> => {
    const file = artifactPath(sha256);
    let hashed: { sha256: string; bytes: number };
    try {
      hashed = await hashFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ArtifactMissingError(sha256, file);
      throw error;
    }
    if (hashed.sha256 !== sha256) throw new ArtifactCorruptError(sha256, file, hashed.sha256);
    return { sha256, bytes: hashed.bytes, path: file };
  };

  const read = async (sha256: string): Promise<Buffer> => {
    const file = artifactPath(sha256);
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ArtifactMissingError(sha256, file);
      throw error;
    }
    const actual = sha256Hex(data);
    if (actual !== sha256) throw new ArtifactCorruptError(sha256, file, actual);
    return data;
  };

  // artifacts/derived/<key> holds the sha256 of the artifact the computation `key` produced; gc
  // leaves the index alone (only <aa>/<sha256> files are artifacts) and a stale entry reads as a miss.
  const derivedPath = (key: string) => {
    if (!SHA256_HEX.test(key)) throw new TypeError(`not a derived-computation key (64 lowercase hex digits): ${JSON.stringify(key)}`);
    return path.join(root, 'derived', key);
  };

  const findDerived = async (key: string): Promise<StoredArtifact | null> => {
    const sha256 = (await readFile(derivedPath(key), 'utf8').catch(() => '')).trim();
    if (!SHA256_HEX.test(sha256)) return null;
    return verify(sha256).catch((error: unknown) => {
      if (error instanceof ArtifactMissingError || error instanceof ArtifactCorruptError) return null;
      throw error;
    });
  };

  const recordDerived = async (key: string, sha256: string): Promise<void> => {
    const file = derivedPath(key);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}.partial`;
    await writeFile(temp, `${sha256}\n`);
    await rename(temp, file);
  };

  return { home: absoluteHome, put, path: artifactPath, verify, read, findDerived, recordDerived };
}

/** Writes `source` (bytes, or a file to copy) to `target`, hashing on the way, and fsyncs it. */
async function writeHashed(source: Uint8Array | string, target: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const out = await open(target, 'wx');
  try {
    if (typeof source === 'string') {
      for await (const chunk of createReadStream(source, { highWaterMark: CHUNK_BYTES }) as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
        await out.writeFile(chunk); // writeFile loops until the whole chunk is written
      }
    } else {
      hash.update(source);
      bytes = source.byteLength;
      await out.writeFile(source);
    }
    await out.sync();
  } finally {
    await out.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Makes a rename durable; Windows cannot open directories, and there NTFS journals renames itself. */
async function fsyncDirectory(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  await fsyncFile(dir);
}
