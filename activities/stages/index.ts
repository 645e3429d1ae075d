// The computation of every stage kind, by kind: the activity-side twin of the definitions in
// schemas/stages/index.ts. The type requires exactly one entry per kind, so a kind defined there
// but not implemented here (or the other way round) does not compile.
import type { StageKind } from '../../schemas/stages';
import type { StageRun } from '../compute';
import { evaluate } from './evaluate';
import { exportModel } from './export';
import { importModel } from './import';
import { pretrain } from './pretrain';
import { prune } from './prune';
import { quantize } from './quantize';
import { sparseTrain } from './sparse-train';

export const STAGE_RUNS: { [K in StageKind]: StageRun<K> } = {
  import: importModel,
  pretrain,
  prune,
  'sparse-train': sparseTrain,
  quantize,
  evaluate,
  export: exportModel,
};
