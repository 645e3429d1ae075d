// `sieve verify [<run>...]`: checks the recorded history (activities/store/verify.ts): each run's
// event chain, its link to the run before it, its stages' sealed metrics and artifacts, every
// artifact's bytes, and its lineage. Prints `ok` or the first broken item per run and exits 1 if
// any is broken. `--head` prints the head of the whole journal, to keep elsewhere; `--against
// <head>` also checks that nothing recorded before that head was rewritten or deleted.

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { allRunIds, checkAgainstHead, historyHead, verifyRun, type RunVerdict } from '../../activities/store/verify';
import type { VerifyHeadOutput, VerifyOutput } from '../../schemas/cli';
import { NotFoundError, UsageError, defineCommand, jsonOption, printJson, sieveHome, table } from './_shared';

export default defineCommand({
  name: 'verify',
  description: 'check that the recorded history is intact (every run, or those named)',
  positionals: ['[<run>...]'],
  options: {
    all: { type: 'boolean', description: 'every run (the default when no run is named)' },
    head: { type: 'boolean', description: 'print the head of the journal (keep it: --against checks it later) and stop' },
    against: { type: 'string', description: 'a head printed earlier by --head: fail if anything recorded before it changed' },
    ...jsonOption,
  },
  async run({ positionals, values }) {
    if (values.all && positionals.length > 0) throw new UsageError('name runs or give --all, not both');
    const home = sieveHome();
    const { db, close } = openDb({ home });
    try {
      const head = historyHead(db);
      if (values.head) {
        if (values.json) return printJson({ head } satisfies VerifyHeadOutput);
        return console.log(head);
      }
      const against = typeof values.against === 'string' ? { head: values.against, problem: checkAgainstHead(db, values.against) } : null;
      const known = new Set(allRunIds(db));
      for (const id of positionals) if (!known.has(id)) throw new NotFoundError(`no run "${id}" in ${home}; \`sieve history\` lists the runs.`);
      const store = createArtifactStore(home);
      const verdicts: RunVerdict[] = [];
      for (const id of positionals.length > 0 ? positionals : known) verdicts.push(await verifyRun(db, store, id));
      const ok = verdicts.every((v) => v.problem === null) && (against === null || against.problem === null);
      const output: VerifyOutput = { ok, head, against, runs: verdicts };
      if (values.json) printJson(output);
      else {
        if (verdicts.length > 0) {
          console.log(table(['run', 'verdict', 'events', 'stages', 'artifacts'], verdicts.map((v) => [v.runId, v.problem === null ? 'ok' : `BROKEN: ${v.problem}`, String(v.checked.events), String(v.checked.stages), String(v.checked.artifacts)])));
        } else console.log(`no runs in ${home}.`);
        if (against) console.log(against.problem === null ? `head ${against.head}: ok, nothing recorded before it changed` : `head ${against.head}: BROKEN: ${against.problem}`);
        console.log(`head ${head}`);
      }
      return ok ? 0 : 1;
    } finally {
      close();
    }
  },
});
