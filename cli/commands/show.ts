// `sieve show <run>`: everything recorded about a run — recipe hash, code version, machine,
// lineage (parent run, each stage's inputs), and per stage its status, why it ran or was reused,
// timings, metrics and artifacts (sha256 and absolute path). `--html` also writes the run's tables,
// its models' measures and its charts to one self-contained file; `--bundle` writes its provenance
// bundle (activities/store/bundle.ts), which `sieve import` loads into another SIEVE_HOME.

import path from 'node:path';

import { createArtifactStore } from '../../activities/store/artifacts';
import { writeBundle } from '../../activities/store/bundle';
import { writeFileAtomic } from '../../kernels/files';
import { formatBytes } from '../../schemas/memory';
import { openDb } from '../../activities/store/db';
import { getRun } from '../read-models';
import { reconcileHome } from '../reconcile';
import { reportFigures } from '../report/figures';
import { renderReport, writeReport } from '../report/html';
import { measureModel, measuredModels } from '../report/models';
import { runTables } from '../report/tables';
import { formatNumber } from './_summary';
import { NotFoundError, UsageError, defineCommand, formatDuration, htmlOption, jsonOption, printJson, sieveHome } from './_shared';

export default defineCommand({
  name: 'show',
  description: 'show a run: stages, metrics, artifacts, timings, lineage',
  positionals: ['<run>'],
  options: {
    ...jsonOption,
    ...htmlOption,
    bundle: { type: 'string', description: 'also write the run and the runs it depends on, with their history, to this file (for `sieve import`)' },
    'with-artifacts': { type: 'boolean', description: 'with --bundle: carry the artifact files too (weights, reports)' },
  },
  async run({ positionals: [runId], values }) {
    const home = sieveHome();
    await reconcileHome(home);
    const { db, close } = openDb({ home });
    try {
      const run = getRun(db, createArtifactStore(home), runId);
      if (!run) throw new NotFoundError(`no run "${runId}" in ${home}; \`sieve history\` lists the runs.`);
      if (values['with-artifacts'] && typeof values.bundle !== 'string') throw new UsageError('--with-artifacts goes with --bundle <file>');
      // Files are written before anything is printed, so an unwritable path fails the command cleanly.
      if (typeof values.bundle === 'string') {
        const bytes = await writeBundle(db, createArtifactStore(home), run.id, { withArtifacts: Boolean(values['with-artifacts']) });
        const file = path.resolve(values.bundle);
        await writeFileAtomic(file, bytes).catch((error: Error) => {
          throw new Error(`cannot write the bundle to ${file}: ${error.message}`);
        });
        process.stderr.write(`bundle written to ${file} (${formatBytes(bytes.length)})\n`);
      }
      if (typeof values.html === 'string') {
        const models = measuredModels(run).map((id) => measureModel(run, id));
        const figures = await reportFigures(
          db,
          run.stages.map((s) => ({ label: s.id, ref: { runId: run.id, stageId: s.id } })),
          models.map((m) => ({ label: m.stage, measures: m })),
        );
        const page = renderReport({ title: `sieve show ${run.id}`, lines: [`generated ${new Date().toISOString()} from ${home}`], tables: runTables(run, models), figures });
        process.stderr.write(`report written to ${writeReport(values.html, page)}\n`);
      }
      if (values.json) return printJson(run);
      const env = run.environment;
      const lines = [
        `run       ${run.id}  (${run.status}${run.error ? `: ${run.error}` : ''})`,
        `recipe    ${run.name}  sha256:${run.recipeHash.slice(0, 16)}`,
        `code      ${run.codeVersion}`,
        `machine   ${env.hostname}, ${env.cpu.model} × ${env.cpu.cores}, node ${env.node}, blas ${env.blas ?? 'none'}`,
        `created   ${run.createdAt}   finished ${run.finishedAt ?? '-'}`,
      ];
      if (run.reproduces) lines.push(`reproduces ${run.reproduces}`);
      else if (run.parentRunId) lines.push(`resumes   ${run.parentRunId}`);
      for (const s of run.stages) {
        lines.push('', `stage ${s.id} (${s.kind}) — ${s.status}${s.from.length ? `, from ${s.from.join(', ')}` : ''}`);
        if (s.reason) lines.push(`  why       ${s.reason}`);
        if (s.reusedFrom) lines.push(`  reused    stage ${s.reusedFrom.stageId} of run ${s.reusedFrom.runId}`);
        if (s.error) lines.push(`  error     ${s.error}`);
        lines.push(`  time      wall ${formatDuration(s.timings.wallMs)}, compute ${formatDuration(s.timings.computeMs)}, attempts ${s.attempt}`);
        if (s.steps !== null) lines.push(`  steps     ${s.step}/${s.steps}`);
        for (const [name, value] of Object.entries(s.metrics)) lines.push(`  metric    ${name} = ${value === null ? 'NaN' : formatNumber(value)}`);
        for (const a of s.artifacts) lines.push(`  artifact  ${a.role.padEnd(10)} ${a.kind.padEnd(11)} ${a.sha256.slice(0, 16)}  ${a.path}${a.step !== null ? `  (step ${a.step})` : ''}`);
      }
      console.log(lines.join('\n'));
    } finally {
      close();
    }
  },
});
