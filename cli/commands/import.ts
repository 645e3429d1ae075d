// `sieve import <bundle>`: loads a provenance bundle written by `sieve show <run> --bundle` into
// this SIEVE_HOME (activities/store/bundle.ts): the run and the runs it depends on, with their
// history, verified before the command succeeds, so `compare` and `verify` work here too.

import fs from 'node:fs';
import path from 'node:path';

import { createArtifactStore } from '../../activities/store/artifacts';
import { importBundle } from '../../activities/store/bundle';
import { openDb } from '../../activities/store/db';
import type { ImportOutput } from '../../schemas/cli';
import { NotFoundError, defineCommand, jsonOption, printJson, sieveHome } from './_shared';

export default defineCommand({
  name: 'import',
  description: 'load a provenance bundle (sieve show <run> --bundle) into this SIEVE_HOME',
  positionals: ['<bundle>'],
  options: { ...jsonOption },
  async run({ positionals: [file], values }) {
    const source = path.resolve(file);
    if (!fs.existsSync(source)) throw new NotFoundError(`no bundle at ${source}`);
    const home = sieveHome();
    const { db, close } = openDb({ home });
    try {
      const result = await importBundle(db, createArtifactStore(home), fs.readFileSync(source), source);
      if (values.json) return printJson(result satisfies ImportOutput);
      const lines = result.imported.map((id) => `imported  ${id}`);
      for (const id of result.present) lines.push(`present   ${id} (already here, same history)`);
      lines.push(`${result.imported.length} run${result.imported.length === 1 ? '' : 's'} imported, verified, with ${result.files} artifact file${result.files === 1 ? '' : 's'}; \`sieve show ${result.run}\` shows it.`);
      console.log(lines.join('\n'));
    } finally {
      close();
    }
  },
});
