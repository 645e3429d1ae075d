// The plan `sieve resume` carries, from an old run's records: finished stages hand over their
// outputs (not how they got there: checkpoints, history segments, inputs); a partial stage hands
// over its recorded checkpoints as one reference, the newest leading with its history segment and
// the others as fallbacks, each once. And how two references of a stage merge.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { resumePlan } from '../../cli/resume-plan';
import type { ArtifactOutput, ShowOutput, ShowStage } from '../../schemas/cli';
import { KNOWN_CHECKPOINTS, mergeCheckpoints, type CheckpointRef } from '../../schemas/pipeline';

const sha = (c: string) => c.repeat(64);
const link = (role: string, c: string, step: number | null = null): ArtifactOutput => ({
  sha256: sha(c),
  path: `/h/artifacts/${c}${c}/${sha(c)}`,
  bytes: 7,
  kind: role === 'history' || role === 'history-segment' ? 'metrics' : 'checkpoint',
  role,
  step,
});
const stage = (id: string, status: ShowStage['status'], artifacts: ArtifactOutput[]) => ({ id, status, artifacts, metrics: { 'train/loss': null } }) as unknown as ShowStage;

describe('resumePlan', () => {
  it('reuses finished outputs and continues partial stages from their newest checkpoint, the older ones as fallbacks', () => {
    const old = {
      id: 'run-1',
      stages: [
        stage('base', 'completed', [link('checkpoint', 'a', 50), link('history-segment', '1', 50), link('model', 'b'), link('history', 'c')]),
        stage('anneal', 'cancelled', [
          link('input', 'b'),
          link('checkpoint', 'd', 20),
          link('history-segment', '2', 20),
          link('checkpoint', 'e', 40),
          link('history-segment', '3', 40),
          link('checkpoint', 'd', 20), // linked twice (inherited, then written again): listed once
          link('checkpoint', 'f', 30),
        ]),
        stage('report', 'cancelled', [link('input', 'b')]),
      ],
    } as unknown as ShowOutput;
    const plan = resumePlan(old);
    assert.equal(plan.parentRunId, 'run-1');
    assert.deepEqual(Object.keys(plan.completed), ['base']);
    assert.deepEqual(plan.completed.base.artifacts.map((a) => a.role), ['model', 'history']);
    assert.ok(Number.isNaN(plan.completed.base.metrics['train/loss']));
    assert.deepEqual(plan.checkpoints, {
      anneal: {
        stageId: 'anneal',
        step: 40,
        sha256: sha('e'),
        bytes: 7,
        history: { sha256: sha('3'), bytes: 7 },
        earlier: [
          { step: 30, sha256: sha('f'), bytes: 7 },
          { step: 20, sha256: sha('d'), bytes: 7 },
        ],
      },
    });
  });
});

describe('mergeCheckpoints', () => {
  const digest = (c: string) => c.padStart(2, '0').repeat(32);
  const ref = (step: number, c: string, earlier: Array<[number, string]> = []): CheckpointRef => ({
    stageId: 's',
    step,
    sha256: digest(c),
    bytes: 1,
    history: null,
    earlier: earlier.map(([s, e]) => ({ step: s, sha256: digest(e), bytes: 1 })),
  });
  const steps = (r: CheckpointRef) => [r.step, ...r.earlier.map((e) => e.step)];

  it('the newer leads; every other checkpoint of either follows once, newest first', () => {
    assert.deepEqual(steps(mergeCheckpoints(ref(8, 'a', [[4, 'b']]), ref(12, 'c', [[8, 'a']]))), [12, 8, 4]);
    assert.deepEqual(steps(mergeCheckpoints(ref(12, 'c'), ref(4, 'b', [[2, 'd']]))), [12, 4, 2], 'an older report (a stage that fell back) joins as a fallback');
    assert.deepEqual(mergeCheckpoints(null, ref(4, 'b')), ref(4, 'b'));
  });

  it(`keeps at most ${KNOWN_CHECKPOINTS} checkpoints`, () => {
    let merged: CheckpointRef | null = null;
    for (let step = 1; step <= 20; step++) merged = mergeCheckpoints(merged, ref(step, step.toString(16)));
    assert.deepEqual(steps(merged!), [20, 19, 18, 17, 16, 15, 14, 13]);
  });
});
