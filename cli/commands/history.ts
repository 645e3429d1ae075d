// `sieve history`: past runs, newest first, filtered by recipe name and status.

import { openDb } from '../../activities/store/db';
import { listRuns } from '../read-models';
import { reconcileHome } from '../reconcile';
import { RunStatus } from '../../schemas/records';
import { UsageError, defineCommand, formatDuration, jsonOption, printJson, sieveHome, table } from './_shared';

export default defineCommand({
  name: 'history',
  description: 'list runs, newest first',
  positionals: [],
  options: {
    name: { type: 'string', description: 'only runs of this recipe name' },
    status: { type: 'string', description: `only runs with this status (${RunStatus.options.join(', ')})` },
    limit: { type: 'string', description: 'at most this many runs', default: '50' },
    ...jsonOption,
  },
  async run({ values }) {
    const status = values.status === undefined ? undefined : RunStatus.safeParse(values.status);
    if (status && !status.success) throw new UsageError(`--status must be one of ${RunStatus.options.join(', ')}, got "${values.status}".`);
    const limit = Number(values.limit ?? 50);
    if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit must be a positive integer, got "${values.limit}".`);
    const home = sieveHome();
    await reconcileHome(home);
    const { db, close } = openDb({ home });
    try {
      const runs = listRuns(db, { name: values.name as string | undefined, status: status?.data, limit });
      if (values.json) return printJson({ runs });
      if (runs.length === 0) {
        const filters = [values.name === undefined ? '' : ` named "${values.name}"`, status ? ` with status ${status.data}` : ''].join('');
        return console.log(filters ? `no runs${filters}.` : 'no runs recorded yet.');
      }
      console.log(
        table(
          ['run', 'status', 'created', 'time', 'parent', 'code'],
          runs.map((r) => [
            r.id,
            r.status,
            r.createdAt.replace('T', ' ').slice(0, 19),
            formatDuration(r.startedAt && r.finishedAt ? Date.parse(r.finishedAt) - Date.parse(r.startedAt) : null),
            r.parentRunId ?? '',
            r.codeVersion.slice(0, 16),
          ]),
        ),
      );
    } finally {
      close();
    }
  },
});
