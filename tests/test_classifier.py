"""The shipped evaluation classifier and the metrics on real Fashion-MNIST features."""

import json

import numpy as np
import onnx
import pytest

from conftest import needs_fashion
from ctrlgen.classifier import EVALUATOR_KEY, Evaluator, default_path
from ctrlgen.data import load_idx_split
from ctrlgen.metrics import Pair, SampleSet, compute
from ctrlgen.reference import TRAIN_SUBSET, real_sets, train_subset


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator.load()


@pytest.fixture(scope="module")
def real(evaluator):
    return real_sets(evaluator)


def test_shipped_evaluator_file_and_card():
    path = default_path()
    assert path.is_file() and path.stat().st_size < 20e6
    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["logits", "features"]
    assert [i.name for i in model.graph.input] == ["image"]
    info = json.loads({p.key: p.value for p in model.metadata_props}[EVALUATOR_KEY])
    assert info["test_accuracy"] >= 0.92 and len(info["labels"]) == 10
    md = path.with_suffix(".md").read_text()
    assert f"{100 * info['test_accuracy']:.2f}%" in md and "ctrlgen train-evaluator" in md


@needs_fashion
def test_the_card_accuracy_is_what_the_file_scores_on_the_test_set(evaluator):
    test = load_idx_split(None, "test")
    logits, feats = evaluator.uint8(test.images)
    acc = float((logits.argmax(1) == test.labels).mean())
    assert acc == pytest.approx(evaluator.info["test_accuracy"], abs=1e-4)
    assert acc >= 0.92 and feats.shape == (10_000, evaluator.info["features"])


@needs_fashion
def test_training_is_deterministic_for_a_seed(tmp_path):
    from ctrlgen.train.classifier_training import EvaluatorConfig, train, weights_sha256

    cfg = EvaluatorConfig(epochs=1, train_limit=384, test_limit=500, batch_size=64)
    a, rep = train(cfg, log=lambda *_: None)
    b, _ = train(cfg, log=lambda *_: None)
    c, _ = train(EvaluatorConfig(epochs=1, train_limit=384, test_limit=500, batch_size=64, seed=1), log=lambda *_: None)
    assert weights_sha256(a) == weights_sha256(b) != weights_sha256(c)
    assert 0.0 <= rep["test_accuracy"] <= 1.0 and rep["train_images"] == 384


@needs_fashion
def test_real_vs_real_fd_matches_the_baseline_and_precision_recall_are_high(evaluator, real):
    test, train_sub = real
    assert len(test) == 10_000 and len(train_sub) == TRAIN_SUBSET
    baseline = compute(Pair(test, train_sub), ["fd", "precision", "recall"])
    # Other training images (none of them in the reference subset) play the generator.
    train = load_idx_split(None, "train")
    others = np.setdiff1d(np.arange(len(train.labels)), train_subset(len(train.labels)))[:10_000]
    logits, feats = evaluator.uint8(train.images[others])
    gen = SampleSet(features=feats, logits=logits, labels=train.labels[others])
    m = compute(Pair(gen, test))
    assert 0.6 * baseline["fd"] < m["fd"] < 1.6 * baseline["fd"] + 0.05
    assert m["precision"] > 0.8 and m["recall"] > 0.8
    assert m["classes_covered"] == 10 and m["kl_classes"] < 0.01
    assert m["intra_diversity"] == pytest.approx(1.0, abs=0.1)
    assert m["conditional_accuracy"] > 0.92  # training images: at least the test accuracy


@needs_fashion
def test_one_image_repeated_covers_one_class_and_recalls_nothing(real):
    test, _ = real
    one = test.head(1)
    rep = SampleSet(features=np.repeat(one.features, 5000, 0), logits=np.repeat(one.logits, 5000, 0))
    m = compute(Pair(rep, test))
    assert m["classes_covered"] == 1 and m["coverage"] < 0.01
    assert m["recall"] <= 1 / len(test)  # at most the test image itself
    assert m["fd"] > 50 * compute(Pair(test.head(5000), test), ["fd"])["fd"]
