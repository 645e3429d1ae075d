// GPT-2 in Hugging Face layout (`GPT2LMHeadModel`): `transformer.wte.weight`,
// `transformer.h.N.attn.c_attn.weight`, … Checkpoints saved from `GPT2Model` (and the original
// openai-community/gpt2 file) omit the `transformer.` prefix; both read the same.
//
// HF GPT-2 uses Conv1D, whose weight is stored [in, out]; sieve uses nn.Linear's [out, in], so
// every Conv1D weight is transposed. c_attn's output columns are q, then k, then v, which after the
// transpose are exactly the rows of sieve's `attn.qkv.weight`. The LM head is tied to `wte`:
// GPT2LMHeadModel.save_pretrained leaves `lm_head.weight` out, older files may carry a copy. The
// causal-mask buffers `attn.bias` / `attn.masked_bias` of older files hold no weights.
import type { Dim, HfLayout, LayoutConfig, TensorMapping } from './layout';

const PREFIX = 'transformer.';
const HEAD = 'lm_head.weight';

export function gpt2Layout(config: LayoutConfig): HfLayout {
  const { layers, dim: C, mlpHidden: H, vocab: V, context: T } = config;
  const c: Dim = { size: C, from: `n_embd = ${C}` };
  const c3: Dim = { size: 3 * C, from: `n_embd = ${C}` };
  const h: Dim = { size: H, from: `n_inner = ${H}` };
  const v: Dim = { size: V, from: `vocab_size = ${V}` };
  const t: Dim = { size: T, from: `n_positions = ${T}` };
  const plain = (hf: string, ours: string, hfShape: Dim[]): TensorMapping => ({ ours, hf: [PREFIX + hf], hfShape, transposed: false });
  const conv1d = (hf: string, ours: string, hfShape: Dim[]): TensorMapping => ({ ours, hf: [PREFIX + hf], hfShape, transposed: true });

  const tensors = [plain('wte.weight', 'tok_emb.weight', [v, c]), plain('wpe.weight', 'pos_emb.weight', [t, c])];
  for (let l = 0; l < layers; l++) {
    const hl = `h.${l}.`;
    const b = `blocks.${l}.`;
    tensors.push(
      plain(`${hl}ln_1.weight`, `${b}norm1.weight`, [c]),
      plain(`${hl}ln_1.bias`, `${b}norm1.bias`, [c]),
      conv1d(`${hl}attn.c_attn.weight`, `${b}attn.qkv.weight`, [c, c3]),
      plain(`${hl}attn.c_attn.bias`, `${b}attn.qkv.bias`, [c3]),
      conv1d(`${hl}attn.c_proj.weight`, `${b}attn.out.weight`, [c, c]),
      plain(`${hl}attn.c_proj.bias`, `${b}attn.out.bias`, [c]),
      plain(`${hl}ln_2.weight`, `${b}norm2.weight`, [c]),
      plain(`${hl}ln_2.bias`, `${b}norm2.bias`, [c]),
      conv1d(`${hl}mlp.c_fc.weight`, `${b}mlp.fc.weight`, [c, h]),
      plain(`${hl}mlp.c_fc.bias`, `${b}mlp.fc.bias`, [h]),
      conv1d(`${hl}mlp.c_proj.weight`, `${b}mlp.proj.weight`, [h, c]),
      plain(`${hl}mlp.c_proj.bias`, `${b}mlp.proj.bias`, [c]),
    );
  }
  tensors.push(plain('ln_f.weight', 'norm_f.weight', [c]), plain('ln_f.bias', 'norm_f.bias', [c]));

  return {
    architecture: 'GPT2LMHeadModel',
    tensors,
    tiedHead: { hf: HEAD, embedding: `${PREFIX}wte.weight`, why: "sieve's gpt2 family ties the LM head to the token embedding" },
    isIgnored: (name) => /^transformer\.h\.\d+\.attn\.(bias|masked_bias)$/.test(name),
    canonicalName: (name) => (name === HEAD || name.startsWith(PREFIX) ? name : PREFIX + name),
  };
}
