"""How well Q names real images after ``[techniques.semi_supervised] q_warmup`` alone, per seed.

For each seed, builds a ``fashion-infogan-ss`` run with ``q_warmup`` = N (the warm-up happens when the
run is built; no training step is taken) and prints Q's accuracy on the 10,000 Fashion-MNIST test
images, per class, and how often it calls a Shirt a Coat and a Coat a Shirt: what the labelled set of
that seed alone teaches, before G draws anything.

    python benchmarks/q_warmup.py [--steps 300] [--seeds 0 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402

from ctrlgen.data import load_images  # noqa: E402
from ctrlgen.train.batches import to_unit  # noqa: E402
from ctrlgen.train.config import load_config  # noqa: E402
from ctrlgen.train.trainer import Trainer  # noqa: E402

COAT, SHIRT = 4, 6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    a = p.parse_args()
    print(machine())
    test = load_images(None, "test", 28, 1, unlabelled=True)
    y = test.labels
    print("| seed | q_warmup | build s | test accuracy | per class (0..9) | Shirt called Coat | Coat called Shirt |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for seed in a.seeds:
        cfg = load_config("fashion-infogan-ss", [f"techniques.semi_supervised.q_warmup={a.steps}", f"seed={seed}", "progress=false"])
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            trainer = Trainer(cfg, Path(d) / "run")
            built = time.perf_counter() - t0
            with torch.no_grad():
                pred = np.concatenate([trainer.D(to_unit(torch.from_numpy(np.ascontiguousarray(test.images[i : i + 500]))), None)
                                       .q_cat[0].argmax(1).numpy() for i in range(0, len(y), 500)])
        per = " ".join(f"{(pred[y == k] == k).mean():.2f}" for k in range(10))
        print(f"| {seed} | {a.steps} | {built:.1f} | {(pred == y).mean():.3f} | {per} | "
              f"{(pred[y == SHIRT] == COAT).mean():.2f} | {(pred[y == COAT] == SHIRT).mean():.2f} |", flush=True)


if __name__ == "__main__":
    main()
