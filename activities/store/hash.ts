// The one sha256 helper for values held in memory (texts, canonical JSON, small buffers), and the
// identities built on it. Files are hashed while they stream (./artifacts.ts, kernels/safetensors.ts).
import { createHash } from 'node:crypto';
import { canonicalJson } from '../../schemas/canonical';
import type { Recipe } from '../../schemas/recipe';

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of the recipe's canonical JSON: equal for recipes that mean the same, whatever their formatting. */
export function recipeHash(recipe: Recipe): string {
  return sha256Hex(canonicalJson(recipe));
}
