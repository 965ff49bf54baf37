"""E-GAN vs the non-saturating fashion-cgan recipe on Fashion-MNIST at equal wall-clock training time.

Both runs are the shipped ``fashion-cgan`` recipe (the same D, networks, EMA
and seed); the E-GAN run adds ``mode = "egan"`` (minimax, non-saturating and
least-squares children, one survivor).  They train at the same time in two
worker processes with one torch thread each, so the load of a shared machine
hits both alike, and each stops when its training time (the seconds inside
training steps, ``Trainer.wall_time``) reaches the budget.  Each final
checkpoint is then measured by ``ctrlgen.metrics.report.evaluate``, the machinery
of ``ctrlgen eval`` (10,000 samples, seed 0, EMA weights).

    nice -n 10 python benchmarks/egan_fashion.py --minutes 4.5

A budget of minutes is a short run for Fashion-MNIST on a CPU (the recipe
trains for 5 epochs); the table says which method is ahead early on, not
where either ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

RUNS = {
    "non-saturating": [],
    "E-GAN": ["mode=egan"],
}
COMMON = ["progress=false", "sample_every=0", "monitor_every=0", "device=cpu", "steps=1000000", "checkpoint_every=1000000", "log_every=50"]


def train_for(name: str, seconds: float, run_dir: str) -> dict:
    """Train one configuration until its training time reaches ``seconds`` (a worker process)."""
    import torch

    torch.set_num_threads(1)
    from ctrlgen.train.config import load_config
    from ctrlgen.train.trainer import Trainer

    cfg = load_config("fashion-cgan", [*COMMON, *RUNS[name]])
    trainer = Trainer(cfg, run_dir)
    trainer.write_config()
    times = []
    while trainer.wall_time < seconds:
        t0 = time.perf_counter()
        trainer.train_step()
        dt = time.perf_counter() - t0
        trainer.wall_time += dt
        times.append(dt)
    trainer.save_checkpoint()  # E-GAN also writes its per-step survivor records here
    return {"steps": trainer.step, "seconds": trainer.wall_time, "median_step": statistics.median(times[5:] or times),
            "epochs": trainer.batches.epoch(trainer.batches_drawn)}


def mutation_counts(run_dir: Path) -> Counter:
    lines = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()] if (run_dir / "metrics.jsonl").exists() else []
    return Counter(m for r in lines if r.get("event") == "egan" for m in r["won"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=4.5, help="training time of each run (default 4.5)")
    p.add_argument("--root", type=Path, default=Path("runs/egan-fashion"), help="where the two run directories go")
    p.add_argument("--n", type=int, default=10_000, help="samples per evaluation (default 10,000)")
    args = p.parse_args(argv)
    from ctrlgen.metrics.report import evaluate

    args.root.mkdir(parents=True, exist_ok=True)
    dirs = {name: args.root / f"{name.lower().replace(' ', '-')}-{time.strftime('%Y%m%d-%H%M%S')}" for name in RUNS}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=len(RUNS)) as pool:
        futures = {name: pool.submit(train_for, name, args.minutes * 60, str(d)) for name, d in dirs.items()}
        trained = {name: f.result() for name, f in futures.items()}
    reports = {name: evaluate(d, n=args.n, seed=0) for name, d in dirs.items()}
    names = list(RUNS)
    base, egan = trained[names[0]], trained[names[1]]
    lines = [
        f"Fashion-MNIST, fashion-cgan recipe, {args.minutes:g} min of training each (short), evaluated on {args.n} samples (seed 0)",
        "",
        f"| metric | {' | '.join(names)} | real data | better |",
        "|---|" + "---:|" * len(names) + "---:|---|",
    ]
    rows = {name: {r.name: r for r in rep.rows} for name, rep in reports.items()}
    for metric, row in rows[names[0]].items():
        vals = " | ".join(f"{rows[n][metric].value:.4g}" for n in names)
        ref = "–" if row.reference is None else f"{row.reference:.4g}"
        lines.append(f"| {metric} | {vals} | {ref} | {'higher' if row.higher_is_better else 'lower'} |")
    lines.append("| G steps done | " + " | ".join(str(trained[n]["steps"]) for n in names) + " | – | – |")
    lines.append("| epochs | " + " | ".join(f"{trained[n]['epochs']:.2f}" for n in names) + " | – | – |")
    lines.append("| median s / step | " + " | ".join(f"{trained[n]['median_step']:.3f}" for n in names) + " | – | – |")
    counts = mutation_counts(dirs["E-GAN"])
    total = sum(counts.values()) or 1
    shares = ", ".join(f"{m} {100 * c / total:.0f}%" for m, c in counts.most_common())
    import torch

    footer = [
        "",
        f"E-GAN / non-saturating median step time: {egan['median_step'] / base['median_step']:.2f}x "
        f"(measured side by side, one torch thread each).",
        f"E-GAN survivors by mutation over its {egan['steps']} steps: {shares}.",
        f"Run directories: {', '.join(str(d) for d in dirs.values())}.  Wall time {(time.perf_counter() - t0) / 60:.1f} min "
        f"(cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}).",
    ]
    print("\n".join(lines + footer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
