#!/usr/bin/env python3
"""torch_train.py — PyTorch's half of target C6: the models of bench/cpu/train.cc, trained in
PyTorch CPU eager fp32 on the same threads, for bench/cpu/run.sh to set beside sieve's figures.
PyTorch exists only where this runs: sieve never depends on it, and nothing imports this file.

    python3 bench/cpu/torch_train.py [--threads N] [--configs 0.1M,1M,10M,43M] [--warmup W]
                                     [--steps S] [--max-seconds X] [--json FILE]

The model is sieve's GPT-2 (kernels/core/layout.cc, kernels/cpu/model.cc): learned token and
position embeddings; per block x += attn.out(attention(attn.qkv(LN1(x)))) and x += mlp.proj(GELU
(mlp.fc(LN2(x)))), every linear with a bias, LayerNorm eps 1e-5, GELU's tanh approximation
(kernels/cpu/activation.cc), causal softmax attention (F.scaled_dot_product_attention, PyTorch's
own eager kernel); a final LayerNorm; the LM head tied to the token embedding. The loss is the
mean cross-entropy over every position. A step is zero_grad, forward, backward, global-norm clip
at 1, and AdamW (lr 1e-3, betas 0.9/0.95, eps 1e-8, weight decay 0.1 on the matrices only), as
bench/cpu/train.cc drives sieve. tokens/s is the median over the timed steps after warm-up.
Prints one JSON object per config with train.cc's keys; appends it to FILE with --json. Without
PyTorch it says so and exits with status 3.
"""
import argparse
import json
import statistics
import sys
import time

CONFIGS = {  # name: layers, dim, heads, context, mlp hidden, B, T (bench/cpu/train.cc's kConfigs)
    '0.1M': (2, 64, 4, 128, 256, 32, 128),
    '1M': (5, 128, 4, 128, 512, 32, 128),
    '10M': (6, 384, 6, 256, 1536, 16, 256),
    '43M': (6, 768, 12, 256, 3072, 16, 256),
}
VOCAB = 256


def build(torch, layers, dim, heads, context, hidden):
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-5)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.out = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim, eps=1e-5)
            self.fc = nn.Linear(dim, hidden)
            self.proj = nn.Linear(hidden, dim)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, heads, C // heads).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
            return x + self.proj(F.gelu(self.fc(self.norm2(x)), approximate='tanh'))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(VOCAB, dim)
            self.pos_emb = nn.Embedding(context, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm_f = nn.LayerNorm(dim, eps=1e-5)
            for name, p in self.named_parameters():  # sieve_model_init's GPT-2 scheme
                if p.dim() == 2:
                    std = 0.02 / (2 * layers) ** 0.5 if name.endswith(('out.weight', 'proj.weight')) else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif 'norm' in name and name.endswith('weight'):
                    nn.init.ones_(p)
                else:
                    nn.init.zeros_(p)

        def forward(self, idx, targets):
            B, T = idx.shape
            x = self.tok_emb(idx) + self.pos_emb(torch.arange(T))
            for block in self.blocks:
                x = block(x)
            logits = self.norm_f(x) @ self.tok_emb.weight.t()  # tied head
            return F.cross_entropy(logits.view(B * T, VOCAB), targets.view(B * T))

    return GPT()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--configs', default='0.1M,1M,10M,43M')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--max-seconds', type=float, default=20.0)
    ap.add_argument('--json')
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f'torch_train.py: PyTorch is not installed here ({e}); no PyTorch figures', file=sys.stderr)
        sys.exit(3)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    print(f'torch_train.py: torch {torch.__version__}, {threads} threads, '
          f'{torch.backends.cpu.get_cpu_capability()}', file=sys.stderr)
    torch.manual_seed(1)
    for name in args.configs.split(','):
        if name not in CONFIGS:
            sys.exit(f'torch_train.py: unknown config {name} ({", ".join(CONFIGS)})')
        layers, dim, heads, context, hidden, B, T = CONFIGS[name]
        model = build(torch, layers, dim, heads, context, hidden)
        decay = [p for p in model.parameters() if p.dim() == 2]
        rest = [p for p in model.parameters() if p.dim() != 2]
        opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': rest, 'weight_decay': 0.0}],
                                lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
        n = B * T  # bench/engine.ts's token stream
        data = torch.tensor([(i * 7919 + ((i * i) >> 3)) % VOCAB for i in range(n + 1)], dtype=torch.long)
        inputs, targets = data[:n].view(B, T), data[1:].view(B, T)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = model(inputs, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.item()

        for _ in range(args.warmup):
            step()
        secs = []
        start = time.perf_counter()
        while len(secs) < args.steps and (len(secs) < 3 or time.perf_counter() - start < args.max_seconds):
            t0 = time.perf_counter()
            loss = step()
            secs.append(time.perf_counter() - t0)
        s = statistics.median(secs)
        row = {'bench': 'cpu-train', 'engine': 'torch', 'config': name, 'threads': threads,
               'params': sum(p.numel() for p in model.parameters()), 'B': B, 'T': T,
               'tokens_per_s': round(n / s, 1), 'step_ms': round(1e3 * s, 2), 'steps': len(secs),
               'loss': round(loss, 4), 'torch': torch.__version__}
        line = json.dumps(row)
        print(line, flush=True)
        if args.json:
            with open(args.json, 'a') as f:
                f.write(line + '\n')


if __name__ == '__main__':
    main()
