// LLaMA in Hugging Face layout (`LlamaForCausalLM`): `model.embed_tokens.weight`,
// `model.layers.N.self_attn.{q,k,v,o}_proj.weight`, `model.layers.N.mlp.{gate,up,down}_proj.weight`,
// the two RMSNorm weights per layer, `model.norm.weight`, `lm_head.weight`.
//
// Every weight is an nn.Linear [out, in], as in sieve, so nothing is transposed; sieve's
// `attn.qkv.weight` is q_proj, k_proj and v_proj stacked by rows. No row permutation either: the
// engine's RoPE rotates pairs (i, i + HS/2) within each head, the rotate_half convention of HF's
// LlamaModel (test/kernels/hf/llama-logits.test.ts checks it against HF's forward). With
// `tie_word_embeddings` the checkpoint may omit lm_head.weight and sieve's untied head gets a copy
// of the embedding. `rotary_emb.inv_freq` buffers of older files hold no weights.
import type { Dim, HfLayout, LayoutConfig, TensorMapping } from './layout';

const EMBEDDING = 'model.embed_tokens.weight';
const HEAD = 'lm_head.weight';

export function llamaLayout(config: LayoutConfig): HfLayout {
  const { layers, dim: C, mlpHidden: H, vocab: V } = config;
  const c: Dim = { size: C, from: `hidden_size = ${C}` };
  const h: Dim = { size: H, from: `intermediate_size = ${H}` };
  const v: Dim = { size: V, from: `vocab_size = ${V}` };
  const one = (hf: string, ours: string, hfShape: Dim[]): TensorMapping => ({ ours, hf: [hf], hfShape, transposed: false });

  const tensors = [one(EMBEDDING, 'tok_emb.weight', [v, c])];
  for (let l = 0; l < layers; l++) {
    const m = `model.layers.${l}.`;
    const b = `blocks.${l}.`;
    tensors.push(
      one(`${m}input_layernorm.weight`, `${b}norm1.weight`, [c]),
      {
        ours: `${b}attn.qkv.weight`,
        hf: [`${m}self_attn.q_proj.weight`, `${m}self_attn.k_proj.weight`, `${m}self_attn.v_proj.weight`],
        hfShape: [c, c],
        transposed: false,
      },
      one(`${m}self_attn.o_proj.weight`, `${b}attn.out.weight`, [c, c]),
      one(`${m}post_attention_layernorm.weight`, `${b}norm2.weight`, [c]),
      one(`${m}mlp.gate_proj.weight`, `${b}mlp.gate.weight`, [h, c]),
      one(`${m}mlp.up_proj.weight`, `${b}mlp.up.weight`, [h, c]),
      one(`${m}mlp.down_proj.weight`, `${b}mlp.down.weight`, [c, h]),
    );
  }
  tensors.push(one('model.norm.weight', 'norm_f.weight', [c]), one(config.tieEmbeddings ? EMBEDDING : HEAD, 'lm_head.weight', [v, c]));

  return {
    architecture: 'LlamaForCausalLM',
    tensors,
    tiedHead: config.tieEmbeddings ? { hf: HEAD, embedding: EMBEDDING, why: 'config.json says tie_word_embeddings = true' } : null,
    isIgnored: (name) => /^model\.(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq$/.test(name),
    canonicalName: (name) => name,
  };
}
