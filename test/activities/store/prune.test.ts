// Pruning a stage's checkpoints from SQLite: the newest `keep` by step stay (and the one just
// written, whatever its step), a file is freed only when no other stage or run links it, outputs
// and history segments are never touched, each pruning is journaled; and `keepCheckpoints` as
// recorded (null keeps all, an old config without the key keeps the default).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { and, eq } from 'drizzle-orm';

import { listEvents } from '../../../activities/store/journal';
import { keepCheckpointsOf, pruneCheckpoints, recordedArtifacts, unlinkedArtifacts } from '../../../activities/store/prune';
import { stageArtifactRows } from '../../../activities/store/reads';
import { linkArtifacts, upsertStage } from '../../../activities/store/writes';
import { DEFAULT_KEEP_CHECKPOINTS } from '../../../schemas/stages/training';
import { stageArtifacts } from '../../../schemas/tables';
import { dense, storeFixture } from './fixtures';

const { fixture, newRun } = storeFixture('prune');
const sha = (c: string) => c.repeat(64);

function stageWith(runId: string, links: Array<[role: string, step: number | null, c: string]>) {
  const { db } = fixture.handle;
  newRun(runId);
  upsertStage(db, { runId, stage: dense, status: 'running' });
  linkArtifacts(db, links.map(([role, step, c]) => ({ runId, stageId: dense.id, role, step, artifact: { sha256: sha(c), bytes: 10, kind: role === 'history-segment' ? 'metrics' : 'checkpoint' } })));
}
const roles = (runId: string) => stageArtifactRows(fixture.handle.db, runId, dense.id).map((a) => `${a.role}@${a.step ?? '-'}:${a.sha256[0]}`).sort();

describe('checkpoint pruning', () => {
  it('keeps the newest `keep` by step, frees files nothing else links, and journals it', () => {
    stageWith('r1', [
      ['checkpoint', 10, 'a'],
      ['checkpoint', 20, 'b'],
      ['checkpoint', 30, 'c'],
      ['checkpoint', 40, 'd'],
      ['history-segment', 10, '1'],
      ['model', null, 'e'],
    ]);
    // Run r2 shares the checkpoint at 10 (the same bits).
    stageWith('r2', [['checkpoint', 10, 'a']]);
    const result = pruneCheckpoints(fixture.handle.db, { runId: 'r1', stageId: dense.id, keep: 2 });
    assert.deepEqual(result.pruned, [{ step: 20, sha256: sha('b') }, { step: 10, sha256: sha('a') }]);
    assert.deepEqual(result.freed, [{ sha256: sha('b'), bytes: 10 }], 'the checkpoint r2 still links is not freed');
    assert.deepEqual(roles('r1'), ['checkpoint@30:c', 'checkpoint@40:d', 'history-segment@10:1', 'model@-:e']);
    assert.deepEqual(roles('r2'), ['checkpoint@10:a']);
    assert.deepEqual([...recordedArtifacts(fixture.handle.db, [sha('a'), sha('b')])], [sha('a')], 'the freed row is gone');
    assert.deepEqual(unlinkedArtifacts(fixture.handle.db), []);
    const event = listEvents(fixture.handle.db, 'r1').find((e) => e.type === 'stage.checkpoints-pruned');
    assert.deepEqual(event?.payload, { keep: 2, pruned: [{ step: 20, sha256: sha('b') }, { step: 10, sha256: sha('a') }], freed: [sha('b')] });
    assert.deepEqual(pruneCheckpoints(fixture.handle.db, { runId: 'r1', stageId: dense.id, keep: 2 }), { pruned: [], freed: [] }, 'pruning again changes nothing');
  });

  it('never prunes the checkpoint just written, though older steps are newer by step (a stage that fell back)', () => {
    stageWith('r1', [
      ['checkpoint', 125, 'a'],
      ['checkpoint', 100, 'b'],
      ['checkpoint', 75, 'c'],
    ]);
    const result = pruneCheckpoints(fixture.handle.db, { runId: 'r1', stageId: dense.id, keep: 1, alsoKeep: sha('b') });
    assert.deepEqual(result.pruned.map((p) => p.step), [75]);
    assert.deepEqual(roles('r1'), ['checkpoint@100:b', 'checkpoint@125:a']);
  });

  it('keep null keeps every checkpoint', () => {
    stageWith('r1', [
      ['checkpoint', 1, 'a'],
      ['checkpoint', 2, 'b'],
    ]);
    assert.deepEqual(pruneCheckpoints(fixture.handle.db, { runId: 'r1', stageId: dense.id, keep: null }), { pruned: [], freed: [] });
    assert.equal(
      fixture.handle.db.select().from(stageArtifacts).where(and(eq(stageArtifacts.runId, 'r1'), eq(stageArtifacts.role, 'checkpoint'))).all().length,
      2,
    );
  });

  it('reads keepCheckpoints from a recorded stage configuration', () => {
    assert.equal(keepCheckpointsOf(dense), DEFAULT_KEEP_CHECKPOINTS);
    assert.equal(keepCheckpointsOf({ ...dense, keepCheckpoints: null }), null);
    assert.equal(keepCheckpointsOf({ ...dense, keepCheckpoints: 5 }), 5);
    const { keepCheckpoints: _, ...before } = dense as typeof dense & { keepCheckpoints?: number | null };
    assert.equal(keepCheckpointsOf(before), DEFAULT_KEEP_CHECKPOINTS, 'a stage recorded before the key existed');
  });
});
