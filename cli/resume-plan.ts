// What `sieve resume` carries from an old run into the new one, read from the old run's records
// (`sieve show`): each finished stage's outputs, to reuse as they are, and each partial stage's
// recorded checkpoints, newest first — the newest to continue from, the older ones as fallbacks
// should it turn out to be damaged or gone (docs/checkpoint-format.md, "Resuming").

import { CHECKPOINT_ROLE, HISTORY_SEGMENT_ROLE } from '../activities/store/prune';
import { stageOutputOf } from '../activities/store/reads';
import type { ShowOutput, ShowStage } from '../schemas/cli';
import { KNOWN_CHECKPOINTS, type CheckpointFile, type CheckpointRef, type ResumePlan, type StageOutput } from '../schemas/pipeline';
import { FINISHED_STAGE_STATUSES, type StageStatus } from '../schemas/records';

/** Finished stages hand over their outputs; unfinished ones their checkpoints. */
export function resumePlan(old: ShowOutput): ResumePlan {
  const completed: Record<string, StageOutput> = {};
  const checkpoints: Record<string, CheckpointRef> = {};
  for (const s of old.stages) {
    if ((FINISHED_STAGE_STATUSES as readonly StageStatus[]).includes(s.status)) {
      completed[s.id] = stageOutputOf(s.artifacts, s.metrics);
      continue;
    }
    const ref = recordedCheckpoints(s);
    if (ref) checkpoints[s.id] = ref;
  }
  return { parentRunId: old.id, completed, checkpoints };
}

/** A stage's recorded checkpoints as one reference: the newest (by step; the later link on a tie), the rest as fallbacks. */
function recordedCheckpoints(s: ShowStage): CheckpointRef | null {
  const linked = s.artifacts.flatMap((a, order) => (a.role === CHECKPOINT_ROLE && a.step !== null ? [{ step: a.step, sha256: a.sha256, bytes: a.bytes, order }] : []));
  linked.sort((a, b) => b.step - a.step || b.order - a.order);
  const files: CheckpointFile[] = [];
  for (const { step, sha256, bytes } of linked) if (!files.some((f) => f.sha256 === sha256)) files.push({ step, sha256, bytes });
  if (files.length === 0) return null;
  const [newest, ...earlier] = files;
  const segment = [...s.artifacts].reverse().find((a) => a.role === HISTORY_SEGMENT_ROLE && a.step === newest.step);
  return {
    stageId: s.id,
    ...newest,
    history: segment ? { sha256: segment.sha256, bytes: segment.bytes } : null,
    earlier: earlier.slice(0, KNOWN_CHECKPOINTS - 1),
  };
}
