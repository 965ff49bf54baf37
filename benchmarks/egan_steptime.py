"""Step time of E-GAN relative to single-loss training, measured side by side.

For each 2D mixture, the plain GAN row of ``benchmarks/toy2d.py`` and its
E-GAN row (the same D, networks and batch; three mutations, one survivor)
are built in one process with one torch thread and trained in alternating
blocks of ``--block`` steps (the order flips every round), so both see the
same machine load.  Printed: the median seconds per step of each over the
blocks, and the median over rounds of the per-round ratio E-GAN / single loss.

    nice -n 10 python benchmarks/egan_steptime.py --rounds 15 --block 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import toy2d  # noqa: E402


def block_time(trainer, steps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=15, help="alternating rounds (default 15)")
    p.add_argument("--block", type=int, default=20, help="steps per block (default 20)")
    p.add_argument("--datasets", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    args = p.parse_args(argv)
    import tempfile

    import torch

    torch.set_num_threads(1)
    from ctrlgen.train.trainer import Trainer

    plain_row = toy2d.ROWS[0]
    egan_row = next(r for r in toy2d.ROWS if "mode=egan" in r.overrides)
    lines = [
        "| data | G × D width, batch | single loss (ms / step) | E-GAN, 3 mutations, μ=1 (ms / step) | ratio (median of rounds) |",
        "|---|---|---:|---:|---:|",
    ]
    for ds in args.datasets:
        trainers = {name: Trainer(toy2d.build_config(ds, row, seed=0), tempfile.gettempdir()) for name, row in
                    (("plain", plain_row), ("egan", egan_row))}
        for t in trainers.values():
            block_time(t, 5)  # warm-up
        times: dict[str, list[float]] = {"plain": [], "egan": []}
        ratios = []
        for i in range(args.rounds):
            order = ("plain", "egan") if i % 2 == 0 else ("egan", "plain")
            got = {name: block_time(trainers[name], args.block) for name in order}
            for name, v in got.items():
                times[name].append(v)
            ratios.append(got["egan"] / got["plain"])
        cfg = trainers["plain"].cfg
        lines.append(f"| {ds} | {cfg.net.g_width} × {cfg.net.d_width}, {cfg.batch_size} | {1000 * statistics.median(times['plain']):.2f} "
                     f"| {1000 * statistics.median(times['egan']):.2f} | {statistics.median(ratios):.2f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines.append("")
    lines.append(f"{args.rounds} rounds of {args.block} steps each, one torch thread "
                 f"(cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}).")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
