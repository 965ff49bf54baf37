"""Where recall and coverage are lost: ``ctrlgen eval``'s recall and coverage broken down by the real images' class.

Recall is the share of real test images inside the generated manifold (a ball around some
generated sample); coverage the share whose own k-NN ball holds a generated sample.  Both are
over all 10,000 test images; here each model's misses are counted per true class of the
missed image, so a model that drops a class (or part of one) shows it in that class's column
while a model that misses a little of everything shows an even row.  The first rows are the
real training images scored as ``ctrlgen eval``'s reference row scores them.  Same samples
as ``ctrlgen eval MODEL --n N --seed S``, so the "all" column equals its recall / coverage.

    python benchmarks/recall_by_class.py fashion-cgan [RUN/checkpoints/step-N.safetensors ...] [--n 10000] [--mixture] [--typicality]

``--typicality`` adds a second table: recall by how typical each real image is (quartiles of its
distance to its class's mean in evaluator features, the most typical quarter first), and the
median radius of the k=3 balls recall uses, generated over real.  Whether a model misses the rare
images of each class (recall falling with the quartile much faster than the real images' own)
or misses evenly, typical images too (its samples sit a little off the real manifold everywhere).

``--mixture`` adds a row for the models together: their mixture (N samples, each class's split
evenly over the models: what one generator that picks a member per sample would score).  Whether
several seeds miss the same slice of the data or each its own: a mixture of generators that
miss different slices recalls more than any of them.  (The union of their recalled images would
not tell: it counts N samples per model, each with the larger k-NN balls of N samples, so it is
inflated past what N samples of any one generator can score.)
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
from ctrlgen.metrics.manifold import K_PR, prdc_detail, set_radii  # noqa: E402
from ctrlgen.metrics.registry import SampleSet  # noqa: E402
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
    p.add_argument("--mixture", action="store_true", help="also score the models together, as a mixture with each class split evenly over them")
    p.add_argument("--typicality", action="store_true", help="also break recall down by how typical each real image is of its class")
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
    sets = []
    for model in args.models:
        try:
            rt = Runtime.from_file(resolve_model(model))
        except CtrlgenError as e:
            raise SystemExit(f"error: {e}") from None
        if not rt.spec.conditional:
            raise SystemExit(f"error: {model} is not class-conditional; this breakdown is for models with labels")
        sets.append(generated_set(rt, args.n, args.seed, ev))
        for line in rows(Path(model).name, prdc_detail(test, sets[-1])[1], test.labels, len(classes)):
            print(line)
    if args.mixture and len(sets) > 1:
        for line in rows(f"mixture of the {len(sets)} models", prdc_detail(test, mixture(sets))[1], test.labels, len(classes)):
            print(line)
    if args.typicality:
        quartile = typicality_quartiles(test)
        print("\n| model | recall, most typical quarter of the real images | 2nd | 3rd | least typical quarter "
              "| median k=3 radius, generated / real |")
        print("|---|---:|---:|---:|---:|---:|")
        r_ref = float(np.median(np.sqrt(set_radii(train_sub, (K_PR,))[K_PR])))  # the reference row's real set
        print(typicality_row("*real test images vs training images*", prdc_detail(train_sub, ref)[1]["recalled"],
                             typicality_quartiles(train_sub), np.median(np.sqrt(set_radii(ref, (K_PR,))[K_PR])) / r_ref))
        r_test = float(np.median(np.sqrt(set_radii(test, (K_PR,))[K_PR])))
        for model, gen in zip(args.models, sets, strict=True):
            ratio = np.median(np.sqrt(set_radii(gen, (K_PR,))[K_PR])) / r_test
            print(typicality_row(Path(model).name, prdc_detail(test, gen)[1]["recalled"], quartile, ratio))


def typicality_quartiles(real: SampleSet) -> np.ndarray:
    """Per real image, 0..3: the quartile of its distance to its class's mean feature (0 = the most typical quarter)."""
    x, y = np.asarray(real.features, np.float64), np.asarray(real.labels)
    means = np.stack([x[y == c].mean(0) for c in range(int(y.max()) + 1)])
    dist = np.linalg.norm(x - means[y], axis=1)
    return np.digitize(dist, np.quantile(dist, [0.25, 0.5, 0.75]))


def typicality_row(name: str, recalled: np.ndarray, quartile: np.ndarray, radius_ratio: float) -> str:
    cells = [f"{recalled[quartile == q].mean():.3f}" for q in range(4)]
    return f"| {name} | " + " | ".join(cells) + f" | {radius_ratio:.3f} |"


def mixture(sets: list[SampleSet]) -> SampleSet:
    """The samples of several models as one set of the same size: sample i comes from model
    (i // n_classes) % len(sets), so with ``generated_set``'s cycling labels each class is split evenly."""
    n_classes = int(sets[0].labels.max()) + 1
    idx = np.arange(len(sets[0].labels))
    member = (idx // n_classes) % len(sets)
    pick = lambda key: np.stack([getattr(s, key) for s in sets])[member, idx]  # noqa: E731
    return SampleSet(features=pick("features"), logits=pick("logits"), labels=sets[0].labels)


if __name__ == "__main__":
    main()
