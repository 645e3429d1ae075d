// readHfConfig: what a Hugging Face config.json implies for the engine (GPT-2 and LLaMA, with
// transformers' defaults), where the tokenizer comes from, and one Error naming the file and the
// key for every setting the engine cannot compute exactly. Only config.json is read: the folders
// here hold no weights at all.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { readHfConfig } from '../../../kernels/hf';
import { freshDir, llamaConfig, type LlamaDims, writeFolder } from './helpers';

const D: LlamaDims = { layers: 2, dim: 32, heads: 4, hidden: 64, vocab: 48, context: 16, eps: 1e-6, theta: 500 };
const gpt2 = { model_type: 'gpt2', n_layer: 2, n_embd: 16, n_head: 4, n_positions: 32, vocab_size: 50257 };

/** The config.json path of a folder with this config (and a tokenizer.json), and the error readHfConfig gives for it. */
async function refusal(config: object): Promise<{ path: string; message: string }> {
  const dir = await writeFolder(null, config);
  const message = await readHfConfig(dir).then(
    () => assert.fail(`expected a refusal of ${JSON.stringify(config)}`),
    (err: Error) => err.message,
  );
  return { path: join(dir, 'config.json'), message };
}

describe('readHfConfig', () => {
  it('reads a GPT-2 config with transformers defaults, and uses the built-in tokenizer for vocab 50257', async () => {
    const dir = await writeFolder(null, gpt2, { tokenizer: false });
    assert.deepEqual(await readHfConfig(dir), {
      family: 'gpt2',
      layers: 2,
      dim: 16,
      heads: 4,
      context: 32,
      vocab: 50257,
      mlpHidden: 64,
      normEps: 1e-5,
      ropeTheta: null,
      tieEmbeddings: true,
      tokenizer: { kind: 'gpt2' },
    });
    // The legacy n_ctx stands in for n_positions; a tokenizer.json beside config.json wins.
    const legacy = await writeFolder(null, { ...gpt2, n_positions: undefined, n_ctx: 24, n_inner: 40, layer_norm_epsilon: 1e-6 });
    assert.deepEqual(await readHfConfig(legacy), {
      ...(await readHfConfig(dir)),
      context: 24,
      mlpHidden: 40,
      normEps: 1e-6,
      tokenizer: { kind: 'file', path: join(legacy, 'tokenizer.json') },
    });
    // Transformers' other name for the tanh-approximated GELU is the same function.
    const pytorchTanh = await writeFolder(null, { ...gpt2, activation_function: 'gelu_pytorch_tanh' }, { tokenizer: false });
    assert.equal((await readHfConfig(pytorchTanh)).family, 'gpt2');
  });

  it('reads a LLaMA config, with its defaults and transformers 5 rope_parameters', async () => {
    const dir = await writeFolder(null, llamaConfig(D));
    const expected = {
      family: 'llama',
      layers: 2,
      dim: 32,
      heads: 4,
      context: 16,
      vocab: 48,
      mlpHidden: 64,
      normEps: 1e-6,
      ropeTheta: 500,
      tieEmbeddings: false,
      tokenizer: { kind: 'file', path: join(dir, 'tokenizer.json') },
    };
    assert.deepEqual(await readHfConfig(dir), expected);
    const minimal = await writeFolder(null, {
      model_type: 'llama',
      num_hidden_layers: 2,
      hidden_size: 32,
      num_attention_heads: 4,
      intermediate_size: 64,
      max_position_embeddings: 16,
      vocab_size: 48,
      tie_word_embeddings: true,
    });
    assert.deepEqual(await readHfConfig(minimal), { ...expected, ropeTheta: 10000, tieEmbeddings: true, tokenizer: { kind: 'file', path: join(minimal, 'tokenizer.json') } });
    const v5 = await writeFolder(null, { ...llamaConfig(D), rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 250 } });
    assert.equal((await readHfConfig(v5)).ropeTheta, 250);
  });

  it('names the path of a missing or unreadable config.json', async () => {
    const empty = freshDir();
    await assert.rejects(readHfConfig(empty), {
      message: `${join(empty, 'config.json')} does not exist: a Hugging Face model folder holds its config.json beside the weights`,
    });
    const broken = freshDir();
    writeFileSync(join(broken, 'config.json'), '{"model_type": "gpt2",');
    await assert.rejects(readHfConfig(broken), (err: Error) => err.message.startsWith(`${join(broken, 'config.json')} is not valid JSON (`));
  });

  it('refuses what the engine cannot compute, naming the file and the key', async () => {
    const cases: [object, (path: string) => string][] = [
      [{ ...llamaConfig(D), num_key_value_heads: 2 }, (p) => `${p}: "num_key_value_heads" is 2 but "num_attention_heads" is 4: the engine has no grouped-query attention, so they must be equal`],
      [{ ...gpt2, activation_function: 'gelu' }, (p) => `${p}: "activation_function" is "gelu", but the engine's GPT-2 GELU is the tanh approximation, "gelu_new"`],
      [{ ...gpt2, tie_word_embeddings: false }, (p) => `${p}: "tie_word_embeddings" is false, but sieve's gpt2 family ties the LM head to the token embedding`],
      [{ ...llamaConfig(D), hidden_act: 'gelu' }, (p) => `${p}: "hidden_act" is "gelu", but the engine's LLaMA MLP is SiLU-gated ("silu")`],
      [
        { ...llamaConfig(D), rope_scaling: { rope_type: 'linear', factor: 2 } },
        (p) => `${p}: "rope_scaling" is {"rope_type":"linear","factor":2}, but the engine's RoPE has no scaling: it must be null or absent`,
      ],
      [{ ...llamaConfig(D), attention_bias: true }, (p) => `${p}: "attention_bias" is true, but the engine's LLaMA has no biases`],
      [{ ...llamaConfig(D), mlp_bias: true }, (p) => `${p}: "mlp_bias" is true, but the engine's LLaMA has no biases`],
      [{ ...llamaConfig(D), head_dim: 16 }, (p) => `${p}: "head_dim" is 16, but the engine's head size is hidden_size / num_attention_heads = 8`],
      [{ ...llamaConfig(D), num_attention_heads: 32, num_key_value_heads: 32 }, (p) => `${p}: "num_attention_heads" = 32 gives an odd head size 32/32 = 1; RoPE needs an even one`],
      [{ ...gpt2, n_head: 5 }, (p) => `${p}: "n_head" = 5 does not divide "n_embd" = 16`],
      [{ ...gpt2, n_layer: '2' }, (p) => `${p}: "n_layer" must be a positive integer, got "2"`],
      [{ ...llamaConfig(D), intermediate_size: undefined }, (p) => `${p}: "intermediate_size" is missing`],
      [{ ...llamaConfig(D), model_type: 'mistral' }, (p) => `${p}: "model_type" is "mistral"; sieve imports "gpt2" and "llama" models`],
    ];
    for (const [config, expected] of cases) {
      const { path, message } = await refusal(config);
      assert.equal(message, expected(path));
    }
  });

  it('refuses a folder without tokenizer.json unless the built-in GPT-2 tokenizer fits', async () => {
    const dir = await writeFolder(null, llamaConfig(D), { tokenizer: false });
    await assert.rejects(readHfConfig(dir), {
      message: `${dir} has no tokenizer.json; without one, only a gpt2 model with vocab_size 50257 can use sieve's built-in GPT-2 tokenizer (this is a llama model with vocab_size 48)`,
    });
  });
});
