"""Which class the evaluator calls each value of a named categorical code: the confusion table.

For a model whose categorical code's values are named by class (semi-supervised InfoGAN:
``fashion-infogan-ss``), N samples of each value (seed = the value's index) are classified by
the evaluator; row k gives how many of value k's samples went to each class, and the share
called by the value's own name ("as named").  The diagonal's mean is ``ctrlgen eval``'s
named_accuracy on balanced values.

    python benchmarks/named_confusion.py fashion-infogan-ss [--n 500]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import machine  # noqa: E402

from ctrlgen.classifier import Evaluator  # noqa: E402
from ctrlgen.metrics.report import named_classes  # noqa: E402
from ctrlgen.models import resolve_model  # noqa: E402
from ctrlgen.runtime import Runtime  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", help="a shipped model name, .onnx file, run directory or checkpoint")
    p.add_argument("--n", type=int, default=500, help="samples per value")
    args = p.parse_args()
    rt, ev = Runtime.from_file(resolve_model(args.model)), Evaluator.load()
    classes = list(ev.labels)
    as_class = named_classes(rt.spec, classes)  # what ctrlgen eval's named_accuracy maps each value to
    if as_class is None:
        raise SystemExit(f"{args.model}'s categorical code is not named by the evaluator's classes (a semi-supervised InfoGAN's is)")
    code = rt.spec.categorical[0]
    print(f"{args.model}: {args.n} samples per value of {code.name}; {machine()}\n")
    print("| value | " + " | ".join(classes) + " | as named |")
    print("|---|" + "---:|" * (len(classes) + 1))
    hits = []
    for k, name in enumerate(code.values):
        x, _ = rt.generate(args.n, seed=k, cat={code.name: k})
        pred = ev(x)[0].argmax(1)
        row = np.bincount(pred, minlength=len(classes))
        hits.append(row[as_class[k]] / args.n)
        print(f"| {name} | " + " | ".join(str(v) for v in row) + f" | {hits[-1]:.3f} |")
    print(f"\nmean share as named: {np.mean(hits):.3f}")


if __name__ == "__main__":
    main()
