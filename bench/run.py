"""Side-by-side benchmark: every case runs on the npu and on PyTorch's CPU backend in the same
process, interleaved (cpu, npu, cpu, npu, ...), after warm-up. Reports medians, min-max and the
ratio cpu_time / npu_time (higher is better; >= 1 means the npu is faster).

    python bench/run.py            # full mode
    python bench/run.py --quick    # fewer sizes and repetitions (under 3 minutes)
    python bench/run.py -k matmul  # only cases whose name contains "matmul"

Writes bench/results.json and bench/results.md (the Markdown table the README shows).
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import torch

import torch_npu  # noqa: F401

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cases import CASES  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# The case whose memory is reported (issue 4: the transformer training step).
MEMORY_CASE = "train step: TinyGPT"


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def sync(device):
    if device == "npu":
        torch.npu.synchronize()


def time_once(fn, device, inner):
    """Seconds per call, and the seconds of it the host spent blocked on the device. One
    untimed call first: after the pause between backends, the first call pays for waking
    threads and refilling caches (measured up to 7 ms on a 5 ms matmul), which a loop does not."""
    fn()
    sync(device)
    w0 = torch_npu.npu.sim.host_wait_time()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    sync(device)
    t = time.perf_counter() - t0
    return t / inner, (torch_npu.npu.sim.host_wait_time() - w0) / inner


# Pause between the two backends, outside the timed region: PyTorch's OpenMP threads keep
# spinning for a while after each parallel region (and so do rayon's), and would otherwise
# steal cores from whichever backend runs next. Measured here: npu add 1M 0.93 ms right
# after a CPU run, 0.26 ms after a 10 ms pause.
SETTLE_S = 0.02
MIN_SAMPLE_S = 0.02


def run_case(case, reps, warmup):
    """Builds the case on both devices, then times them interleaved."""
    fns = {d: case.build(d) for d in ("cpu", "npu")}
    inner, slowest = case.inner, 0.0
    for _ in range(warmup):
        for d in ("cpu", "npu"):
            slowest = max(slowest, time_once(fns[d], d, inner)[0])
            time.sleep(SETTLE_S)
    # Samples of at least MIN_SAMPLE_S, so that short cases are timed over a loop.
    inner = max(inner, math.ceil(MIN_SAMPLE_S / max(slowest, 1e-9)))
    times, waits = {"cpu": [], "npu": []}, []
    for _ in range(reps):
        for d in ("cpu", "npu"):
            t, w = time_once(fns[d], d, inner)
            times[d].append(t)
            if d == "npu":
                waits.append(w)
            time.sleep(SETTLE_S)
    row = {"case": case.name, "target": case.target, "unit": "ms"}
    for d in ("cpu", "npu"):
        ms = [t * 1e3 for t in times[d]]
        row[d] = {"median": statistics.median(ms), "min": min(ms), "max": max(ms), "reps": reps}
    # Share of the npu time the Python thread spent blocked on the device (in the step or at
    # the final synchronize): high means device-bound, low means the host is the bottleneck.
    row["npu"]["host_wait"] = sum(waits) / sum(times["npu"])
    row["ratio"] = row["cpu"]["median"] / row["npu"]["median"]
    row["meets_target"] = row["ratio"] >= case.target
    row["fallback_ops"] = sorted(torch_npu.npu.sim.fallback_counts())
    return row


def fmt_ms(x):
    return f"{x * 1e3:.1f} µs" if x < 0.1 else f"{x:.3f} ms" if x < 10 else f"{x:.1f} ms"


def markdown(rows, info, command):
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} with "
             f"{info['torch_threads']} threads. Command: `{command}`.", "",
             "| case | cpu median (min–max) | npu median (min–max) | npu host wait | ratio cpu/npu | target | |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c, n = r["cpu"], r["npu"]
        mark = "✓" if r["meets_target"] else "✗"
        lines.append(f"| {r['case']} | {fmt_ms(c['median'])} ({fmt_ms(c['min'])}–{fmt_ms(c['max'])}) | "
                     f"{fmt_ms(n['median'])} ({fmt_ms(n['min'])}–{fmt_ms(n['max'])}) | {n['host_wait']:.0%} | "
                     f"{r['ratio']:.2f} | ≥ {r['target']:g} | {mark} |")
    return "\n".join(lines) + "\n"


def memory_rows(pattern):
    """Peak memory of the memory case on each device, each in a fresh process."""
    out = {}
    for d in ("cpu", "npu"):
        p = subprocess.run([sys.executable, os.path.join(HERE, "memory.py"), d, pattern],
                           capture_output=True, text=True, check=True)
        out[d] = json.loads(p.stdout.strip().splitlines()[-1])
    return out


def memory_markdown(m):
    c, n = m["cpu"], m["npu"]
    frag = n["max_reserved_mib"] / n["max_allocated_mib"]
    rss = n["peak_rss_mib"] / c["peak_rss_mib"]
    grow = (n["peak_rss_mib"] - n["rss_before_mib"]) / (c["peak_rss_mib"] - c["rss_before_mib"])
    return "\n".join([
        f"Memory, {n['case']} (5 steps, each device in a fresh process):", "",
        "| measure | value | target | |", "|---|---|---|---|",
        f"| npu max_memory_allocated | {n['max_allocated_mib']:.0f} MiB | | |",
        f"| npu max_memory_reserved | {n['max_reserved_mib']:.0f} MiB ({frag:.2f}× allocated) | ≤ 1.25× | "
        f"{'✓' if frag <= 1.25 else '✗'} |",
        f"| peak RSS, npu / cpu | {n['peak_rss_mib']:.0f} / {c['peak_rss_mib']:.0f} MiB ({rss:.2f}×) | ≤ 1.3× | "
        f"{'✓' if rss <= 1.3 else '✗'} |",
        f"| RSS growth over the imports, npu / cpu | {n['peak_rss_mib'] - n['rss_before_mib']:.0f} / "
        f"{c['peak_rss_mib'] - c['rss_before_mib']:.0f} MiB ({grow:.2f}×) | | |", ""])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer cases and repetitions")
    ap.add_argument("-k", dest="pattern", default="", help="only cases whose name contains this")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="output path without extension")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", message=".*falls back to the CPU.*")
    info = machine()
    print(f"# {info['cpu']} | {info['cores']} cores | torch {info['torch']} | "
          f"{info['torch_threads']} threads", flush=True)
    reps, warmup = (5, 1) if args.quick else (11, 2)
    rows = []
    for case in CASES:
        if args.quick and not case.quick:
            continue
        if args.pattern not in case.name:
            continue
        torch_npu.npu.sim.reset_fallback_counts()
        row = run_case(case, reps, warmup)
        rows.append(row)
        fb = f"  (CPU fallback: {', '.join(row['fallback_ops'])})" if row["fallback_ops"] else ""
        print(f"{row['case']:<52} cpu {fmt_ms(row['cpu']['median']):>10}  npu {fmt_ms(row['npu']['median']):>10}"
              f"  ratio {row['ratio']:6.2f} (target {row['target']:g}){fb}", flush=True)
    command = "make bench-quick" if args.quick else "make bench"
    md = markdown(rows, info, command)
    memory = None
    if args.pattern in MEMORY_CASE:
        memory = memory_rows(MEMORY_CASE)
        md += "\n" + memory_markdown(memory)
        print("\n" + memory_markdown(memory))
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": info, "mode": "quick" if args.quick else "full", "results": rows,
                   "memory": memory}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(md)
    met = sum(r["meets_target"] for r in rows)
    print(f"\n{met}/{len(rows)} cases meet their target; wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
