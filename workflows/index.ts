// Every workflow the `sieve` task queue serves (the worker bundles this file).
export { pipeline, progressQuery, checkpointSaved } from './pipeline';
