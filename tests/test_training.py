"""A 20-step MLP training loop (AdamW) on npu matches the same loop on CPU."""
import copy

import torch

import torch_npu


def make_data(n=256, d=16, classes=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    y = (x @ w).argmax(1)
    return x, y


def train(model, x, y, device, steps=20):
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    x, y = x.to(device), y.to(device)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, [p.detach().cpu() for p in model.parameters()]


def test_mlp_adamw_matches_cpu():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, y = make_data()
    cpu_losses, cpu_params = train(copy.deepcopy(model), x, y, "cpu")
    npu_losses, npu_params = train(copy.deepcopy(model), x, y, "npu")
    assert cpu_losses[-1] < cpu_losses[0] * 0.7
    torch.testing.assert_close(torch.tensor(npu_losses), torch.tensor(cpu_losses), rtol=1e-4, atol=1e-5)
    for a, b in zip(npu_params, cpu_params):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
