"""Real-data reference sets: evaluator outputs of real images, cached on disk.

Two sets per evaluator and data: the 10,000 test images (what generated
samples are compared with) and a fixed subset of ``TRAIN_SUBSET`` training
images (the "generated" side of the real-vs-real reference).  Their logits
and features are cached in ``cache_dir()`` as plain ``.npz`` files (read with
``allow_pickle=False``), with their k-NN radii (k = 3 and 5, the real
manifold of precision/recall and density/coverage), named by the evaluator's SHA-256 and the data's
content hash, so a second ``ctrlgen eval`` skips the evaluator pass, and a
new evaluator or different data never reuses stale features.  A damaged
cache file is recomputed and replaced atomically.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from ctrlgen.classifier import Evaluator
from ctrlgen.data import ImageData, load_idx_split
from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes
from ctrlgen.metrics.manifold import K_DC, K_PR, knn_sq_radii, radii_key
from ctrlgen.metrics.registry import SampleSet

TRAIN_SUBSET = 10_000
SUBSET_SEED = 20_240_601  # the training subset is a fixed draw, the same on every machine
CACHE_ENV = "CTRLGEN_CACHE"


def cache_dir() -> Path:
    """``$CTRLGEN_CACHE``, else ``$XDG_CACHE_HOME/ctrlgen``, else ``~/.cache/ctrlgen``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ctrlgen"


def _real_set(labels: np.ndarray, logits: np.ndarray, features: np.ndarray) -> SampleSet:
    # Real images use their true class as the "categorical code", so purity's reference
    # is the evaluator's own accuracy under the best matching.
    # real images' code is their true class, named by itself: accuracy as named is the evaluator's accuracy
    return SampleSet(features=features, logits=logits, labels=labels, codes_cat=labels[:, None],
                     cat_classes=np.arange(logits.shape[1]))


FIELDS = ("labels", "logits", "features", "knn3", "knn5")


def _load_cached(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in FIELDS}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if len({len(v) for v in out.values()}) != 1:
        return None
    return out


def _features(evaluator: Evaluator, data: ImageData, split: str, idx: np.ndarray | None, folder: Path) -> SampleSet:
    tag = "all" if idx is None else f"sub{len(idx)}-{SUBSET_SEED}"
    path = folder / f"real-{evaluator.sha256[:16]}-{split}-{data.fingerprint()}-{tag}.npz"
    cached = _load_cached(path) if path.is_file() else None
    if cached is None:
        images = data.images if idx is None else data.images[idx]
        labels = data.labels if idx is None else data.labels[idx]
        logits, feats = evaluator.uint8(images)
        radii = knn_sq_radii(feats, (K_PR, K_DC))  # the real manifold of precision/recall, density/coverage
        cached = {"labels": labels, "logits": logits, "features": feats, "knn3": radii[K_PR], "knn5": radii[K_DC]}
        buf = io.BytesIO()
        np.savez(buf, **cached)
        try:
            write_bytes(path, buf.getvalue())
        except CtrlgenError:
            pass  # a read-only cache only costs time
    out = _real_set(cached["labels"], cached["logits"], cached["features"])
    out.memo[radii_key((K_PR, K_DC))] = {K_PR: cached["knn3"], K_DC: cached["knn5"]}
    return out


def train_subset(n_train: int) -> np.ndarray:
    """Indices of the fixed training subset (sorted)."""
    return np.sort(np.random.default_rng(SUBSET_SEED).permutation(n_train)[:TRAIN_SUBSET])


def real_sets(evaluator: Evaluator, data_dir: str | os.PathLike | None = None) -> tuple[SampleSet, SampleSet]:
    """(test set, training subset) of the evaluator's data, from the cache when possible."""
    folder = cache_dir()
    test = load_idx_split(data_dir, "test")
    train = load_idx_split(data_dir, "train")
    for d in (test, train):
        evaluator.check_images(d.images.shape[1:], f"the data in {d.source}")
        if len(set(d.labels.tolist())) > len(evaluator.labels):
            raise CtrlgenError(f"{d.source} has more classes than the evaluator's {len(evaluator.labels)}; use Fashion-MNIST")
    return _features(evaluator, test, "test", None, folder), _features(evaluator, train, "train", train_subset(len(train.labels)), folder)
