"""The fast subset of `make conformance` that `make test` runs: PyTorch's OpInfos for the op
families a common model touches (one or two per family of the op-library issue), on the npu
against CPU with the fallback disabled, in f32 and bf16. Every one must pass (or be skipped
where CPU itself refuses every sample); a mismatch, error, crash or missing kernel fails."""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "conformance", "run.py")

SUBSET = [
    # elementwise, activations
    "add", "sub", "mul", "div.floor_rounding", "remainder", "fmod", "pow", "abs", "sign", "rsqrt",
    "exp", "log1p", "sin", "tanh", "round", "eq", "logical_and", "bitwise_xor", "where", "clamp",
    "lerp", "addcdiv", "isnan", "nan_to_num", "nn.functional.relu", "nn.functional.gelu",
    "nn.functional.silu", "sigmoid", "nn.functional.softplus", "nn.functional.hardswish",
    "nn.functional.leaky_relu", "nn.functional.elu", "nn.functional.mish", "nn.functional.glu",
    # reductions, scans, sorting
    "sum", "mean", "prod", "max.reduction_with_dim", "amax", "argmax", "var", "std",
    "linalg.vector_norm", "logsumexp", "any", "cumsum", "topk", "sort",
    # linear algebra
    "mm", "bmm", "addmm", "baddbmm", "matmul", "nn.functional.linear",
    # nn
    "nn.functional.conv2d", "nn.functional.conv_transpose2d", "nn.functional.max_pool2d",
    "nn.functional.avg_pool2d", "nn.functional.adaptive_avg_pool2d", "nn.functional.batch_norm",
    "nn.functional.layer_norm", "nn.functional.group_norm", "nn.functional.rms_norm", "softmax",
    "log_softmax", "nn.functional.embedding", "nn.functional.cross_entropy",
    "nn.functional.nll_loss", "nn.functional.mse_loss", "nn.functional.smooth_l1_loss",
    "nn.functional.binary_cross_entropy_with_logits", "nn.functional.scaled_dot_product_attention",
    "nn.functional.interpolate.bilinear", "nn.functional.interpolate.nearest",
    "nn.functional.pad.reflect", "nn.functional.dropout",
    # indexing and shape
    "cat", "stack", "index_select", "gather", "scatter_add", "scatter_reduce.amax", "index_put",
    "masked_fill", "masked_select", "masked_scatter", "nonzero", "arange", "linspace", "tril",
    "flip", "roll", "repeat_interleave", "nn.functional.one_hot", "unique", "bincount", "histc",
    "searchsorted", "nn.functional.embedding_bag", "view", "permute", "expand", "narrow",
]


def test_conformance_subset(tmp_path):
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, RUN, "--ops", ",".join(SUBSET), "--dtypes", "float32,bfloat16", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())["ops"]
    assert sorted(report) == sorted(SUBSET)
    bad = {f"{op} {dtype}": r for op, res in report.items() for dtype, r in res.items() if r["status"] not in ("pass", "skip")}
    assert not bad, json.dumps(bad, indent=1)
    passed = sum(r["status"] == "pass" for res in report.values() for r in res.values())
    assert passed >= len(SUBSET)
