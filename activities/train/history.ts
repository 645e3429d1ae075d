// The per-step history of a training stage (loss, learning rate, gradient norm, evaluations) and
// how it is stored beside its checkpoints: as a chain of segment artifacts, each holding the steps
// since the previous segment and naming it, so every checkpoint adds a constant amount of history
// instead of repeating all of it (docs/checkpoint-format.md, "History segments").
//
// Promises: a history read back from its segments is the history that was written, record for
// record and bit for bit (NaN, written as JSON null, reads back as NaN); a chain that is broken,
// damaged or does not end at the step its checkpoint says is refused, naming the segment.

import { z } from 'zod';
import { Sha256 } from '../../schemas/pipeline';
import type { ArtifactStore } from '../store/artifacts';

/** NaN and ±Infinity have no JSON form: JSON.stringify writes null, which reads back as NaN. */
const Measured = z
  .number()
  .nullable()
  .transform((v) => v ?? Number.NaN);

/**
 * One optimizer step as recorded in checkpoints, the history artifact and the metrics table (no
 * timings: they are not reproducible). The key order is the order records are written in, so a
 * parsed record stringifies to the same bytes.
 */
export const StepRecord = z.strictObject({
  step: z.int().positive(),
  loss: Measured,
  lr: z.number(),
  /** NaN when the step's loss was already non-finite and the optimizer was not asked. */
  gradNorm: Measured,
  /** Set on a step whose update was discarded (onNonFinite: skip-step). */
  skipped: z.literal(true).optional(),
  /** Perplexity per evaluation set, on steps where the stage evaluates. */
  eval: z.record(z.string(), Measured).optional(),
  /** A method's own measures at this step (`train/ce`, `sparse/flip_rate`, …), recorded as metrics rows. */
  metrics: z.record(z.string(), Measured).optional(),
});
export type StepRecord = z.output<typeof StepRecord>;

export const History = z.array(StepRecord);

export const SEGMENT_FORMAT = 'sieve-history-segment';

const Segment = z.strictObject({
  format: z.literal(SEGMENT_FORMAT),
  version: z.literal(1),
  /** The segment this one continues, null for the first of the stage. */
  previous: Sha256.nullable(),
  /** Consecutive steps, the first right after the previous segment's last. */
  steps: z.array(StepRecord).min(1),
});

/** A stored segment: its artifact and the last step it holds. */
export interface SegmentRef {
  sha256: string;
  bytes: number;
  step: number;
}

/** Stores the records after `previous` as a segment naming it. */
export async function writeSegment(store: ArtifactStore, previous: SegmentRef | null, records: readonly StepRecord[]): Promise<SegmentRef> {
  const body = { format: SEGMENT_FORMAT, version: 1, previous: previous?.sha256 ?? null, steps: records };
  const stored = await store.put(Buffer.from(JSON.stringify(body)));
  return { sha256: stored.sha256, bytes: stored.bytes, step: records.at(-1)!.step };
}

/** A history read back from its chain: the records, and the segments from the newest back. */
export interface ChainedHistory {
  records: StepRecord[];
  segments: Array<SegmentRef & { previous: SegmentRef | null }>;
}

/**
 * The history of steps 1…`step` from the segment that ends it, verified against each segment's
 * hash; throws naming the segment when the chain is missing a link, is damaged, or has a gap.
 */
export async function readHistory(store: ArtifactStore, head: string, step: number): Promise<ChainedHistory> {
  const parts: Array<{ sha256: string; bytes: number; previous: string | null; steps: StepRecord[] }> = [];
  for (let sha: string | null = head; sha !== null; ) {
    const bytes = await store.read(sha);
    const parsed = Segment.safeParse(parseJson(bytes));
    if (!parsed.success) throw new Error(`history segment ${sha} is not a ${SEGMENT_FORMAT} version 1: ${z.prettifyError(parsed.error)}`);
    parts.push({ sha256: sha, bytes: bytes.length, previous: parsed.data.previous, steps: parsed.data.steps });
    sha = parsed.data.previous;
  }
  const records = parts.reverse().flatMap((p) => p.steps);
  const gap = records.findIndex((r, i) => r.step !== i + 1);
  if (gap >= 0) throw new Error(`history segments ending in ${head} skip from step ${gap} to step ${records[gap].step}`);
  if (records.length !== step) throw new Error(`history segment ${head} ends at step ${records.length}, but its checkpoint is at step ${step}`);
  const refs = parts.map((p) => ({ sha256: p.sha256, bytes: p.bytes, step: p.steps.at(-1)!.step }));
  return { records, segments: refs.map((r, i) => ({ ...r, previous: i > 0 ? refs[i - 1] : null })).reverse() };
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}
