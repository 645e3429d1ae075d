// The artifact store: content addressing, atomic placement, and clear errors for a missing
// or corrupt artifact (both name the sha256 and the expected path).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import {
  ArtifactCorruptError,
  ArtifactMissingError,
  artifactRelativePath,
  createArtifactStore,
  sieveHome,
} from '../../../activities/store/artifacts';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'sieve-artifacts-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe('artifact store', () => {
  const store = createArtifactStore(path.join(scratch, 'home'));

  it('stores bytes under artifacts/<aa>/<sha256>, read-only, and reads them back verified', async () => {
    const stored = await store.put(Buffer.from('weights'));
    assert.equal(stored.sha256, sha('weights'));
    assert.equal(stored.bytes, 7);
    assert.equal(stored.path, path.join(store.home, 'artifacts', stored.sha256.slice(0, 2), stored.sha256));
    assert.equal(store.path(stored.sha256), stored.path);
    assert.equal(statSync(stored.path).mode & 0o222, 0, 'no write permission');
    assert.equal((await store.read(stored.sha256)).toString(), 'weights');
    assert.deepEqual(await store.verify(stored.sha256), stored);
    assert.deepEqual(readdirSync(path.join(store.home, 'artifacts', 'tmp')), [], 'no temp file left behind');
  });

  it('stores a file by copying (hashing on the way) or by moving it', async () => {
    const big = Buffer.alloc(9 << 20, 7); // more than one read chunk
    const source = path.join(scratch, 'ckpt.bin');
    writeFileSync(source, big);
    const copied = await store.put(source);
    assert.equal(copied.sha256, sha(big));
    assert.equal(copied.bytes, big.length);
    assert.ok(existsSync(source), 'a copy leaves the source');

    const moved = await store.put(source, { move: true });
    assert.deepEqual(moved, copied, 'same content, same artifact');
    assert.ok(!existsSync(source), 'a move consumes the source');
  });

  it('putting the same content twice is harmless and repairs a damaged copy', async () => {
    const first = await store.put(Buffer.from('same'));
    chmodSync(first.path, 0o644);
    writeFileSync(first.path, 'damaged');
    await assert.rejects(store.verify(first.sha256), ArtifactCorruptError);
    const second = await store.put(Buffer.from('same'));
    assert.deepEqual(second, first);
    assert.equal(readFileSync(first.path, 'utf8'), 'same');
  });

  it('a missing artifact is an ArtifactMissingError naming it and where it was expected', async () => {
    const absent = sha('never stored');
    for (const attempt of [store.verify, store.read]) {
      await assert.rejects(attempt(absent), (error: unknown) => {
        assert.ok(error instanceof ArtifactMissingError);
        assert.equal(error.name, 'ArtifactMissingError');
        assert.equal(error.sha256, absent);
        assert.equal(error.message, `artifact ${absent} is missing: expected it at ${store.path(absent)}`);
        return true;
      });
    }
  });

  it('a corrupt artifact is an ArtifactCorruptError naming it, its path and what it hashes to now', async () => {
    const stored = await store.put(Buffer.from('pristine'));
    chmodSync(stored.path, 0o644);
    writeFileSync(stored.path, 'tampered');
    for (const attempt of [store.verify, store.read]) {
      await assert.rejects(attempt(stored.sha256), (error: unknown) => {
        assert.ok(error instanceof ArtifactCorruptError);
        assert.equal(error.name, 'ArtifactCorruptError');
        assert.equal(error.actualSha256, sha('tampered'));
        assert.equal(error.message, `artifact ${stored.sha256} is corrupt: ${stored.path} now hashes to ${sha('tampered')}`);
        return true;
      });
    }
  });

  it('only a sha256 digest can name an artifact', () => {
    assert.throws(() => store.path('../../etc/passwd'), TypeError);
    assert.throws(() => artifactRelativePath('ABC'), TypeError);
    assert.equal(artifactRelativePath('a'.repeat(64)), `artifacts/aa/${'a'.repeat(64)}`);
  });
});

describe('sieveHome', () => {
  it('is SIEVE_HOME made absolute, defaulting to ./.sieve', () => {
    assert.equal(sieveHome({}), path.resolve('.sieve'));
    assert.equal(sieveHome({ SIEVE_HOME: 'rel/home' }), path.resolve('rel/home'));
    assert.equal(sieveHome({ SIEVE_HOME: '/abs/home' }), '/abs/home');
  });
});
