// Reaching a Temporal cluster: with TEMPORAL_ADDRESS, the Temporal CLI's own settings (namespace,
// API key, TLS, a config-file profile) reach both the client and the workers sieve starts.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';

import { openTemporal } from '../../../cli/temporal/connect';
import { temporalExecutable } from '../../../cli/temporal/dev-server';
import { installRuntime } from '../../../cli/temporal/runtime';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sieve-connect-'));
let env: TestWorkflowEnvironment;
before(async () => {
  installRuntime();
  env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: temporalExecutable() }, namespace: 'research' } });
});
after(async () => {
  await env?.teardown();
  fs.rmSync(home, { recursive: true, force: true });
});

/** Runs `fn` with the given environment variables set, then restores them. */
async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

// An API key turns TLS on by default (Temporal Cloud); the dev server speaks plaintext, so TEMPORAL_TLS=false.
test("TEMPORAL_NAMESPACE and TEMPORAL_API_KEY reach the client and the workers' target", async () => {
  const address = env.connection.options.address;
  const session = await withEnv({ TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: 'research', TEMPORAL_API_KEY: 'not-checked-by-a-dev-server', TEMPORAL_TLS: 'false' }, () => openTemporal(home, { start: false }));
  try {
    assert.ok(session && !session.embedded);
    assert.equal(session.client.options.namespace, 'research');
    assert.deepEqual([session.target.namespace, session.target.options.address, session.target.options.apiKey], ['research', address, 'not-checked-by-a-dev-server']);
    // The namespace is really the one used: the cluster answers for it.
    const described = await session.client.workflowService.describeNamespace({ namespace: session.client.options.namespace });
    assert.equal(described.namespaceInfo?.name, 'research');
  } finally {
    await session?.close();
  }
});

test('TLS settings are read (a server CA that is not a certificate fails the connection, naming TEMPORAL_ADDRESS)', async () => {
  const address = env.connection.options.address;
  await assert.rejects(
    withEnv({ TEMPORAL_ADDRESS: address, TEMPORAL_TLS_SERVER_CA_CERT_DATA: 'not a certificate' }, () => openTemporal(home, { start: false })),
    /Cannot reach Temporal at TEMPORAL_ADDRESS=/,
  );
});
