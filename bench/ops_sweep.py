"""A sweep of common ops at about a million elements, each timed on PyTorch's CPU backend and
on the npu in the same process, sorted by ratio (CPU time / npu time): a quick way to find an
op far slower than CPU. Not one of the issue's targets, and not run by `make bench`.

    python bench/ops_sweep.py
"""
import time

import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401


def sync(dev):
    if dev == "npu":
        torch.npu.synchronize()


def median_ms(f, dev, reps=9):
    """Median of `reps` timings, each a loop of at least ~10 ms after one untimed call."""
    f()
    sync(dev)
    t = time.perf_counter()
    f()
    sync(dev)
    inner = max(1, int(0.01 / max(time.perf_counter() - t, 1e-6)))
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(inner):
            f()
        sync(dev)
        times.append((time.perf_counter() - t) / inner)
    times.sort()
    return times[reps // 2] * 1e3


def cases(dev):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(dev)

    x, y = randn(1024, 1024), randn(1024, 1024)
    s, emb, img = randn(1024, 256), randn(1024, 256), randn(8, 64, 28, 28)
    idx = torch.randint(0, 1024, (4096,), generator=g).to(dev)
    tgt = torch.randint(0, 1024, (1024,), generator=g).to(dev)
    m = x > 0
    w, b = torch.ones(64, device=dev), torch.zeros(64, device=dev)
    rm, rv = torch.zeros(64, device=dev), torch.ones(64, device=dev)
    return {
        "sum dim-1": lambda: x.sum(-1),
        "sum dim0": lambda: x.sum(0),
        "mean": lambda: x.mean(),
        "var dim-1": lambda: x.var(-1),
        "std": lambda: x.std(),
        "amax dim-1": lambda: x.amax(-1),
        "max dim0": lambda: x.max(0),
        "argmax dim-1": lambda: x.argmax(-1),
        "norm": lambda: x.norm(),
        "cumsum dim-1": lambda: x.cumsum(-1),
        "exp": lambda: x.exp(),
        "log abs": lambda: x.abs().log(),
        "sigmoid": lambda: x.sigmoid(),
        "tanh": lambda: x.tanh(),
        "relu": lambda: x.relu(),
        "silu": lambda: F.silu(x),
        "mul scalar": lambda: x * 2.0,
        "where": lambda: torch.where(m, x, y),
        "masked_fill": lambda: x.masked_fill(m, 0.0),
        "clamp": lambda: x.clamp(-1, 1),
        "pow 2": lambda: x.pow(2),
        "rsqrt": lambda: x.abs().rsqrt(),
        "cat dim0": lambda: torch.cat([x, y]),
        "cat dim1": lambda: torch.cat([x, y], 1),
        "stack": lambda: torch.stack([x, y]),
        "t().contiguous": lambda: x.t().contiguous(),
        "index_select": lambda: emb.index_select(0, idx),
        "gather": lambda: x.gather(1, tgt.view(-1, 1)),
        "embedding": lambda: F.embedding(idx, emb),
        "cross_entropy": lambda: F.cross_entropy(x, tgt),
        "mse_loss": lambda: F.mse_loss(x, y),
        "dropout": lambda: F.dropout(x, 0.1, True),
        "softmax dim0": lambda: x.softmax(0),
        "topk 10": lambda: x.topk(10, -1),
        "sort dim-1": lambda: s.sort(-1),
        "batch_norm train": lambda: F.batch_norm(img, rm, rv, w, b, True),
        "group_norm": lambda: F.group_norm(img, 8),
        "avg_pool2d": lambda: F.avg_pool2d(img, 2),
        "max_pool2d": lambda: F.max_pool2d(img, 3, 2, 1),
        "interpolate": lambda: F.interpolate(img, scale_factor=2, mode="bilinear"),
        "nonzero": lambda: m.nonzero(),
        "bf16 cast": lambda: x.to(torch.bfloat16),
        "addcmul": lambda: torch.addcmul(x, x, y, value=0.5),
        "lerp": lambda: torch.lerp(x, y, 0.3),
    }


def main():
    res = {}
    for dev in ["cpu", "npu"]:
        for name, f in cases(dev).items():
            res.setdefault(name, {})[dev] = median_ms(f, dev)
    print(f"{'op':20s} {'cpu ms':>9s} {'npu ms':>9s} {'ratio':>6s}")
    for name, r in sorted(res.items(), key=lambda kv: kv[1]["cpu"] / kv[1]["npu"]):
        print(f"{name:20s} {r['cpu']:9.3f} {r['npu']:9.3f} {r['cpu'] / r['npu']:6.2f}")


if __name__ == "__main__":
    main()
