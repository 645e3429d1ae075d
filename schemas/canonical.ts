// Canonical JSON: one byte string per value, the input to every hash sieve records
// (recipe hash, stage cache key).
//
// Sandbox-pure (no imports) so workflows may build canonical forms; the hashing itself
// lives in activities/store. Object keys are sorted by UTF-16 code units, there is no
// whitespace, and numbers use JavaScript's shortest round-trip form, so two values that
// mean the same configuration always give the same text. Anything JSON cannot carry
// faithfully (NaN, Infinity, bigint, functions, Maps, `undefined` inside arrays) throws
// instead of being silently rewritten, because a silent rewrite could make two different
// configurations hash alike. Object keys whose value is `undefined` are left out, as
// JSON.stringify does: an absent optional field and an undefined one mean the same.

/** The canonical JSON text of `value`; throws a TypeError naming the offending path. */
export function canonicalJson(value: unknown): string {
  return encode(value, '$');
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${path} is ${value}, which JSON cannot represent`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`canonicalJson: ${path} is a ${typeof value}, which JSON cannot represent`);
  }
  if (Array.isArray(value)) {
    return `[${value
      .map((item, i) => {
        if (item === undefined) throw new TypeError(`canonicalJson: ${path}[${i}] is undefined`);
        return encode(item, `${path}[${i}]`);
      })
      .join(',')}]`;
  }
  const withToJson = value as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === 'function') return encode(withToJson.toJSON(), path);
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`canonicalJson: ${path} is a ${proto?.constructor?.name ?? 'non-plain object'}, not a plain object`);
  }
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${encode(record[key], `${path}.${key}`)}`);
  return `{${members.join(',')}}`;
}
