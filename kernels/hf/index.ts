// Hugging Face checkpoints in and out, for the GPT-2 and LLaMA families: `readHfConfig` (config.json
// only, for validation), `importHf` (a folder → engine config and tensors) and `exportHf` (a
// checkpoint state → a folder transformers reads). docs/architecture.md, "Hugging Face checkpoints".
export { type HfModelConfig, type HfTokenizer, readHfConfig } from './config';
export { type HfExportOptions, exportHf } from './export';
export { type HfImport, importHf } from './import';
export type { HfSource } from './source';
