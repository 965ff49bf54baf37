"""A model's metrics report: draw samples, read them with the evaluation classifier, compute every metric that applies.

``evaluate(model)`` takes an ``.onnx`` file, a checkpoint or a run directory
and returns a ``Report``: one row per metric with the model's value and the
real-data reference value beside it (the same metric with real test images in
place of the samples, against a training subset).  Which metrics apply
follows from the model's spec: the 2D protocol for mixtures; for
Fashion-MNIST images the class histogram, FD, precision/recall and
density/coverage; conditional models add conditional accuracy, intra-class
FD and diversity; InfoGAN models add purity and, when a Q head is at hand,
consistency.  Conditional models are asked for every class equally often
(sample i gets label i mod K), so the label distribution asked for is uniform.

``check_quality(fp32, reduced)`` compares two runtimes on the same inputs
(conditional accuracy, FD): the check every int8 export passes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.metrics import Pair, SampleSet, applicable
from ctrlgen.spec import name_index

DEFAULT_N_IMAGES = 10_000
DEFAULT_N_POINTS = 2_500  # the PacGAN / VEEGAN protocol draws 2,500 samples
CHUNK = 1000
# The quality check of a reduced-precision (int8) model against its fp32 export:
QUALITY_ACC_POINTS = 1.0  # conditional accuracy may drop by at most this many percentage points
QUALITY_FD_RATIO = 0.10  # FD may grow by at most this fraction
QUALITY_N = 10_000


@dataclass
class Row:
    name: str
    value: float
    reference: float | None
    higher_is_better: bool
    doc: str


@dataclass
class Report:
    model: str
    source: str
    kind: str  # "image" or "points"
    n: int
    seed: int
    rows: list[Row]
    evaluator: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def values(self) -> dict[str, float]:
        return {r.name: r.value for r in self.rows}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "source": self.source,
            "kind": self.kind,
            "n": self.n,
            "seed": self.seed,
            "metrics": {
                r.name: {"value": _finite(r.value), "real": _finite(r.reference), "higher_is_better": r.higher_is_better}
                for r in self.rows
            },
            "evaluator": self.evaluator,
            "seconds": self.seconds,
            "notes": self.notes,
        }


def _finite(x: float | None) -> float | None:
    """JSON has no inf/NaN: an infinite or undefined value is written as null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def balanced_labels(n: int, k: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % k


def _q_predictor(rt, notes: list[str]):
    """A function samples/inputs -> Q predictions, or None (with a note saying why)."""
    from ctrlgen.spec import Q_OUTPUT

    session = getattr(rt, "session", None)
    if session is not None:
        if Q_OUTPUT in [o.name for o in session.get_outputs()]:
            return lambda samples, inputs: session.run([Q_OUTPUT], inputs)[0]
        notes.append("consistency: this ONNX file has no Q head; export it with --q-head or evaluate its run directory")
        return None
    from ctrlgen.qhead import load_q, predict

    q = load_q(rt.source)
    return None if q is None else (lambda samples, inputs: predict(q, samples))


def generated_set(rt, n: int, seed: int, evaluator=None, notes: list[str] | None = None) -> SampleSet:
    """Samples of ``rt`` read by the evaluator (images) or kept as points."""
    spec = rt.spec
    notes = [] if notes is None else notes
    labels = balanced_labels(n, spec.n_classes) if spec.conditional else None
    q_fn = _q_predictor(rt, notes) if spec.continuous and spec.output_kind == "image" else None
    parts: dict[str, list[np.ndarray]] = {"points": [], "logits": [], "features": [], "cat": [], "cont": [], "q": []}
    for samples, inputs in rt.stream(n, seed, chunk=CHUNK, label=labels):
        if spec.output_kind == "points":
            parts["points"].append(samples)
            continue
        lo, fe = evaluator(samples)
        parts["logits"].append(lo)
        parts["features"].append(fe)
        if spec.categorical:
            parts["cat"].append(inputs["code_cat"])
        if spec.continuous:
            parts["cont"].append(inputs["code_cont"])
        if q_fn is not None:
            parts["q"].append(q_fn(samples, inputs))

    def cat(key: str) -> np.ndarray | None:
        return np.concatenate(parts[key]) if parts[key] else None

    if spec.output_kind == "points":
        return SampleSet(points=cat("points"))
    return SampleSet(features=cat("features"), logits=cat("logits"), labels=labels, codes_cat=cat("cat"),
                     codes_cont=cat("cont"), q_cont=cat("q"), cat_classes=named_classes(spec, evaluator.labels))


def named_classes(spec, classes) -> np.ndarray | None:
    """The evaluator class of each value of the first categorical code, where the spec names every value by one
    of the evaluator's classes (case-insensitive); None otherwise (unnamed values, or names it does not know)."""
    if not spec.categorical or not spec.categorical[0].values:
        return None
    idx = [name_index(classes, v) for v in spec.categorical[0].values]
    return None if None in idx else np.asarray(idx, np.int64)


def _rows(gen_pair: Pair, ref_pair: Pair | None, cheap_only: bool) -> list[Row]:
    rows = []
    for m in applicable(gen_pair.gen, cheap_only):
        ref = float(m.fn(ref_pair)) if ref_pair is not None and m.applies(ref_pair.gen) else None
        rows.append(Row(m.name, float(m.fn(gen_pair)), ref, m.higher_is_better, m.doc))
    return rows


def evaluate(
    model: str | os.PathLike,
    n: int | None = None,
    seed: int = 0,
    evaluator_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    cheap_only: bool = False,
) -> Report:
    from ctrlgen.data import mixture
    from ctrlgen.runtime import Runtime

    t0 = time.perf_counter()
    rt = Runtime.from_file(model)
    spec = rt.spec
    notes: list[str] = []
    seconds: dict[str, float] = {}
    if spec.output_kind == "points":
        if "mixture" not in spec.extra:
            raise CtrlgenError(f"{model} makes 2D points but its spec names no mixture (extra.mixture); nothing to compare with")
        mix = mixture(spec.extra["mixture"])
        n = DEFAULT_N_POINTS if n is None else n
        _check_n(n)
        gen = generated_set(rt, n, seed)
        seconds["generate"] = time.perf_counter() - t0
        real, _ = mix.sample(n, np.random.default_rng(seed))
        rows = _rows(Pair(gen, mixture=mix), Pair(SampleSet(points=real), mixture=mix), cheap_only)
        seconds["total"] = time.perf_counter() - t0
        return Report(rt.name, str(model), "points", n, seed, rows, None, _round(seconds), notes)

    from ctrlgen.classifier import Evaluator
    from ctrlgen.reference import real_sets

    data = spec.extra.get("data")
    if data != "fashion-mnist":
        raise CtrlgenError(f"{model} makes images of data {data!r}; ctrlgen eval has an evaluator for fashion-mnist only")
    evaluator = Evaluator.load(evaluator_path)
    evaluator.check_images(spec.output_shape)
    if spec.conditional and spec.n_classes != len(evaluator.labels):
        raise CtrlgenError(f"{model} has {spec.n_classes} classes but the evaluator knows {len(evaluator.labels)}; "
                           "conditional metrics need the Fashion-MNIST classes")
    n = DEFAULT_N_IMAGES if n is None else n
    _check_n(n)
    t1 = time.perf_counter()
    test, train_sub = real_sets(evaluator, data_dir)
    seconds["real_features"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    gen = generated_set(rt, n, seed, evaluator, notes)
    seconds["generate_and_read"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    ref_gen = test.head(min(n, len(test)))
    rows = _rows(Pair(gen, test), Pair(ref_gen, train_sub), cheap_only)
    seconds["metrics"] = time.perf_counter() - t1
    seconds["total"] = time.perf_counter() - t0
    ev = {"path": str(evaluator.path), "sha256": evaluator.sha256, "test_accuracy": evaluator.info.get("test_accuracy"),
          "reference": f"{len(ref_gen)} real test images vs {len(train_sub)} training images"}
    return Report(rt.name, str(model), "image", n, seed, rows, ev, _round(seconds), notes)


def _check_n(n: int) -> None:
    if n < 10:
        raise CtrlgenError(f"--n must be at least 10 for the metrics to mean anything, got {n}")
    if n > 1_000_000:
        raise CtrlgenError(f"--n {n} is too large (max 1,000,000)")


def _round(seconds: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in seconds.items()}


def check_quality(reference: Any, candidate: Any, n: int = QUALITY_N, seed: int = 0) -> dict[str, Any]:
    """Evaluator conditional accuracy and FD of two runtimes on the same inputs; raise if ``candidate`` lost quality.

    Returns ``{"n", "fp32": {...}, "reduced": {...}}`` for the card."""
    from ctrlgen.classifier import Evaluator
    from ctrlgen.metrics.classes import conditional_accuracy
    from ctrlgen.metrics.frechet import fd
    from ctrlgen.reference import real_sets

    spec = reference.spec
    if spec.output_kind != "image" or spec.extra.get("data") != "fashion-mnist" or not spec.conditional:
        raise CtrlgenError("reduced precision needs a class-conditional Fashion-MNIST image generator (its quality check uses the evaluator)")
    evaluator = Evaluator.load()
    test, _ = real_sets(evaluator)
    got = {}
    for key, rt in (("fp32", reference), ("reduced", candidate)):
        pair = Pair(generated_set(rt, n, seed, evaluator), test)
        got[key] = {"conditional_accuracy": round(float(conditional_accuracy(pair)), 5), "fd": round(float(fd(pair)), 4)}
    ref, new = got["fp32"], got["reduced"]
    drop = 100 * (ref["conditional_accuracy"] - new["conditional_accuracy"])
    growth = new["fd"] / ref["fd"] - 1 if ref["fd"] > 0 else 0.0
    if drop > QUALITY_ACC_POINTS or growth > QUALITY_FD_RATIO:
        raise CtrlgenError(
            f"reduced precision lost quality: conditional accuracy {ref['conditional_accuracy']:.4f} -> {new['conditional_accuracy']:.4f}, "
            f"FD {ref['fd']:.3f} -> {new['fd']:.3f} (allowed: -{QUALITY_ACC_POINTS:g} point, +{QUALITY_FD_RATIO:.0%}); keep fp32"
        )
    return {"n": n, "seed": seed, **got}
