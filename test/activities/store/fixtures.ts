// Shared by the store tests and the CLI read-model tests: an in-memory database with the real
// migrations, an artifact store in a scratch directory, and the quickstart recipe's two stages.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach } from 'node:test';

import { createArtifactStore } from '../../../activities/store/artifacts';
import type { StageCacheInput } from '../../../activities/store/cache';
import { openDb, type SieveDatabase } from '../../../activities/store/db';
import { environment } from '../../../activities/store/provenance';
import { createRun, linkArtifacts, recordMetrics, upsertStage } from '../../../activities/store/writes';
import { stageCacheConfig, type Recipe, type RecipeStage } from '../../../schemas/recipe';
import { parseRecipe } from '../../../schemas/recipe-text';

export const quickstart = (() => {
  const file = path.resolve(__dirname, '../../../examples/quickstart.yaml');
  const parsed = parseRecipe(readFileSync(file, 'utf8'), file);
  assert.ok(parsed.ok);
  return parsed.recipe;
})();
export const [dense, report] = quickstart.stages as [RecipeStage, RecipeStage];
const env = environment({ blas: 'OpenBLAS 0.3.21' });

/** A fresh in-memory database before each test of the calling file, and a scratch artifact store. */
export function storeFixture(label: string) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `sieve-${label}-`));
  after(() => rmSync(scratch, { recursive: true, force: true }));
  const fixture = { handle: undefined as unknown as SieveDatabase, store: createArtifactStore(path.join(scratch, 'home')) };
  beforeEach(() => {
    fixture.handle?.close();
    fixture.handle = openDb({ file: ':memory:' });
  });
  after(() => fixture.handle?.close());

  const newRun = (id: string, recipe: Recipe = quickstart, parentRunId: string | null = null) =>
    createRun(fixture.handle.db, { id, recipe, codeVersion: 'git:test', environment: env, parentRunId });

  /** A completed dense stage with one model artifact, as the recorder would leave it. */
  const completedDense = async (runId: string, content: string, key: string, basis: StageCacheInput) => {
    const { db } = fixture.handle;
    upsertStage(db, { runId, stage: dense, status: 'running', attempt: 1 });
    const model = await fixture.store.put(Buffer.from(content));
    linkArtifacts(db, [{ runId, stageId: dense.id, role: 'model', artifact: { ...model, kind: 'model' } }]);
    recordMetrics(db, [{ runId, stageId: dense.id, name: 'loss', value: 1.5 }]);
    upsertStage(db, { runId, stage: dense, status: 'completed', step: 800, cacheKey: key, cacheBasis: basis, computeMs: 1234.4 });
    return model;
  };
  return { fixture, newRun, completedDense };
}

export function cacheInput(recipe: Recipe, stage: RecipeStage, inputs: string[] = []): StageCacheInput {
  return { kind: stage.kind, config: stageCacheConfig(recipe, stage), inputs, dataHash: 'd'.repeat(64), codeVersion: 'git:test' };
}
