#!/usr/bin/env node
// The `sieve` executable: registers the TypeScript loader, then hands over to cli/main.ts.
require('tsx/cjs');
require('./main.ts');
