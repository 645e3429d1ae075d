// `sieve export <run> --stage <id> --format onnx|safetensors --out <path>`: a model out of a run.
// For an `export` stage, its stored files are copied out (verified against their hashes); for any
// stage that produced a model, the model is exported now, as the export stage would. ONNX goes to
// one file, safetensors to a Hugging Face folder. Every file is written under a temporary name and
// renamed, so `--out` never holds half a file.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { onnxProvenance } from '../../activities/stages/export';
import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { loadCheckpoint } from '../../kernels/checkpoint';
import { writeFileAtomic } from '../../kernels/files';
import { exportHf } from '../../kernels/hf';
import { exportOnnx } from '../../kernels/onnx/export';
import type { ShowOutput } from '../../schemas/cli';
import { FINISHED_STAGE_STATUSES } from '../../schemas/records';
import { ExportFormat } from '../../schemas/stages/export';
import { getRun } from '../read-models';
import { NotFoundError, UsageError, defineCommand, jsonOption, printJson, sieveHome } from './_shared';

interface Exported {
  format: ExportFormat;
  out: string;
  files: Array<{ path: string; sha256: string; bytes: number }>;
}

export default defineCommand({
  name: 'export',
  description: "write a stage's model as ONNX or a Hugging Face safetensors folder",
  positionals: ['<run>'],
  options: {
    stage: { type: 'string', description: 'the stage whose model (or whose export) to write' },
    format: { type: 'string', description: 'onnx (one file; the default) or safetensors (a Hugging Face folder)' },
    out: { type: 'string', description: 'the file (onnx) or folder (safetensors) to write' },
    ...jsonOption,
  },
  async run({ positionals: [runId], values }) {
    const stageId = values.stage as string | undefined;
    const out = values.out as string | undefined;
    if (!stageId) throw new UsageError('--stage is required: the stage whose model to export.');
    if (!out) throw new UsageError('--out is required: the file (onnx) or folder (safetensors) to write.');
    const format = values.format === undefined ? undefined : ExportFormat.safeParse(values.format);
    if (format && !format.success) throw new UsageError(`--format must be onnx or safetensors, got "${values.format}".`);

    const home = sieveHome();
    const { db, close } = openDb({ home });
    let run: ShowOutput | null;
    try {
      run = getRun(db, createArtifactStore(home), runId);
    } finally {
      close();
    }
    if (!run) throw new NotFoundError(`no run "${runId}" in ${home}; \`sieve history\` lists the runs.`);
    const stage = run.stages.find((s) => s.id === stageId);
    if (!stage) throw new NotFoundError(`run ${run.id} has no stage "${stageId}"; its stages are ${run.stages.map((s) => s.id).join(', ')}.`);
    if (!(FINISHED_STAGE_STATUSES as readonly string[]).includes(stage.status)) {
      throw new UsageError(`stage ${stageId} of run ${run.id} is ${stage.status}: only a finished stage has a model to export.`);
    }
    const target = path.resolve(out);
    const result =
      stage.kind === 'export'
        ? await copyExport(run, stage, target, format?.data)
        : await exportModel(run, stage, target, format?.data ?? 'onnx');
    if (values.json) return printJson(result);
    console.log(result.files.map((f) => `${f.path}  ${f.bytes} bytes  sha256 ${f.sha256}`).join('\n'));
  },
});

type Stage = ShowOutput['stages'][number];

/** An export stage's stored files, copied out. */
async function copyExport(run: ShowOutput, stage: Stage, out: string, format: ExportFormat | undefined): Promise<Exported> {
  const recorded = run.recipe.stages.find((s) => s.id === stage.id);
  const stageFormat = recorded && 'format' in recorded ? (recorded.format as ExportFormat) : 'onnx';
  if (format !== undefined && format !== stageFormat) {
    throw new UsageError(`stage ${stage.id} exported ${stageFormat}, not ${format}; leave --format out, or export its input stage (${stage.from.join(', ')}) as ${format}.`);
  }
  const files = stage.artifacts.filter((a) => a.role === 'export' || a.role.startsWith('export/'));
  if (stageFormat === 'onnx') return { format: stageFormat, out, files: [await writeExport(out, readVerified(files[0]))] };
  ensureDirectory(out);
  const written = [];
  for (const a of files) written.push(await writeExport(path.join(out, a.role === 'export' ? 'model.safetensors' : a.role.slice('export/'.length)), readVerified(a)));
  return { format: stageFormat, out, files: written };
}

/** A stage's model, exported now. */
async function exportModel(run: ShowOutput, stage: Stage, out: string, format: ExportFormat): Promise<Exported> {
  const model = stage.artifacts.find((a) => a.role === 'model');
  if (!model) throw new UsageError(`stage ${stage.id} of run ${run.id} is ${/^[aeiou]/.test(stage.kind) ? 'an' : 'a'} ${stage.kind} stage and produced no model to export.`);
  const checkpoint = await loadCheckpoint(model.path);
  if (format === 'onnx') {
    const bytes = exportOnnx(checkpoint, { metadata: onnxProvenance({ runId: run.id, recipe: run.recipe }, stage.id) });
    return { format, out, files: [await writeExport(out, bytes)] };
  }
  ensureDirectory(out);
  const tokenizer = typeof run.recipe.model.tokenizer === 'object' ? run.recipe.model.tokenizer.file : undefined;
  const { files } = await exportHf(checkpoint, out, { tokenizer });
  return { format, out, files: files.map((file) => ({ path: file, ...digest(fs.readFileSync(file)) })) };
}

function readVerified(artifact: { path: string; sha256: string } | undefined): Buffer {
  if (!artifact) throw new Error('the export stage recorded no exported file');
  const bytes = fs.readFileSync(artifact.path);
  if (digest(bytes).sha256 !== artifact.sha256) throw new Error(`${artifact.path} does not match its recorded sha256 ${artifact.sha256}: the artifact is damaged`);
  return bytes;
}

const digest = (bytes: Uint8Array) => ({ sha256: crypto.createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length });

function ensureDirectory(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create the output folder ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!fs.statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder: a safetensors export writes a Hugging Face folder`);
}

/** `bytes` to `file`, complete or not at all; a folder in the way is refused. */
async function writeExport(file: string, bytes: Uint8Array): Promise<Exported['files'][number]> {
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new Error(`${file} is a folder: an ONNX export writes one file`);
  await writeFileAtomic(file, bytes);
  return { path: file, ...digest(bytes) };
}
