"""Quickstart: train a small classifier on the software NPU, then the same run on the CPU.

Data: three interleaved spirals (generated, 6000 points). The model is an MLP trained with
AdamW. The script prints the loss as it falls on npu:0, the accuracy, and the throughput of
the npu run next to the identical CPU run.
"""
import copy
import math
import time
import warnings

import torch

import torch_npu  # noqa: F401  (also loaded by `import torch` through the entry point)


def spirals(n_per_class=2000, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c in range(classes):
        r = torch.linspace(0.05, 1.0, n_per_class)
        theta = torch.linspace(0, 4 * math.pi, n_per_class) + 2 * math.pi * c / classes
        theta = theta + 0.2 * torch.randn(n_per_class, generator=g)
        xs.append(torch.stack([r * theta.sin(), r * theta.cos()], dim=1))
        ys.append(torch.full((n_per_class,), c))
    return torch.cat(xs), torch.cat(ys)


def train(model, x, y, device, epochs, batch, log):
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = x.to(device), y.to(device)
    n = x.shape[0]
    gen = torch.Generator().manual_seed(1)
    steps = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        if log and (epoch + 1) % 3 == 0:
            print(f"  epoch {epoch + 1:2d}  loss {loss.item():.4f}")
    if device != "cpu":
        torch.npu.synchronize()
    elapsed = time.perf_counter() - start
    acc = (model(x).argmax(1) == y).float().mean().item()
    return steps / elapsed, acc


def main():
    # Ops without an NPU kernel yet say so once each; the summary at the end counts them.
    warnings.filterwarnings("ignore", message=".*falls back to the CPU")
    torch.manual_seed(0)
    x, y = spirals()
    model = torch.nn.Sequential(
        torch.nn.Linear(2, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 3),
    )
    print(f"device: {torch.npu.get_device_name(0)} (software NPU), {torch.npu.device_count()} devices")
    print("training on npu:0")
    npu_rate, npu_acc = train(copy.deepcopy(model), x, y, "npu:0", epochs=30, batch=256, log=True)
    print("training on cpu")
    cpu_rate, cpu_acc = train(copy.deepcopy(model), x, y, "cpu", epochs=30, batch=256, log=False)
    print(f"accuracy: npu {npu_acc:.3f}, cpu {cpu_acc:.3f}")
    print(f"throughput: npu {npu_rate:.1f} steps/s, cpu {cpu_rate:.1f} steps/s "
          f"(npu/cpu = {npu_rate / cpu_rate:.2f})")
    fallback = torch.npu.sim.fallback_counts()
    print(f"ops that ran on the CPU fallback: {len(fallback)} distinct, {sum(fallback.values())} calls")


if __name__ == "__main__":
    main()
