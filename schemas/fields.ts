// Field builders shared by the recipe schemas, so every key words its errors the same way.
//
// Sandbox-pure (zod only): workflows import the recipe schemas. A message is one clear
// sentence naming the key; a missing key is left to the parse-level error map, which words it
// as missing, so the builders only word wrong types and out-of-range values.
import { z } from 'zod';

/** A wrong-type message; a missing key (input undefined) is left to the parse-level map. */
export const wrongType = (message: string) => (issue: { input?: unknown }) => (issue.input === undefined ? undefined : message);

export const positiveInt = (what: string) =>
  z.int({ error: wrongType(`expected ${what}: a whole number`) }).positive(`${what} must be at least 1`);

export const nonNegative = (what: string) =>
  z.number({ error: wrongType(`expected ${what}: a number`) }).nonnegative(`${what} must not be negative`);

export const positive = (what: string) =>
  z.number({ error: wrongType(`expected ${what}: a number`) }).positive(`${what} must be positive`);

/** A number in [0, 1). */
export const unitInterval = (what: string) =>
  z
    .number({ error: wrongType(`expected ${what}: a number`) })
    .min(0, `${what} must be in [0, 1)`)
    .lt(1, `${what} must be in [0, 1)`);

/** "a pretrain stage", "an evaluate stage": for messages. */
export function aStage(kind: string): string {
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} stage`;
}

/** A seed: the recipe's, or a stage's own (`seed` on a seeded stage, which pins it across a sweep's seeds). */
export const Seed = z
  .int({ error: wrongType('expected `seed`: a whole number') })
  .min(0, '`seed` must be in [0, 2^32 − 1]')
  .max(2 ** 32 - 1, '`seed` must be in [0, 2^32 − 1]');

/** The seed a seeded stage runs with: its own `seed` when it has one, else the recipe's. */
export function stageSeed(stage: object, recipe: { seed: number }): number {
  const own = (stage as { seed?: number }).seed;
  return own ?? recipe.seed;
}
