// Preloaded into a `sieve worker` by test/faults/divergence.test.ts
// (NODE_OPTIONS=--require <this file>, SIEVE_TEST_POISON_AT=<optimizer steps, comma-separated>):
// the worker's engine then returns a NaN gradient on those steps (./poison.ts). Plain CommonJS,
// because it runs before cli/sieve.js registers the TypeScript loader; it registers it itself.
require('tsx/cjs');
const { poisonGradients } = require('./poison.ts');

poisonGradients(new Set(process.env.SIEVE_TEST_POISON_AT.split(',').map(Number)));
