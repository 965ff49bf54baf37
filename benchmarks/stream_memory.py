"""Peak resident memory of big ``ctrlgen generate`` jobs (npz and png-dir).

Runs the real command in a child process per format and reads that child's
peak RSS from ``os.wait4`` (the same number as ``/usr/bin/time -v``'s "Maximum
resident set size").  The outputs are deleted afterwards.

    .venv/bin/python benchmarks/stream_memory.py MODEL --n 1000000

MODEL is anything ``ctrlgen generate`` takes (default: the shipped
fashion-cgan).  Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(model: str, fmt: str, n: int, batch: int, out_dir: Path) -> dict:
    out = out_dir / ("samples.npz" if fmt == "npz" else "samples")
    cmd = [sys.executable, "-m", "ctrlgen", "generate", model, "--n", str(n), "-f", fmt, "-o", str(out), "--batch", str(batch), "--label", "random"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    text = proc.stdout.read().strip() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {text}")
    size = du(out)
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return {"format": fmt, "n": n, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "output_mb": size / 1e6, "says": text.splitlines()[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="fashion-cgan")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--formats", nargs="+", default=["npz", "png-dir"])
    ap.add_argument("--dir", type=Path, default=None, help="Where the outputs go while measured (default: a temp folder).")
    args = ap.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="stream-memory-", dir=args.dir))
    rows = []
    try:
        for fmt in args.formats:
            rows.append(measure(args.model, fmt, args.n, args.batch, out_dir))
            print(f"# {rows[-1]['says']}", flush=True)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"\nctrlgen generate {args.model} --n {args.n} --batch {args.batch} --label random (CPU threads: {os.cpu_count()})\n")
    print("| format | samples | wall (s) | peak RSS (MB) | output (MB) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['format']} | {r['n']:,} | {r['wall_s']:.0f} | {r['peak_rss_mb']:.0f} | {r['output_mb']:,.0f} |")


if __name__ == "__main__":
    main()
