// Stage kind `export`: a model in a format other tools read. `onnx`: one ONNX file (opset 17,
// input `input_ids` int64 [batch, seq], output `logits` float32 [batch, seq, vocab]) that
// onnxruntime runs, 2:4 zeros kept and the sparsity, recipe hash and lineage in its metadata.
// `safetensors`: a Hugging Face folder (model.safetensors in HF naming, config.json, and the
// tokenizer.json of an imported model) that the `import` stage and transformers read. The files
// are artifacts of the run; `sieve export` copies them out. Its activity: activities/stages/export.ts.
import { z } from 'zod';
import { wrongType } from '../fields';
import { weightCopies } from '../memory';
import { defineStage, StageId, stageObject } from './define';

export const ExportFormat = z.enum(['onnx', 'safetensors'], { error: wrongType('expected `format`: onnx or safetensors') });
export type ExportFormat = z.infer<typeof ExportFormat>;

export const Export = stageObject('export', {
  id: StageId,
  kind: z.literal('export'),
  from: StageId.describe('the model to export'),
  format: ExportFormat.default('onnx').describe('onnx: one .onnx file for onnxruntime; safetensors: a Hugging Face folder'),
});
export type Export = z.infer<typeof Export>;

export const exportStage = defineStage({
  kind: 'export',
  schema: Export,
  produces: 'export',
  accepts: { produces: 'model' },
  reads: () => ({ train: false, eval: [] }),
  seeded: false,
  steps: () => null,
  // The model, and the exported file's tensors built beside it.
  memory: (_stage, recipe) => weightCopies(recipe.model, ['weights', 'the exported tensors']),
  activity: { startToCloseSec: 86_400, heartbeatSec: 60 },
});
