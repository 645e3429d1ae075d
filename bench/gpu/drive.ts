// drive.ts — a recipe's stages run by sieve's own activity code (activities/index.ts
// computeStage, what every compute activity runs) in stage order, without Temporal or SQLite:
// for a GPU machine that can hold neither the Temporal server nor the worker's dependencies
// (the device this project borrows takes 64 MiB and has no Node.js). A real deployment runs
// `sieve worker --queue gpu` there instead (docs/cuda.md); this is how the same stage code is
// exercised on the GPU end to end. Artifacts land in HOME's artifact store as a worker's would.
//
//   node --import tsx bench/gpu/drive.ts RECIPE HOME        (or the esbuild bundle, bench/gpu/bundle.sh)
//
// Prints the backend, a line per heartbeat (throttled to one a second) and, per stage, one JSON
// line with its metrics; exits 1 naming the stage that failed.
import { computeStage } from '../../activities';
import type { StageContext } from '../../activities/stage-context';
import { createArtifactStore } from '../../activities/store/artifacts';
import { loadRecipeFile } from '../../cli/commands/_recipe';
import { backendInfo } from '../../kernels';
import type { StageOutput } from '../../schemas/pipeline';
import { stageInputs, topologicalOrder } from '../../schemas/recipe';

/** What a stage sees of Temporal, here: heartbeats printed, no earlier attempt, no workflow to signal. */
function localContext(stageId: string): StageContext {
  let last = 0;
  return {
    attempt: 1,
    lastHeartbeatCheckpoint: null,
    reportedCheckpoint: async () => null,
    heartbeat: (h) => {
      if (Date.now() - last < 1000 && h.step !== h.steps) return;
      last = Date.now();
      const rate = h.tokensPerSec === null ? '' : ` ${Math.round(h.tokensPerSec)} tokens/s`;
      console.error(`${stageId}: step ${h.step}/${h.steps}${h.loss === null ? '' : ` loss ${h.loss.toFixed(4)}`}${rate}`);
    },
    isCancelled: () => false,
    onCancel: () => undefined,
    throwCancelled: () => {
      throw new Error('cancelled');
    },
    reportCheckpoint: async () => undefined,
  };
}

async function main(file: string, home: string): Promise<number> {
  const { recipe, hash } = await loadRecipeFile(file);
  const backend = backendInfo(recipe.device);
  console.error(`drive: ${recipe.name} on ${backend.name} (${backend.blas ?? 'no BLAS'})`);
  const deps = { store: createArtifactStore(home), threads: null };
  const outputs: Record<string, StageOutput> = {};
  for (const stage of topologicalOrder(recipe)) {
    const inputs = Object.fromEntries(stageInputs(stage).map((id) => [id, outputs[id]]));
    const task = { runId: `drive-${hash.slice(0, 8)}`, recipe, stageId: stage.id, inputs, cacheKey: `drive-${hash.slice(0, 8)}-${stage.id}`, resumeFrom: null };
    try {
      const { output } = await computeStage(deps, localContext(stage.id), task, stage.kind);
      outputs[stage.id] = output;
      console.log(JSON.stringify({ stage: stage.id, kind: stage.kind, device: recipe.device, computeMs: output.computeMs, metrics: output.metrics }));
    } catch (err) {
      console.error(`drive: stage ${stage.id} failed: ${(err as Error).message}`);
      return 1;
    }
  }
  return 0;
}

const [file, home] = process.argv.slice(2);
if (!file || !home) {
  console.error('usage: drive RECIPE HOME');
  process.exit(2);
}
main(file, home).then((code) => process.exit(code));
