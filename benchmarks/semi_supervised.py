"""Does semi-supervision tie InfoGAN's categorical code to the classes?  A short Fashion-MNIST check.

Trains fashion-infogan (small networks) with and without ``[techniques.semi_supervised]`` from
the same seed for the same steps, then samples ``--n`` images (the categorical code cycling over
its values) and scores them with the shipped evaluator:

* purity: the best one-to-one matching of code values to predicted classes (METRICS.md,
  ctrlgen/metrics/infogan.py), which credits any permutation;
* accuracy as named: the share of samples of value k that the evaluator calls class k, which is
  what semi-supervision promises (value k *is* class k) and plain InfoGAN cannot (its order is
  arbitrary: about 1/10 by chance).

    python benchmarks/semi_supervised.py                      # 300 steps, seed 0
    python benchmarks/semi_supervised.py --steps 600 --seed 1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Small networks that learn in a few hundred steps: without D's BatchNorm and with lr_d = lr_g (the recipe's
# BatchNorm D at lr_d 2e-4 is still at chance after 400 steps at this size, its samples noise for either run).
SMALL = ["net.g_width=16", "net.d_width=16", "net.g_fc=64", "net.d_fc=64", "net.q_hidden=32", "batch_size=32",
         "net.d_norm=none", "lr_d=1e-3", "progress=false", "monitor_every=0", "sample_every=0", "log_every=50"]


def train(labels_per_class: int, steps: int, seed: int, run_dir: Path):
    """A trainer after ``steps`` steps of fashion-infogan (semi-supervised when labels_per_class > 0)."""
    from ctrlgen.train.config import load_config
    from ctrlgen.train.trainer import Trainer

    ss = [f"techniques.semi_supervised.labels_per_class={labels_per_class}"] if labels_per_class else []
    cfg = load_config("fashion-infogan", [*SMALL, f"steps={steps}", f"seed={seed}", f"checkpoint_every={steps}", *ss])
    trainer = Trainer(cfg, run_dir)
    trainer.run()
    return trainer


@torch.no_grad()
def score(trainer, n: int = 2000, seed: int = 123) -> dict[str, float]:
    """Purity and accuracy-as-named of ``n`` samples whose categorical code cycles over its values."""
    from ctrlgen.classifier import Evaluator
    from ctrlgen.metrics.infogan import purity_score

    spec = trainer.spec
    k = spec.categorical[0].n
    inputs = spec.sample(n, seed=seed)
    inputs["code_cat"][:, 0] = np.arange(n) % k
    g = trainer.sampling_generator().eval()
    images = g(**{name: torch.from_numpy(v) for name, v in inputs.items()}).float().numpy()
    pred = Evaluator.load()(images)[0].argmax(1)
    codes = inputs["code_cat"][:, 0]
    return {"purity": purity_score(codes, pred, k, k), "accuracy_as_named": float(np.mean(pred == codes))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--labels-per-class", type=int, default=10)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    print(f"fashion-infogan, small networks ({' '.join(SMALL[:8])}), {args.steps} steps, seed {args.seed}, {args.n} samples")
    print("| run | purity | accuracy as named | train s |")
    print("|---|---|---|---|")
    for per_class in (0, args.labels_per_class):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            trainer = train(per_class, args.steps, args.seed, Path(tmp) / "run")
            wall = time.perf_counter() - t0
            s = score(trainer, args.n)
        name = f"{per_class} labels per class" if per_class else "no labels (plain InfoGAN)"
        print(f"| {name} | {s['purity']:.3f} | {s['accuracy_as_named']:.3f} | {wall:.0f} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
