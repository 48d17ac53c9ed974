"""Whole models train on the npu with the CPU fallback disabled, and follow CPU's losses: a
small GPT-style language model (AdamW) and a small ResNet (SGD with momentum)."""
import os
import sys

import pytest
import torch

import torch_npu  # noqa: F401
from helpers import no_fallback  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from models import SmallResNet, TinyGPT  # noqa: E402

pytestmark = pytest.mark.usefixtures("no_fallback")


def train(model, opt_fn, batches, device, loss_fn):
    model = model.to(device)
    opt = opt_fn(model.parameters())
    losses = []
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(model, x.to(device), y.to(device))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_tiny_gpt_trains_like_cpu():
    # a learnable language: each sequence counts up from a random start
    g = torch.Generator().manual_seed(0)
    seqs = [(torch.randint(0, 128, (4, 1), generator=g) + torch.arange(33)) % 128 for _ in range(8)]
    batches = [(s[:, :-1], s[:, 1:]) for s in seqs]
    torch.manual_seed(0)
    cpu_model = TinyGPT()
    npu_model = TinyGPT()
    npu_model.load_state_dict(cpu_model.state_dict())
    opt = lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.1)  # noqa: E731
    loss = lambda m, x, y: m(x, y)[1]  # noqa: E731
    cpu = train(cpu_model, opt, batches, "cpu", loss)
    npu = train(npu_model, opt, batches, "npu", loss)
    assert npu[-1] < npu[0]
    for a, b in zip(npu, cpu):
        assert abs(a - b) <= 1e-3 * abs(b), (npu, cpu)


def test_small_resnet_trains_like_cpu():
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 3, 32, 32, generator=g).double(), torch.randint(0, 10, (4,), generator=g)) for _ in range(4)]
    torch.manual_seed(0)
    # float64: batch norm over 4 images at 1x1 resolution amplifies last-bit differences of
    # float32 (gradients agree to 1e-4 after one step, losses drift apart by 1% within four)
    cpu_model = SmallResNet(width=8).double()
    npu_model = SmallResNet(width=8).double()
    npu_model.load_state_dict(cpu_model.state_dict())
    opt = lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)  # noqa: E731
    loss = lambda m, x, y: torch.nn.functional.cross_entropy(m(x), y)  # noqa: E731
    cpu = train(cpu_model, opt, batches, "cpu", loss)
    npu = train(npu_model, opt, batches, "npu", loss)
    for a, b in zip(npu, cpu):
        assert abs(a - b) <= 1e-9 * abs(b), (npu, cpu)
    # eval mode uses the running statistics both trained
    cpu_model.eval()
    npu_model.eval()
    x = batches[0][0]
    torch.testing.assert_close(npu_model(x.npu()).detach().cpu(), cpu_model(x).detach())


def test_gpt_with_dropout_runs_natively_and_generates():
    torch.manual_seed(0)
    model = TinyGPT(dropout=0.1).npu()
    x = torch.randint(0, 128, (2, 16), device="npu")
    _, loss = model(x, x)
    loss.backward()
    model.eval()
    with torch.no_grad():
        idx = x[:, :4]
        for _ in range(4):
            nxt = model(idx)[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    assert idx.shape == (2, 8) and idx.device.type == "npu"


def test_tied_weights_stay_tied_across_devices():
    model = TinyGPT(layers=0)
    assert model.tok.weight is model.head.weight
    model.npu()
    assert model.tok.weight is model.head.weight and model.tok.weight.device.type == "npu"
    model.cpu()
    assert model.tok.weight is model.head.weight and model.tok.weight.device.type == "cpu"
    p = torch.nn.Parameter(torch.ones(3))
    p.data = torch.zeros(3, device="npu")  # swapping data across devices, as with CUDA
    assert p.device.type == "npu" and p.requires_grad
