// A second process for db.test.ts: opens the database given on the command line and writes
// runs, stages, metrics, artifact links and events as fast as it can, so that two of these
// contend for the same SQLite file. Not a test file itself (no .test.ts suffix).
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { openDb } from '../../../activities/store/db';
import { appendEvent } from '../../../activities/store/journal';
import { environment } from '../../../activities/store/provenance';
import { createRun, linkArtifacts, recordMetrics, setRunStatus, upsertStage } from '../../../activities/store/writes';
import { parseRecipe } from '../../../schemas/recipe-text';

const [file, tag, count, startAt] = process.argv.slice(2);
const recipePath = path.resolve(__dirname, '../../../examples/quickstart.yaml');
const parsed = parseRecipe(readFileSync(recipePath, 'utf8'), recipePath);
if (!parsed.ok) throw new Error(parsed.message);
const recipe = parsed.recipe;
const dense = recipe.stages[0];

const { db, close } = openDb({ file });
const env = environment();
// Start writing at the agreed moment, so both processes contend for the whole run.
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, Number(startAt) - Date.now()));
for (let i = 0; i < Number(count); i++) {
  const runId = `${tag}-${i}`;
  createRun(db, { id: runId, recipe, codeVersion: 'git:test', environment: env });
  setRunStatus(db, runId, 'running');
  upsertStage(db, { runId, stage: dense, status: 'running', attempt: 1 });
  for (let step = 1; step <= 20; step++) {
    recordMetrics(db, [
      { runId, stageId: dense.id, step, name: 'loss', value: 5 / step },
      { runId, stageId: dense.id, step, name: 'lr', value: 0.003 },
    ]);
    upsertStage(db, { runId, stage: dense, step });
  }
  // Both processes link the same artifact: content-addressed rows are shared, never duplicated.
  linkArtifacts(db, [{ runId, stageId: dense.id, role: 'model', artifact: { sha256: 'c'.repeat(64), bytes: 1, kind: 'model' } }]);
  appendEvent(db, { runId, stageId: dense.id, type: 'stage.checkpoint', payload: { step: 20 } });
  upsertStage(db, { runId, stage: dense, status: 'completed' });
  setRunStatus(db, runId, 'completed');
}
close();
