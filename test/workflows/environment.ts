// The Temporal set-up the workflow tests share: a local dev server (the installed `temporal`
// binary, nothing downloaded) and the workflow bundle, made once per test file and torn down after.
import { after, before } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

import { temporalExecutable } from '../../cli/temporal/dev-server';
import { installRuntime } from '../../cli/temporal/runtime';

export function workflowTestEnvironment(): { env: TestWorkflowEnvironment; bundle: WorkflowBundleWithSourceMap } {
  const shared = {} as { env: TestWorkflowEnvironment; bundle: WorkflowBundleWithSourceMap };
  before(async () => {
    installRuntime();
    shared.env = await TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path: temporalExecutable() } } });
    shared.bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows') });
  });
  after(async () => {
    await shared.env?.teardown();
  });
  return shared;
}
