"""Time to quality: the shipped fashion-cgan recipe against fashion-cgan-reference, side by side, against wall-clock.

Both recipes train at the same time in two worker processes with one torch
thread each (so the load of a shared machine hits both alike).  Every
``--every`` minutes of its own training time each run saves a checkpoint;
the reference trains its 3 epochs, the shipped recipe as long as the
reference took (or its own length, if shorter).  Each checkpoint is then
scored by the machinery of ``ctrlgen eval`` (``--n`` samples, seed 0, the
EMA weights where the recipe has them): FD, recall and conditional accuracy
against training time.  The last line says when the shipped recipe first
reached the reference's final (3-epoch) FD, as a share of the reference's
training time (the target is a third or less).

    python benchmarks/time_to_quality.py --root runs/ttq
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402  (the CPU model, its ISA and the load, as every benchmark prints)

SHIPPED, REFERENCE = "fashion-cgan", "fashion-cgan-reference"
COMMON = ["progress=false", "sample_every=0", "monitor_every=0", "device=cpu", "checkpoint_every=100000000", "keep_checkpoints=1000"]


def train_marked(recipe: str, run_dir: str, every_s: float, stop_file: str | None = None, extra: tuple[str, ...] = ()) -> list[tuple[float, int, float, str]]:
    """Train ``recipe`` to its end, saving a checkpoint every ``every_s`` seconds of training time:
    [(seconds, step, epoch, checkpoint path)].  With ``stop_file``: once that file exists it holds the other
    run's training seconds, and this run stops when its own training time passes them (checked every 20 steps);
    without: this run writes its own training seconds there at its end (see main)."""
    import torch

    torch.set_num_threads(1)
    from ctrlgen.train.config import load_config
    from ctrlgen.train.trainer import Trainer

    cfg = load_config(recipe, [*COMMON, *extra])
    trainer = Trainer(cfg, run_dir)
    trainer.write_config()
    marks, spent, next_mark = [], 0.0, every_s
    limit = None
    total = trainer.total_steps  # cfg.steps is unset where the recipe gives epochs
    while trainer.step < total and (limit is None or spent < limit):
        if stop_file and limit is None and trainer.step % 20 == 0 and Path(stop_file).exists():
            limit = float(Path(stop_file).read_text())
        t0 = time.perf_counter()
        trainer.train_step()
        spent += time.perf_counter() - t0
        if spent >= next_mark or trainer.step == total:
            marks.append((spent, trainer.step, trainer.batches.epoch(trainer.batches_drawn), str(trainer.save_checkpoint())))
            next_mark += every_s
    if not marks or marks[-1][1] != trainer.step:
        marks.append((spent, trainer.step, trainer.batches.epoch(trainer.batches_drawn), str(trainer.save_checkpoint())))
    return marks


def train_reference(run_dir: str, every_s: float, stop_file: str, extra: tuple[str, ...] = ()) -> list[tuple[float, int, float, str]]:
    marks = train_marked(REFERENCE, run_dir, every_s, None, extra)
    Path(stop_file).write_text(f"{marks[-1][0]}")  # the shipped recipe stops at the reference's training time
    return marks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=Path("runs/time-to-quality"))
    p.add_argument("--every", type=float, default=2.0, help="minutes of training between checkpoints (default 2)")
    p.add_argument("--n", type=int, default=10_000, help="samples per evaluation (default 10,000)")
    p.add_argument("--steps", type=int, help="G steps of both runs instead of their recipes' (a quick look)")
    p.add_argument("--rescore", metavar="STAMP", help="score the runs of an earlier invocation (ROOT/marks-STAMP.json) "
                   "without training again, e.g. after the scoring part failed")
    args = p.parse_args(argv)

    from ctrlgen.metrics.report import evaluate

    host = machine()  # before training: the load average of the machine as the runs start
    t0 = time.perf_counter()
    if args.rescore:
        saved = json.loads((args.root / f"marks-{args.rescore}.json").read_text())
        marks, host = {r: [tuple(m) for m in saved["marks"][r]] for r in (REFERENCE, SHIPPED)}, saved["machine"]
        args.every = saved.get("every_min", args.every)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dirs = {r: args.root / f"{r}-{stamp}" for r in (SHIPPED, REFERENCE)}
        with ProcessPoolExecutor(max_workers=2) as pool:
            stop = args.root / f"reference-seconds-{stamp}.txt"
            args.root.mkdir(parents=True, exist_ok=True)
            extra = (f"steps={args.steps}",) if args.steps else ()
            ref_f = pool.submit(train_reference, str(dirs[REFERENCE]), args.every * 60, str(stop), extra)
            ship_f = pool.submit(train_marked, SHIPPED, str(dirs[SHIPPED]), args.every * 60, str(stop), extra)
            marks = {REFERENCE: ref_f.result(), SHIPPED: ship_f.result()}
        # the training times exist only here: kept so that --rescore can score the checkpoints again
        (args.root / f"marks-{stamp}.json").write_text(json.dumps({"marks": marks, "machine": host, "every_min": args.every}))
        print(f"training done; marks in {args.root / f'marks-{stamp}.json'}", file=sys.stderr, flush=True)
    ref_total = marks[REFERENCE][-1][0]
    rows: dict[str, list[tuple[float, int, float, dict[str, float]]]] = {}
    for recipe, ms in marks.items():
        rows[recipe] = []
        for seconds, step, epoch, ck in ms:
            rep = evaluate(ck, n=args.n, seed=0)
            vals = rep.values()
            rows[recipe].append((seconds, step, epoch, {k: vals[k] for k in ("fd", "recall", "conditional_accuracy")}))
            print(f"{recipe} {seconds / 60:.1f} min step {step}: FD {vals['fd']:.3g}", file=sys.stderr, flush=True)
    lines = ["| recipe | training min | G steps | epochs | FD | recall | conditional accuracy |", "|---|---:|---:|---:|---:|---:|---:|"]
    for recipe, rs in rows.items():
        for seconds, step, epoch, v in rs:
            lines.append(f"| {recipe} | {seconds / 60:.1f} | {step} | {epoch:.2f} | {v['fd']:.3g} | {v['recall']:.3f} | {v['conditional_accuracy']:.3f} |")
    target = rows[REFERENCE][-1][3]["fd"]
    reached = next((s for s, _, _, v in rows[SHIPPED] if v["fd"] <= target), None)
    verdict = (f"{SHIPPED} reached the reference's final FD {target:.3g} after {reached / 60:.1f} min of training, "
               f"{reached / ref_total:.2f} of the reference's {ref_total / 60:.1f} min (target: 0.33 or less)."
               if reached is not None else
               f"{SHIPPED} did not reach the reference's final FD {target:.3g} within the reference's {ref_total / 60:.1f} min.")
    footer = [
        "",
        verdict,
        f"Both trained side by side, one torch thread each; checkpoints every {args.every:g} min of training; scored on {args.n} samples.",
        f"Wall time {(time.perf_counter() - t0) / 60:.1f} min{' (scoring only: --rescore)' if args.rescore else ''}; runs in {args.root}.",
        f"Machine: {host}.",
    ]
    print("\n".join(lines + footer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
