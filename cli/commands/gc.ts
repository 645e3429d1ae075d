// `sieve gc [--dry-run]`: deletes what nothing in SIEVE_HOME needs any more — checkpoints of
// finished runs beyond their stage's keepCheckpoints, artifact files no record references, old
// leftovers in artifacts/tmp — and prints each file with its size. The rules, and what it never
// deletes, are in activities/store/gc.ts and docs/operations.md ("Pruning and `sieve gc`").

import { collectGarbage, GC_GRACE_SEC } from '../../activities/store/gc';
import { openDb } from '../../activities/store/db';
import { formatBytes } from '../../schemas/memory';
import { defineCommand, jsonOption, printJson, sieveHome } from './_shared';

export default defineCommand({
  name: 'gc',
  description: 'delete old checkpoints and leftovers nothing needs (--dry-run: only list them)',
  positionals: [],
  options: {
    'dry-run': { type: 'boolean', description: 'list what would be deleted, and its size, without deleting anything' },
    ...jsonOption,
  },
  async run({ values }) {
    const home = sieveHome();
    const { db, close } = openDb({ home });
    try {
      const report = await collectGarbage(db, home, { dryRun: Boolean(values['dry-run']) });
      if (values.json) return printJson(report);
      const verb = report.dryRun ? 'would delete' : 'deleted';
      const lines = report.deleted.map((f) => `${verb.padEnd(12)} ${f.path}  ${formatBytes(f.bytes)}  (${f.why})`);
      lines.push(`${verb} ${report.deleted.length} file${report.deleted.length === 1 ? '' : 's'}, ${formatBytes(report.bytes)}, in ${home}`);
      if (report.pruned.length > 0) lines.push(`${report.dryRun ? 'would unlink' : 'unlinked'} ${report.pruned.length} checkpoint${report.pruned.length === 1 ? '' : 's'} beyond their stage's keepCheckpoints`);
      for (const f of report.deferred) lines.push(`kept         ${f.path}  ${formatBytes(f.bytes)}  (${f.why})`);
      if (report.deferred.length > 0) lines.push(`${report.deferred.length} file${report.deferred.length === 1 ? '' : 's'} left for a later gc (grace period ${GC_GRACE_SEC / 60} minutes)`);
      console.log(lines.join('\n'));
    } finally {
      close();
    }
  },
});
