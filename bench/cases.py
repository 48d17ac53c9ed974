"""Benchmark cases. Each builds its inputs on a device and returns the function to time; the
same function runs on "cpu" and "npu". Targets are the ratio cpu_time / npu_time to reach."""
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from models import TinyGPT  # noqa: E402


@dataclass
class Case:
    name: str
    build: Callable[[str], Callable[[], object]]
    target: float
    inner: int = 1       # calls per timing (for work too short to time alone)
    quick: bool = True   # part of --quick


def _gen(device):
    return torch.Generator(device=device).manual_seed(0)


def randn(shape, device, dtype=torch.float32, requires_grad=False):
    x = torch.randn(shape, generator=_gen("cpu")).to(device=device, dtype=dtype)
    return x.requires_grad_(requires_grad)


def dispatch(device):
    a, b = randn(16, device), randn(16, device)
    return lambda: a + b


def elementwise(op, n, dtype):
    fn = {"add": torch.add, "mul": torch.mul}.get(op)

    def build(device):
        a, b = randn(n, device, dtype), randn(n, device, dtype)
        if op == "gelu":
            return lambda: F.gelu(a)
        return lambda: fn(a, b)
    return build


def reduction(op):
    def build(device):
        x = randn((4096, 4096), device)
        if op == "sum":
            return lambda: x.sum()
        if op == "softmax":
            return lambda: torch.softmax(x, dim=-1)
        w, b = randn(4096, device), randn(4096, device)
        return lambda: F.layer_norm(x, (4096,), w, b)
    return build


def matmul(n, dtype):
    def build(device):
        a, b = randn((n, n), device, dtype), randn((n, n), device, dtype)
        return lambda: a @ b
    return build


def conv2d(channels, hw, backward):
    def build(device):
        x = randn((8, channels, hw, hw), device, requires_grad=backward)
        w = randn((channels, channels, 3, 3), device, requires_grad=backward) * 0.05
        w = w.detach().requires_grad_(backward)
        if not backward:
            return lambda: F.conv2d(x, w, padding=1)
        g = randn((8, channels, hw, hw), device)
        return lambda: F.conv2d(x, w, padding=1).backward(g)
    return build


def sdpa(backward):
    def build(device):
        q, k, v = (randn((4, 8, 512, 64), device, requires_grad=backward) for _ in range(3))
        if not backward:
            return lambda: F.scaled_dot_product_attention(q, k, v)
        g = randn((4, 8, 512, 64), device)
        return lambda: F.scaled_dot_product_attention(q, k, v).backward(g)
    return build


def train_step(make_model, make_batch, make_opt):
    """One optimizer step (forward, backward, update) on a model built identically per device."""
    def build(device):
        torch.manual_seed(0)
        model = make_model().to(device)
        opt = make_opt(model.parameters())
        x, y = (t.to(device) for t in make_batch())

        def step():
            opt.zero_grad(set_to_none=True)
            loss = model(x, y)
            loss.backward()
            opt.step()
        return step
    return build


class _LM(TinyGPT):
    def forward(self, idx, targets):
        return super().forward(idx, targets)[1]


class _Classifier(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, y):
        return F.cross_entropy(self.net(x), y)


def _resnet18():
    import torchvision
    return _Classifier(torchvision.models.resnet18(num_classes=10))


def gpt2_generate(device):
    """Greedy generation of 64 tokens after a 16-token prompt, with the KV cache: one token's
    worth of small ops per step, so per-op overhead and host/device round trips dominate."""
    import transformers
    transformers.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(n_embd=128, n_layer=4, n_head=4, vocab_size=2048, n_positions=256)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval().to(device)
    prompt = torch.randint(0, cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0)).to(device)

    def run():
        with torch.no_grad():
            return model.generate(prompt, max_new_tokens=64, min_new_tokens=64, do_sample=False,
                                  use_cache=True, pad_token_id=0)
    return run


def _lm_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 1024, (8, 129), generator=g)
    return x[:, :-1], x[:, 1:]


def _image_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 3, 112, 112, generator=g), torch.randint(0, 10, (8,), generator=g)


CASES = [Case("dispatch: a + b, 16 elements (per op)", dispatch, 1.0, inner=2000)]
for _op in ("add", "mul", "gelu"):
    for _n, _label in ((1 << 20, "1M"), (16 << 20, "16M")):
        for _dt, _dl in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            CASES.append(Case(f"{_op} {_label} {_dl}", elementwise(_op, _n, _dt), 1.0,
                              inner=10 if _n < (4 << 20) else 1, quick=(_label == "1M" or _dl == "f32")))
for _op in ("sum", "softmax", "layer_norm"):
    CASES.append(Case(f"{_op} (4096, 4096) f32", reduction(_op), 1.0))
for _n in (256, 1024, 2048):
    CASES.append(Case(f"matmul {_n} f32", matmul(_n, torch.float32), 1.5, inner=20 if _n == 256 else 1,
                      quick=_n != 2048))
for _n in (1024, 2048):
    CASES.append(Case(f"matmul {_n} bf16", matmul(_n, torch.bfloat16), 1.0, quick=_n == 1024))
CASES.append(Case("matmul 1024 f16", matmul(1024, torch.float16), 20.0, quick=False))
for _c, _hw in ((64, 56), (128, 28), (256, 14), (512, 7)):
    CASES.append(Case(f"conv2d 3x3 {_c}ch {_hw}x{_hw} b8 fwd", conv2d(_c, _hw, False), 1.0, quick=_c in (64, 256)))
    CASES.append(Case(f"conv2d 3x3 {_c}ch {_hw}x{_hw} b8 fwd+bwd", conv2d(_c, _hw, True), 1.0, quick=_c == 128))
CASES.append(Case("sdpa (4, 8, 512, 64) f32 fwd", sdpa(False), 1.0))
CASES.append(Case("sdpa (4, 8, 512, 64) f32 fwd+bwd", sdpa(True), 1.0))
CASES.append(Case("train step: TinyGPT (4 layers, d=256, T=128, batch 8), AdamW",
                  train_step(lambda: _LM(vocab=1024, dim=256, heads=4, layers=4, context=128),
                             _lm_batch, lambda p: torch.optim.AdamW(p, lr=1e-3)), 1.2))
CASES.append(Case("train step: resnet18 (torchvision), batch 8, 112x112, SGD",
                  train_step(_resnet18, _image_batch, lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)),
                  1.0, quick=False))
CASES.append(Case("inference: GPT-2 tiny (4 layers, d=128), 64 tokens, KV cache", gpt2_generate, 1.0))
