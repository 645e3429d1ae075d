// Which failures of a stage will recur on every attempt, and so must fail it at once instead of
// being retried (each retry costs a back-off and a model build, and hides the real message): the
// engine refusing its input, a machine out of memory or disk, storage that cannot be written.
// Each becomes a non-retryable ApplicationFailure whose message names the resource, the path and
// the numbers. Anything else (a worker that died, a server that restarted) stays retryable.

import { statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { InvalidArgumentError, OutOfMemoryError } from '../kernels';
import { formatBytes } from '../schemas/memory';
import { ERROR_TYPES } from '../workflows/contract';
import { badInput } from './compute';

/** The stage needs more memory or disk than the machine has: retrying on it cannot help. */
export function resourceExhausted(message: string, cause?: Error): ApplicationFailure {
  return ApplicationFailure.create({ message, type: ERROR_TYPES.resourceExhausted, nonRetryable: true, cause });
}

const memoryLine = () => `this machine has ${formatBytes(os.totalmem())} of memory, ${formatBytes(os.freemem())} free`;

/** The error, or its first cause, that carries a system error code. */
function systemError(error: unknown): NodeJS.ErrnoException | null {
  for (let e = error; e instanceof Error; e = e.cause) if (typeof (e as NodeJS.ErrnoException).code === 'string') return e as NodeJS.ErrnoException;
  return null;
}

/** Free and total bytes of the file system holding `file` (itself, or its nearest existing ancestor). */
function diskSpace(file: string): string {
  for (let dir = file; ; dir = path.dirname(dir)) {
    try {
      const stats = statfsSync(dir);
      return `${formatBytes(stats.bavail * stats.bsize)} free of ${formatBytes(stats.blocks * stats.bsize)} on its file system`;
    } catch {
      if (dir === path.dirname(dir)) return 'free space unknown';
    }
  }
}

/**
 * The failure with the attempt it happened on in its details, so the stage row records how many
 * attempts were made even when the last one fails. A cancellation passes through untouched.
 */
export function attachAttempt(error: unknown, attempt: number): unknown {
  if (error instanceof CancelledFailure || !(error instanceof Error)) return error;
  if (error instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      message: error.message,
      type: error.type ?? undefined,
      nonRetryable: error.nonRetryable ?? undefined,
      nextRetryDelay: error.nextRetryDelay,
      category: error.category ?? undefined,
      details: [{ attempt }],
      cause: error.cause,
    });
  }
  return ApplicationFailure.create({ message: error.message, type: error.name, nonRetryable: false, details: [{ attempt }], cause: error });
}

/** `error` as the stage should fail with it: non-retryable when it would recur on every attempt. */
export function classifyStageFailure(error: unknown, where: { home: string }): unknown {
  if (error instanceof ApplicationFailure || error instanceof CancelledFailure) return error;
  if (error instanceof InvalidArgumentError) return badInput(error);
  if (error instanceof OutOfMemoryError) return resourceExhausted(`the engine ran out of memory: ${error.message}; ${memoryLine()}`, error);
  if (error instanceof RangeError && /Invalid typed array length|Array buffer allocation failed|Invalid array length/.test(error.message)) {
    return resourceExhausted(`could not allocate memory in the worker (${error.message}); ${memoryLine()}`, error);
  }
  const system = systemError(error);
  if (!system || !(error instanceof Error)) return error;
  const file = system.path ?? where.home;
  switch (system.code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return resourceExhausted(`the disk is full writing ${file} (${system.code}): ${diskSpace(file)}. ${error.message}`, error);
    case 'EROFS':
    case 'EACCES':
    case 'EPERM':
      return ApplicationFailure.create({
        message: `cannot write ${file} (${system.code}: ${system.code === 'EROFS' ? 'a read-only file system' : 'permission denied'}). ${error.message}`,
        type: ERROR_TYPES.storageUnwritable,
        nonRetryable: true,
        cause: error,
      });
  }
  return error;
}
