"""Conformance: PyTorch's OpInfo database run on the npu against PyTorch CPU.

For every OpInfo (op_db, shipped in the torch wheel), every dtype it supports on CPU (complex
excepted for now) and every sample input, the op runs on CPU and on npu with the CPU fallback
disabled; outputs must match within torch.testing.assert_close's tolerances for the dtype
(loosened for f16/bf16, whose results legitimately depend on the summation order), and so must
the gradients of the inputs where the OpInfo supports autograd. An f32/f16/bf16 result outside
the tolerances still passes when its error against an f64 evaluation of the same sample is
within twice CPU's own error (or, for f16/bf16, one unit in the last place): then CPU, not the
npu, is the inaccurate one (ill-conditioned samples, CPU rounding intermediates).

    python conformance/run.py                 # everything; writes conformance/report.json
    python conformance/run.py -k softmax      # OpInfos whose name contains "softmax"
    python conformance/run.py --quick         # float32 only
    python conformance/run.py --ops mm,cat --dtypes float32,bfloat16

Each (op, dtype) is one of: pass, mismatch (wrong values, shapes or dtypes), unsupported (no
native kernel: the disabled fallback raised), error (the npu raised where CPU did not), crash
(the worker process died). Work runs in a child process; when it dies, the op it was running
is reported as a crash and a new child continues with the next op.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPE_NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]
# Ops whose values are random: only shapes and dtypes are compared.
RANDOM = ("dropout", "bernoulli", "multinomial", "normal", "rand", "uniform", "poisson", "cauchy",
          "exponential", "geometric", "log_normal", "randperm", "empty")
# Ops that take a dropout probability positionally: (position among the args, after the input).
DROPOUT_ARG = {"nn.functional.multi_head_attention_forward": 9}
PER_OP_SECONDS = 120
# Ops that leave the order of equal elements unspecified (non-stable sort, topk): the npu may
# order ties differently from CPU and still be right. For them, index outputs must select the
# values CPU selects, and gradients (which follow the indices) are not compared on inputs with
# ties. The value is the position of `dim` among the positional arguments.
TIE_ORDER = {"sort": 0, "argsort": 0, "msort": None, "topk": 1}
# linear_cross_entropy's chunked path resolves acc_policy="auto" per device ("accurate" on CPU
# for f16/bf16, "compact" on every other device, as PyTorch documents) and "auto" also picks
# other settings on CPU only. Both runs are given the policy CPU would pick, spelled out, so
# they run one algorithm.
DEVICE_POLICY_OPS = ("nn.functional.linear_cross_entropy",)
# OpInfos whose samples cannot be moved to another device faithfully.
HARNESS_LIMITS = {
    "as_strided.partial_views": "its samples are views whose base storage a device copy does not keep",
}


def tolerances(dtype):
    import torch
    return {torch.float16: dict(atol=1e-2, rtol=1e-2), torch.bfloat16: dict(atol=5e-2, rtol=5e-2),
            torch.float32: dict(atol=1e-4, rtol=1e-4)}.get(dtype, {})


def to_npu(x, key=None):
    """Tensors moved to the npu; a CPU device argument (factories, .to) becomes the npu."""
    import torch
    if (key == "device" or isinstance(x, (torch.device, str))) and str(x) == "cpu":
        return torch.device("npu") if isinstance(x, torch.device) else "npu"
    if isinstance(x, torch.Tensor):
        y = x.detach().to("npu")
        return y.requires_grad_(x.requires_grad) if y.is_floating_point() or y.is_complex() else y
    if isinstance(x, (list, tuple)):
        return type(x)(to_npu(v) for v in x)
    if isinstance(x, dict):
        return {k: to_npu(v, k) for k, v in x.items()}
    return x


def flat_tensors(x):
    import torch
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in flat_tensors(v)]
    return []


def compare(actual, expected, dtype, values=True):
    import torch
    a, e = flat_tensors(actual), flat_tensors(expected)
    if len(a) != len(e):
        raise AssertionError(f"{len(a)} outputs, expected {len(e)}")
    for x, y in zip(a, e):
        if x.device.type != "npu":
            raise AssertionError(f"output on {x.device}, expected npu")
        if x.shape != y.shape or x.dtype != y.dtype:
            raise AssertionError(f"output {tuple(x.shape)} {x.dtype}, expected {tuple(y.shape)} {y.dtype}")
        if values:
            torch.testing.assert_close(x.detach().cpu(), y.detach(), equal_nan=True, **tolerances(y.dtype))


def to_f64(x):
    import torch
    if isinstance(x, torch.Tensor):
        return x.detach().double() if x.dtype in (torch.float32, torch.float16, torch.bfloat16) else x.detach()
    if isinstance(x, (list, tuple)):
        return type(x)(to_f64(v) for v in x)
    if isinstance(x, dict):
        return {k: to_f64(v) for k, v in x.items()}
    return x


def closer_than_cpu(op, sample, actual, expected):
    """For f16/bf16: whether the npu's error against an f64 evaluation of the same sample is no
    larger than CPU's (CPU rounds some intermediates to the half type, the npu rounds once)."""
    try:
        exact = op(to_f64(sample.input), *to_f64(sample.args), **to_f64(sample.kwargs))
    except Exception:
        return False
    return all(within_cpu_error(x, y, z) for x, y, z in zip(flat_tensors(actual), flat_tensors(expected), flat_tensors(exact))
               if x.is_floating_point() and z.is_floating_point())


def within_cpu_error(x, y, z):
    """The npu result x is within twice the CPU result y's error against the f64 value z, or
    one unit in the last place of the largest value."""
    import torch
    z = z.detach().double()
    if not z.numel():
        return True
    err_npu = (x.detach().cpu().double() - z).abs().nan_to_num(0).max().item()
    err_cpu = (y.detach().double() - z).abs().nan_to_num(0).max().item()
    ulp = {torch.float16: 2.0 ** -10, torch.bfloat16: 2.0 ** -7}.get(y.dtype, 0.0)
    return err_npu <= 2 * err_cpu + ulp * z.abs().nan_to_num(0).max().item()


def has_ties(x):
    import torch
    return isinstance(x, torch.Tensor) and x.numel() > 1 and x.flatten().unique().numel() < x.numel()


def same_up_to_ties(op, sample, actual, expected):
    """Whether npu and CPU results differ only in how they order equal elements."""
    import torch
    pos = TIE_ORDER[op.name]
    inp = sample.input
    dim = -1
    if pos is not None and len(sample.args) > pos and isinstance(sample.args[pos], int):
        dim = sample.args[pos]
    dim = sample.kwargs.get("dim", dim)
    if inp.dim() == 0:
        dim = 0
    outs, refs = flat_tensors(actual), flat_tensors(expected)
    # sort/topk give (values, indices), argsort indices, msort values
    kinds = ["indices"] if op.name == "argsort" else ["values", "indices"][:len(outs)]
    src = inp.reshape(1) if inp.dim() == 0 else inp
    pick = lambda idx: torch.take_along_dim(src, idx.reshape(-1) if idx.dim() == 0 else idx, dim)  # noqa: E731
    for kind, x, y in zip(kinds, outs, refs):
        x, y = x.detach().cpu(), y.detach()
        if kind == "indices":
            if not torch.equal(pick(x), pick(y)):
                return False
        elif not (torch.equal(x, y) or (x.is_floating_point() and torch.allclose(x, y, rtol=0, atol=0, equal_nan=True))):
            return False  # values must be identical (NaN in the same places)
    return True


def run_sample(op, sample, dtype, grad):
    """'pass', or raises: NotImplementedError (unsupported), AssertionError (mismatch)."""
    import torch
    APPROX = (torch.float32, torch.float16, torch.bfloat16)  # judged against f64 when off CPU's
    if op.name in DEVICE_POLICY_OPS and getattr(sample.kwargs.get("options"), "acc_policy", None) == "auto":
        import dataclasses
        from torch.nn.modules.linear_cross_entropy_options import _auto_acc_policy
        options = dataclasses.replace(sample.kwargs["options"], acc_policy=_auto_acc_policy("cpu", dtype))
        sample.kwargs = dict(sample.kwargs, options=options)
    random = any(r in op.name for r in RANDOM) or sample.kwargs.get("dropout_p", 0) > 0
    pos = DROPOUT_ARG.get(op.name)
    if pos is not None and len(sample.args) > pos and sample.kwargs.get("training", True):
        random = random or sample.args[pos] > 0
    try:
        expected = op(sample.input, *sample.args, **sample.kwargs)
    except Exception:
        return "skip"  # CPU refuses the sample too
    inp, args, kwargs = to_npu(sample.input), to_npu(sample.args), to_npu(sample.kwargs)
    if not flat_tensors([sample.input, sample.args, sample.kwargs]) and "device" not in kwargs:
        kwargs = dict(kwargs, device="npu")  # a factory sample that relies on the default device
        try:
            op(inp, *args, **kwargs)
        except TypeError:
            kwargs = to_npu(sample.kwargs)  # not a factory (broadcast_shapes, ...)
    try:
        actual = op(inp, *args, **kwargs)
    except RuntimeError as e:
        if "to be on cpu" not in str(e):
            raise
        # an argument PyTorch wants on the host (tensor_split's indices, ...)
        args, kwargs = sample.args, sample.kwargs
        actual = op(inp, *args, **kwargs)
    try:
        compare(actual, expected, dtype, values=not random)
    except AssertionError:
        ties = op.name in TIE_ORDER and same_up_to_ties(op, sample, actual, expected)
        if not ties and (dtype not in APPROX or not closer_than_cpu(op, sample, actual, expected)):
            raise
    if not grad or random or (op.name in TIE_ORDER and has_ties(sample.input)):
        return "pass"
    outs = [t for t in flat_tensors(expected) if t.requires_grad and t.is_floating_point()]
    outs_n = [t for t in flat_tensors(actual) if t.requires_grad and t.is_floating_point()]
    ins = [t for t in flat_tensors([sample.input, sample.args, sample.kwargs]) if t.requires_grad]
    ins_n = [t for t in flat_tensors([inp, args, kwargs]) if t.requires_grad]
    if not outs or not ins:
        return "pass"
    gen = torch.Generator().manual_seed(0)
    gs = [torch.randn(o.shape, generator=gen).to(o.dtype) for o in outs]
    try:
        expected_g = torch.autograd.grad(outs, ins, gs, allow_unused=True)
    except Exception:
        return "pass"  # no CPU gradient to compare with
    actual_g = torch.autograd.grad(outs_n, ins_n, [g.npu() for g in gs], allow_unused=True)
    for x, y in zip(actual_g, expected_g):
        if (x is None) != (y is None):
            raise AssertionError("gradient defined on one device only")
    try:
        for x, y in zip(actual_g, expected_g):
            if y is not None:
                compare(x, y, dtype)
    except AssertionError:
        if dtype not in APPROX or not grads_closer_than_cpu(op, sample, gs, actual_g, expected_g):
            raise
    return "pass"


def grads_closer_than_cpu(op, sample, gs, actual_g, expected_g):
    """closer_than_cpu for the input gradients: against gradients computed in f64."""
    import torch
    f64 = to_f64([sample.input, sample.args, sample.kwargs])
    ins = [t for t in flat_tensors(f64) if t.is_floating_point()]
    for t, ref in zip(ins, [t for t in flat_tensors([sample.input, sample.args, sample.kwargs]) if t.is_floating_point()]):
        t.requires_grad_(ref.requires_grad)
    try:
        out = op(f64[0], *f64[1], **f64[2])
        outs = [t for t in flat_tensors(out) if t.requires_grad and t.is_floating_point()]
        exact = torch.autograd.grad(outs, [t for t in ins if t.requires_grad], [g.double() for g in gs], allow_unused=True)
    except Exception:
        return False
    return all(within_cpu_error(x, y, z) for x, y, z in zip(actual_g, expected_g, exact)
               if y is not None and z is not None)


def check_op(op, dtypes):
    """{dtype: (status, detail)} for one OpInfo."""
    import torch
    results = {}
    name = f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name
    if name in HARNESS_LIMITS:
        return {"all": ("skip", HARNESS_LIMITS[name])}
    supported = op.supported_dtypes("cpu")
    for name in dtypes:
        dtype = getattr(torch, name)
        if dtype not in supported:
            continue
        grad = op.supports_autograd and dtype.is_floating_point and dtype in op.supported_backward_dtypes("cpu")
        status, detail, n = "pass", "", 0
        try:
            for sample in op.sample_inputs("cpu", dtype, requires_grad=grad):
                r = run_sample(op, sample, dtype, grad)
                n += r == "pass"
            if n == 0:
                status, detail = "skip", "no sample runs on CPU"
        except NotImplementedError as e:
            status, detail = "unsupported", str(e).split("\n")[0][:300]
        except AssertionError as e:
            status, detail = "mismatch", str(e).split("\n")[0][:300]
        except Exception as e:  # noqa: BLE001 - any other failure is the npu's error
            status, detail = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        torch.npu.synchronize() if status != "error" else None
        results[name] = (status, detail)
    return results


def worker(names, dtypes, out_path):
    """Child: runs the named OpInfos in order, appending one JSON line per event."""
    os.environ["TORCH_NPU_FALLBACK_CPU_DISABLE"] = "1"
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import torch_npu  # noqa: F401
    from torch.testing._internal.common_methods_invocations import op_db
    by_name = {}
    for op in op_db:
        by_name.setdefault(f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name, op)

    def alarm(*_):
        raise TimeoutError(f"op took more than {PER_OP_SECONDS} s")
    signal.signal(signal.SIGALRM, alarm)
    with open(out_path, "a") as f:
        for name in names:
            f.write(json.dumps({"start": name}) + "\n")
            f.flush()
            signal.alarm(PER_OP_SECONDS)
            try:
                res = check_op(by_name[name], dtypes)
            except Exception:  # noqa: BLE001
                res = {"all": ("error", traceback.format_exc(limit=2).splitlines()[-1][:300])}
            signal.alarm(0)
            f.write(json.dumps({"done": name, "results": res}) + "\n")
            f.flush()


def all_names(pattern):
    from torch.testing._internal.common_methods_invocations import op_db
    names = []
    for op in op_db:
        n = f"{op.name}.{op.variant_test_name}" if op.variant_test_name else op.name
        if pattern in n and n not in names:
            names.append(n)
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("--ops", default="", help="comma-separated OpInfo names (exact), instead of -k")
    ap.add_argument("--quick", action="store_true", help="float32 only")
    ap.add_argument("--dtypes", default="", help="comma-separated dtype names (default: all)")
    ap.add_argument("--out", default=os.path.join(HERE, "report.json"))
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    dtypes = ["float32"] if args.quick else args.dtypes.split(",") if args.dtypes else DTYPE_NAMES
    if args.worker:
        worker(json.loads(args.worker[0]), dtypes, args.worker[1])
        return
    import warnings
    warnings.filterwarnings("ignore")
    names = args.ops.split(",") if args.ops else all_names(args.pattern)
    unknown = [n for n in names if n not in all_names("")]
    if unknown:
        sys.exit(f"unknown OpInfo names: {unknown}")
    log = args.out + ".log"
    if os.path.exists(log):
        os.remove(log)
    report, t0, todo = {}, time.time(), list(names)
    while todo:
        cmd = [sys.executable, __file__, "--worker", json.dumps(todo), log, "--dtypes", ",".join(dtypes)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        started, done = None, set()
        with open(log) as f:
            for line in f:
                ev = json.loads(line)
                if "start" in ev:
                    started = ev["start"]
                else:
                    done.add(ev["done"])
                    report[ev["done"]] = {d: {"status": s, "detail": m} for d, (s, m) in ev["results"].items()}
        if proc.returncode != 0 and started and started not in done:
            tail = (proc.stderr or "").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            report[started] = {"all": {"status": "crash", "detail": tail[0][:300]}}
            done.add(started)
        remaining = [n for n in todo if n not in done]
        if remaining == todo:  # no progress: give up on the first
            report[todo[0]] = {"all": {"status": "crash", "detail": "worker made no progress"}}
            remaining = todo[1:]
        todo = remaining
        print(f"  {len(names) - len(todo)}/{len(names)} OpInfos checked ({time.time() - t0:.0f} s)", flush=True)
    totals = {}
    for res in report.values():
        for r in res.values():
            totals[r["status"]] = totals.get(r["status"], 0) + 1
    ops_passing = sum(all(r["status"] in ("pass", "skip") for r in res.values()) and any(r["status"] == "pass" for r in res.values()) for res in report.values())
    summary = {"opinfos": len(report), "opinfos_all_pass": ops_passing, "op_dtype_totals": totals,
               "dtypes": dtypes, "seconds": round(time.time() - t0)}
    with open(args.out, "w") as f:
        json.dump({"summary": summary, "ops": report}, f, indent=1, sort_keys=True)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
