"""Where recall and coverage are lost: ``ctrlgen eval``'s recall and coverage broken down by the real images' class.

Recall is the share of real test images inside the generated manifold (a ball around some
generated sample); coverage the share whose own k-NN ball holds a generated sample.  Both are
over all 10,000 test images; here each model's misses are counted per true class of the
missed image, so a model that drops a class (or part of one) shows it in that class's column
while a model that misses a little of everything shows an even row.  The first rows are the
real training images scored as ``ctrlgen eval``'s reference row scores them.  Same samples
as ``ctrlgen eval MODEL --n N --seed S``, so the "all" column equals its recall / coverage.

    python benchmarks/recall_by_class.py fashion-cgan [RUN/checkpoints/step-N.safetensors ...] [--n 10000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402

from ctrlgen.classifier import Evaluator  # noqa: E402
from ctrlgen.errors import CtrlgenError  # noqa: E402
from ctrlgen.metrics.manifold import prdc_detail  # noqa: E402
from ctrlgen.metrics.report import generated_set  # noqa: E402
from ctrlgen.models import resolve_model  # noqa: E402
from ctrlgen.reference import real_sets  # noqa: E402
from ctrlgen.runtime import Runtime  # noqa: E402


def rows(name: str, masks: dict[str, np.ndarray], real_labels: np.ndarray, n_classes: int) -> list[str]:
    out = []
    for key, metric in (("recalled", "recall"), ("covered", "coverage")):
        mask = masks[key]
        cells = [f"{mask[real_labels == c].mean():.3f}" for c in range(n_classes)]
        out.append(f"| {name} | {metric} | " + " | ".join(cells) + f" | {mask.mean():.3f} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="shipped model names, .onnx files, run directories or checkpoints (class-conditional)")
    p.add_argument("--n", type=int, default=10000, help="generated samples per model (ctrlgen eval's default)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    ev = Evaluator.load()
    test, train_sub = real_sets(ev, None)
    classes = list(ev.labels)
    print(f"{len(test)} real test images; {args.n} samples per model, seed {args.seed}; {machine()}\n")
    print("| model | metric | " + " | ".join(classes) + " | all |")
    print("|---|---|" + "---:|" * (len(classes) + 1))
    ref = test.head(min(args.n, len(test)))  # ctrlgen eval's reference row: test images against training images
    for line in rows("*real test images vs training images*", prdc_detail(train_sub, ref)[1], train_sub.labels, len(classes)):
        print(line)
    for model in args.models:
        try:
            rt = Runtime.from_file(resolve_model(model))
        except CtrlgenError as e:
            raise SystemExit(f"error: {e}") from None
        if not rt.spec.conditional:
            raise SystemExit(f"error: {model} is not class-conditional; this breakdown is for models with labels")
        gen = generated_set(rt, args.n, args.seed, ev)
        for line in rows(Path(model).name, prdc_detail(test, gen)[1], test.labels, len(classes)):
            print(line)


if __name__ == "__main__":
    main()
