"""torch.autocast("npu"): PyTorch's per-op casting policy (lower precision for matmuls and
convolutions, float32 for softmax, norms and losses, promotion for mixed inputs)."""
import pytest
import torch
import torch.nn.functional as F

import torch_npu  # noqa: F401
from helpers import check, make, no_fallback  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_fallback")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cast_policy(dtype):
    a, w = make((4, 8), torch.float32).npu(), make((6, 8), torch.float32, 1).npu()
    conv = torch.nn.Conv2d(3, 4, 3).npu()
    with torch.autocast("npu", dtype=dtype):
        assert torch.is_autocast_enabled("npu") and torch.get_autocast_dtype("npu") == dtype
        y = F.linear(a, w)
        assert y.dtype == dtype
        assert (a @ w.t()).dtype == dtype
        assert conv(make((1, 3, 6, 6), torch.float32).npu()).dtype == dtype
        assert torch.softmax(y, -1).dtype == torch.float32
        assert F.layer_norm(y, (6,)).dtype == torch.float32
        assert F.cross_entropy(y, torch.zeros(4, dtype=torch.long, device="npu")).dtype == torch.float32
        assert torch.addcmul(y.float(), y, y).dtype == torch.float32  # promote
        with pytest.raises(RuntimeError, match="unsafe to autocast"):
            F.binary_cross_entropy(torch.sigmoid(y), torch.rand_like(y.float()))
    assert not torch.is_autocast_enabled("npu")
    assert (a @ w.t()).dtype == torch.float32
    with torch.autocast("npu"):
        assert (a @ w.t()).dtype == torch.float16  # torch_npu's default


def test_bf16_training_tracks_cpu_autocast():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    model_n = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).npu()
    model_n.load_state_dict(model.state_dict())
    x, y = make((64, 16), torch.float32, 1), torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(2))
    losses = {}
    for m, dev in ((model, "cpu"), (model_n, "npu")):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        losses[dev] = []
        for _ in range(10):
            opt.zero_grad()
            with torch.autocast(dev, dtype=torch.bfloat16):
                loss = F.cross_entropy(m(x.to(dev)), y.to(dev))
            loss.backward()
            opt.step()
            losses[dev].append(loss.item())
    for a, b in zip(losses["npu"], losses["cpu"]):
        assert abs(a - b) <= 0.02 * abs(b) + 1e-3, (losses["npu"], losses["cpu"])
