#!/usr/bin/env python3
"""torch_reference.py — PyTorch's figures for the GPU benchmarks of bench/gpu/, measured on the
GPU machine in the same call as sieve_gpu_bench. PyTorch exists only there: sieve never depends
on it, and nothing imports this file.

    python3 bench/gpu/torch_reference.py [--json FILE] SECTION...

Each section prints one JSON object per row on stdout and, with --json, appends it to FILE.
A row that fails carries "error" instead of its figures; the other rows still run.

Sections:
  gemm  G1/G2: torch's dense bf16 linear and its 2:4 linear (to_sparse_semi_structured on
        cuSPARSELt), M = 16384 tokens at the FFN shapes of bench/gpu/gemm.cu, plus the cost of
        compressing a weight (what a training step pays when the weight changes).
  sparsity  G3/G4: the weight-side 2:4 work in eager PyTorch at the shapes of bench/gpu/sparsity.cu:
        S-STE's soft threshold by a sort per group of 4, times beta (to bf16, to fp32), the
        transposable mask by scores against the 90 patterns (one GEMM and an argmax, as the
        2by4 toolkit does), and as reference rows the magnitude mask (topk) and a fused AdamW
        step. Bandwidth counts the bytes the work must move (inputs once, outputs once), as the
        CUDA rows do, so the two are read side by side; "of copy" is against torch's own copy.

  train  G5: GPT-2 small training tokens/s (B=16, T=1024, bf16 autocast, fused AdamW), eager and
        torch.compile, as bench/gpu/train.cu measures sieve.

Timing follows bench/gpu/bench.h: CUDA events around each repetition, warm-up first, the median;
repetitions rotate among enough operand sets to read about 3 L2s of operands.
"""
import argparse
import json
import math


def median_ms(fn, warmup=10, reps=50):
    """Median milliseconds of fn(i) over reps timed runs after warmup untimed ones."""
    import torch

    for i in range(warmup):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn(warmup + i)
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[reps // 2]


def random_nonzero(shape, scale=1.0):
    """bf16 values scale * (+-[0.25, 1)) on the GPU: random, never zero."""
    import torch

    magnitude = torch.rand(shape, device="cuda") * 0.75 + 0.25
    sign = torch.randint(0, 2, shape, device="cuda") * 2 - 1
    return (scale * magnitude * sign).to(torch.bfloat16)


def prune24(w):
    """w (N, K) with the 2 smaller magnitudes of every 4 consecutive values along K zeroed."""
    import torch

    n, k = w.shape
    groups = w.view(n, k // 4, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, groups.abs().topk(2, dim=-1).indices, True)
    return (groups * keep).view(n, k)


# Keep in step with bench/gpu/gemm.cu's kShapes: (target, model, K, N).
GEMM_SHAPES = [
    ("G2", "GPT-2 small FFN up", 768, 3072),
    ("G2", "GPT-2 small FFN down", 3072, 768),
    ("G2", "GPT-2 medium FFN up", 1024, 4096),
    ("G2", "GPT-2 medium FFN down", 4096, 1024),
    ("G1", "LLaMA-7B FFN up", 4096, 11008),
    ("G1", "LLaMA-7B FFN down", 11008, 4096),
    ("G1", "LLaMA-70B FFN up", 8192, 28672),
    ("G1", "LLaMA-70B FFN down", 28672, 8192),
]
GEMM_TOKENS = 16384


def gemm(emit):
    try:
        import torch
        import torch.nn.functional as F
        from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

        # cuSPARSELt, not CUTLASS: the library sieve's 2:4 GEMM uses
        SparseSemiStructuredTensor._FORCE_CUTLASS = False
        cusparselt = torch.backends.cusparselt.version() if torch.backends.cusparselt.is_available() else None
        info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cusparselt": cusparselt}
        l2 = torch.cuda.get_device_properties(0).L2_cache_size
    except Exception as e:  # no torch, no GPU: one row says so
        emit({"bench": "torch_gemm", "target": "", "what": "setup", "error": f"{type(e).__name__}: {e}"})
        return

    M = GEMM_TOKENS
    for target, model, K, N in GEMM_SHAPES:
        row = {"bench": "torch_gemm", "target": target, "what": f"M={M} K={K} N={N} ({model})", **info}
        try:
            sets = max(1, min(16, math.ceil(3 * l2 / (2 * (M * K + N * K)))))
            xs = [random_nonzero((M, K)) for _ in range(sets)]
            ws = [prune24(random_nonzero((N, K), 1 / math.sqrt(K))) for _ in range(sets)]
            sparse_ws = [to_sparse_semi_structured(w) for w in ws]
            with torch.inference_mode():
                dense = median_ms(lambda i: F.linear(xs[i % sets], ws[i % sets]))
                sparse = median_ms(lambda i: F.linear(xs[i % sets], sparse_ws[i % sets]))
                compress = median_ms(lambda i: to_sparse_semi_structured(ws[0]), 3, 20)
                # the 2:4 product must be the dense product of the pruned weight
                want = F.linear(xs[0], ws[0]).float()
                got = F.linear(xs[0], sparse_ws[0]).float()
                rel = ((got - want).norm() / want.norm()).item()
            row.update({
                "ms dense": dense,
                "ms 2:4": sparse,
                "vs dense": dense / sparse,
                "TFLOP/s dense": 2 * M * N * K / (dense * 1e9),
                "ms compress": compress,
                "rel diff 2:4 vs dense": rel,
                "sets": sets,
                "subclass": type(sparse_ws[0]).__name__,
            })
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        finally:
            xs = ws = sparse_ws = want = got = None
            torch.cuda.empty_cache()
        emit(row)


# Keep in step with bench/gpu/sparsity.cu's kShapes: (R, K, model).
SPARSITY_SHAPES = [(768, 3072, "GPT-2 small"), (4096, 11008, "LLaMA-7B"), (8192, 28672, "LLaMA-70B")]


def transposable_patterns():
    """The 90 4x4 0/1 patterns with two ones per row and per column, in sieve.h's order
    (lexicographic in the rows' column pairs, pairs ordered (0,1) < (0,2) < ... < (2,3))."""
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    out = []
    for a in pairs:
        for b in pairs:
            for c in pairs:
                for d in pairs:
                    rows = [a, b, c, d]
                    if all(sum(col in r for r in rows) == 2 for col in range(4)):
                        out.append([1.0 if col in r else 0.0 for r in rows for col in range(4)])
    assert len(out) == 90
    return out


def sparsity(emit):
    try:
        import torch

        info = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
        torch.backends.cuda.matmul.allow_tf32 = False  # the pattern scores in fp32, as the toolkit's kernel
        patterns = torch.tensor(transposable_patterns(), device="cuda")  # (90, 16)
        a = torch.empty(1 << 29, dtype=torch.float32, device="cuda").uniform_()  # 2 GiB
        b = torch.empty_like(a)
        copy_bw = 2 * a.numel() * 4 / (median_ms(lambda i: b.copy_(a)) * 1e-3)
        a = b = None
        torch.cuda.empty_cache()
    except Exception as e:
        emit({"bench": "torch_sparsity", "target": "", "what": "setup", "error": f"{type(e).__name__}: {e}"})
        return

    def sets_for(nbytes):  # rotate over at least 1 GiB, as bench/gpu/sparsity.cu does
        return max(2, (1 << 30) // int(nbytes) + 1)

    def sste(w, beta, dtype):
        groups = w.view(w.shape[0], -1, 4)
        mag = groups.abs()
        t = mag.sort(dim=-1).values[..., 1:2]  # the 2nd smallest |w| of the group
        return (torch.sign(groups) * (mag - t).clamp_min(0) * beta).to(dtype).view(w.shape)

    def transposable(w):
        R, K = w.shape
        blocks = w.abs().view(R // 4, 4, K // 4, 4).permute(0, 2, 1, 3).reshape(-1, 16)
        best = (blocks @ patterns.T).argmax(dim=1)  # ties: the first maximum, the lowest pattern index
        return patterns[best].view(R // 4, K // 4, 4, 4).permute(0, 2, 1, 3).reshape(R, K)

    def magnitude(w):
        groups = w.view(w.shape[0], -1, 4)
        keep = torch.zeros_like(groups).scatter_(-1, groups.abs().topk(2, dim=-1).indices, 1.0)
        return keep.view(w.shape)

    jobs = [
        ("G3", "S-STE w -> bf16 (sort per group)", 4 + 2, lambda w: sste(w, 1.25, torch.bfloat16)),
        ("G3", "S-STE w -> fp32 (sort per group)", 4 + 4, lambda w: sste(w, 1.25, torch.float32)),
        ("G4", "transposable 2:4 mask (90-pattern scores + argmax)", 4 + 4, transposable),
        ("", "magnitude 2:4 mask (topk)", 4 + 4, magnitude),
    ]
    for R, K, model in SPARSITY_SHAPES:
        n = R * K
        for target, what, per_element, fn in jobs:
            row = {"bench": "torch_sparsity", "target": target, "what": f"{what}, {R}x{K} ({model})", **info}
            ws = None
            try:
                nbytes = n * per_element
                sets = sets_for(nbytes)
                ws = [torch.randn(R, K, device="cuda") * 0.02 for _ in range(sets)]
                with torch.inference_mode():
                    ms = median_ms(lambda i: fn(ws[i % sets]))
                bw = nbytes / (ms * 1e-3)
                row.update({"ms": ms, "TB/s": bw / 1e12, "of copy": bw / copy_bw, "sets": sets})
            except Exception as e:
                row["error"] = f"{type(e).__name__}: {e}"
            finally:
                ws = None
                torch.cuda.empty_cache()
            emit(row)

        # AdamW (fused, fp32 w, m, v): read w, m, v, grad; write w, m, v
        row = {"bench": "torch_sparsity", "target": "", "what": f"AdamW step fused (fp32 w, m, v), {R}x{K} ({model})",
               **info}
        params = opts = None
        try:
            nbytes = n * 28
            sets = sets_for(nbytes)
            params = [torch.nn.Parameter(torch.randn(R, K, device="cuda") * 0.02) for _ in range(sets)]
            for p in params:
                p.grad = torch.randn_like(p) * 1e-2
            opts = [torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True) for p in params]
            ms = median_ms(lambda i: opts[i % sets].step())
            bw = nbytes / (ms * 1e-3)
            row.update({"ms": ms, "TB/s": bw / 1e12, "of copy": bw / copy_bw, "sets": sets})
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        finally:
            params = opts = None
            torch.cuda.empty_cache()
        emit(row)


def gpt2(torch, layers, dim, heads, context, vocab, hidden):
    """sieve's GPT-2 (kernels/core/layout.cc) in plain PyTorch: learned embeddings, pre-norm
    blocks with biased linears, LayerNorm eps 1e-5, GELU tanh, causal SDPA, a tied head."""
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
            return x + self.proj(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(vocab, dim)
            self.pos_emb = nn.Embedding(context, dim)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.norm_f = nn.LayerNorm(dim, eps=1e-5)
            for p in self.parameters():
                if p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)

        def forward(self, idx, targets):
            B, T = idx.shape
            x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
            for block in self.blocks:
                x = block(x)
            logits = self.norm_f(x) @ self.tok_emb.weight.t()
            return F.cross_entropy(logits.view(B * T, vocab).float(), targets.view(B * T))

    return GPT()


def train(emit):
    """G5: GPT-2 small training tokens/s, B=16 T=1024, as bench/gpu/train.cu drives sieve: fp32
    master weights, bf16 autocast, a global-norm clip at 1 and fused AdamW, eager and compiled."""
    import statistics
    import time

    B, T = 16, 1024
    for mode in ("eager", "compiled"):
        row = {"bench": "torch_train", "target": "G5", "what": f"torch GPT-2 small training B={B} T={T} ({mode}, bf16 autocast)"}
        try:
            import torch

            torch.manual_seed(1)
            model = gpt2(torch, 12, 768, 12, 1024, 50257, 3072).cuda()
            decay = [p for p in model.parameters() if p.dim() == 2]
            rest = [p for p in model.parameters() if p.dim() != 2]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                    lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
            fwd = torch.compile(model) if mode == "compiled" else model
            idx = torch.randint(0, 50257, (B, T), device="cuda")
            tgt = torch.randint(0, 50257, (B, T), device="cuda")

            def step():
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = fwd(idx, tgt)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                torch.cuda.synchronize()

            for _ in range(5):
                step()
            secs = []
            for _ in range(10):
                t0 = time.perf_counter()
                step()
                secs.append(time.perf_counter() - t0)
            s = statistics.median(secs)
            row.update({"ms/step": 1e3 * s, "tokens/s": B * T / s, "device": torch.cuda.get_device_name(0)})
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        finally:
            model = opt = fwd = None
            torch.cuda.empty_cache()
        emit(row)


SECTIONS = {"gemm": gemm, "sparsity": sparsity, "train": train}


def main():
    parser = argparse.ArgumentParser(description="PyTorch reference figures for bench/gpu (JSON lines).")
    parser.add_argument("--json", metavar="FILE", help="append each row to FILE as one JSON object per line")
    parser.add_argument("sections", nargs="+", choices=sorted(SECTIONS), help="which benchmarks to run")
    args = parser.parse_args()
    out = open(args.json, "a") if args.json else None

    def emit(row):
        line = json.dumps(row)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    try:
        for name in args.sections:
            SECTIONS[name](emit)
    finally:
        if out:
            out.close()


if __name__ == "__main__":
    main()
