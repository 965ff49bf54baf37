"""How ``ctrlgen eval`` grows with the number of samples: wall time and peak memory, 10³ … 5·10⁴.

Runs the real command (``ctrlgen eval MODEL --n N --json``) in a child process
per N and reads that child's peak RSS from ``os.wait4``.  The real-data side
(evaluator features of the test set and its k-NN radii) is cached on disk by
``ctrlgen eval`` itself; one warm-up run fills the cache first, so every row
measures the generated side only: sampling, evaluator features, FD, and the
k-NN metrics, which compare every generated sample with every other and with
every real one (quadratic in N, computed in bounded row chunks).

    .venv/bin/python benchmarks/eval_scale.py                  # fashion-cgan, N = 1e3 … 5e4
    .venv/bin/python benchmarks/eval_scale.py ring8 --n 1000 2500 10000

Prints a Markdown table with the ratio of each row's time to the previous one
beside the ratio of N (linear parts scale like N, the k-NN part like N²).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time


def measure(model: str, n: int) -> dict:
    cmd = [sys.executable, "-m", "ctrlgen", "eval", model, "--n", str(n), "--json"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err.strip() or out.strip()}")
    report = json.loads(out)
    metrics = report.get("metrics", report)
    return {"n": n, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "n_metrics": len(metrics), "parts": report.get("seconds", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="fashion-cgan")
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000, 50000])
    args = ap.parse_args()
    measure(args.model, min(args.n))  # warm-up: fills the real-data cache
    rows = []
    for n in sorted(args.n):
        rows.append(measure(args.model, n))
        print(f"# n={n}: {rows[-1]['wall_s']:.1f} s, peak RSS {rows[-1]['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    print(f"`ctrlgen eval {args.model} --n N` in a child process (cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores)\n")
    parts = [k for k in rows[-1]["parts"] if k != "total"]  # the command's own split of its time
    print("| N | wall (s) | " + " | ".join(f"{k} (s)" for k in parts) + " | peak RSS (MB) | time ratio to previous row | N ratio |")
    print("|---:|---:|" + "---:|" * len(parts) + "---:|---:|---:|")
    prev = None
    for r in rows:
        ratio = f"{r['wall_s'] / prev['wall_s']:.2f}" if prev else "–"
        n_ratio = f"{r['n'] / prev['n']:.1f}" if prev else "–"
        cells = " | ".join(f"{r['parts'].get(k, float('nan')):.1f}" for k in parts)
        print(f"| {r['n']:,} | {r['wall_s']:.1f} | {cells} | {r['peak_rss_mb']:.0f} | {ratio} | {n_ratio} |")
        prev = r


if __name__ == "__main__":
    main()
