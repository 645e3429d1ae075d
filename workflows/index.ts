// Every workflow the `sieve` task queue serves (the worker bundles this file).
export { pipeline } from './pipeline';
export { sweep } from './sweep';
