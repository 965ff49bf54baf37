"""The Fashion-MNIST evaluation classifier: network, training, ONNX export.

A small CNN, trained once by ``ctrlgen train-evaluator`` and shipped frozen as
``models/fashion-mnist-evaluator.onnx``.  Every image metric of METRICS.md
reads its two outputs: ``logits`` (10 classes) and ``features`` (the 128-d
layer before the classifier, batch-normalized so the Fréchet distance sees
well-conditioned Gaussians and no dead units).

    image [B,1,28,28] in [-1, 1]
      -> conv3x3 32 -> BN -> ReLU -> maxpool        (14x14)
      -> conv3x3 64 -> BN -> ReLU -> maxpool        (7x7)
      -> conv3x3 128 -> BN -> ReLU -> maxpool       (3x3)
      -> FC 128 -> BN = features -> ReLU -> dropout -> FC 10 = logits

About 15 MFLOPs per image: 10,000 images take a few seconds on two CPU
cores.  Training is deterministic for a given seed, machine and thread
count: the data order and the augmentation (random horizontal flips and
shifts of up to 2 pixels) come from one seeded torch.Generator.  The test set
is touched once, after the last epoch, to measure the accuracy the card
reports (no model selection on it).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ctrlgen.classifier import EVALUATOR_FORMAT, EVALUATOR_KEY, FEATURES, IMAGE, LOGITS
from ctrlgen.data import ImageData, load_idx_split
from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes, write_text
from ctrlgen.limits import check_int
from ctrlgen.spec import CARD_KEY
from ctrlgen.train.batches import shift_flip, to_unit


@dataclass(frozen=True)
class EvaluatorConfig:
    """How the evaluator is trained (the defaults made the shipped file)."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 3e-3  # peak of a one-cycle schedule (Adam)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    features: int = 128
    seed: int = 0
    train_limit: int = 0  # use only the first N training images (0 = all; tests use a few)
    test_limit: int = 0  # score only the first N test images (0 = all, as for the shipped file)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "features"):
            if getattr(self, name) < 1:
                raise CtrlgenError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_int("epochs", self.epochs, 1, 1000, "the shipped evaluator took 15")
        for name, shown in (("train_limit", "--limit"), ("test_limit", "test_limit")):  # a negative one sliced off the end
            if getattr(self, name) < 0:
                raise CtrlgenError(f"{shown} must be >= 0 (0 = all images), got {getattr(self, name)}")
        if 0 < self.train_limit < self.batch_size:  # BatchNorm cannot train on one image; a part batch miscounted accuracy
            raise CtrlgenError(f"--limit must be 0 (all images) or at least one batch ({self.batch_size}), got {self.train_limit}")
        if not self.lr > 0 or self.weight_decay < 0 or not 0 <= self.dropout < 1:
            raise CtrlgenError("lr must be > 0, weight_decay >= 0 and dropout in [0, 1)")


class EvaluatorNet(nn.Module):
    def __init__(self, n_classes: int = 10, features: int = 128, dropout: float = 0.3) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]

        self.trunk = nn.Sequential(*block(1, 32), *block(32, 64), *block(64, 128), nn.Flatten())
        self.embed = nn.Sequential(nn.Linear(128 * 3 * 3, features, bias=False), nn.BatchNorm1d(features))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(features, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(self.trunk(x))
        return self.head(f), f


def _as_float(images: np.ndarray) -> torch.Tensor:
    return to_unit(torch.from_numpy(np.ascontiguousarray(images)))


@torch.no_grad()
def accuracy(net: EvaluatorNet, data: ImageData, batch: int = 1000) -> float:
    net.eval()
    hits = 0
    for i in range(0, len(data.labels), batch):
        logits, _ = net(_as_float(data.images[i : i + batch]))
        hits += int((logits.argmax(1).numpy() == data.labels[i : i + batch]).sum())
    return hits / max(1, len(data.labels))


def train(cfg: EvaluatorConfig, data_dir: str | None = None, log=print) -> tuple[EvaluatorNet, dict]:
    """Train on the Fashion-MNIST training split; return the net and a report (test accuracy, time)."""
    train_data = load_idx_split(data_dir, "train")
    test_data = load_idx_split(data_dir, "test")
    if cfg.test_limit:
        test_data = ImageData(test_data.images[: cfg.test_limit], test_data.labels[: cfg.test_limit],
                              test_data.class_names, test_data.source)
    if train_data.images.shape[1:] != (1, 28, 28):
        raise CtrlgenError(f"the evaluator reads 1x28x28 images; {train_data.source} holds {train_data.images.shape[1:]}")
    images, labels = train_data.images, train_data.labels
    if cfg.train_limit:
        images, labels = images[: cfg.train_limit], labels[: cfg.train_limit]
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_classes = len(train_data.class_names)
    net = EvaluatorNet(n_classes, cfg.features, cfg.dropout)
    x_all, y_all = _as_float(images), torch.from_numpy(labels)
    per_epoch = max(1, len(y_all) // cfg.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * per_epoch)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        perm = torch.randperm(len(y_all), generator=gen)
        total, hits = 0.0, 0
        for i in range(per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x, y = shift_flip(x_all[idx], 2, True, gen), y_all[idx]  # flips and shifts of up to 2 pixels
            logits, _ = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
            hits += int((logits.argmax(1) == y).sum())
        log(f"epoch {epoch + 1}/{cfg.epochs}: loss {total / per_epoch:.4f}, train acc {hits / (per_epoch * cfg.batch_size):.4f}, "
            f"{time.perf_counter() - t0:.0f} s")
    wall = time.perf_counter() - t0
    test_acc = accuracy(net, test_data)
    net.eval()
    report = {
        "test_accuracy": round(test_acc, 5),
        "wall_time_s": round(wall, 1),
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "train_images": int(len(y_all)),
        "data": {"source": train_data.source, "train": train_data.fingerprint(), "test": test_data.fingerprint()},
        "labels": list(train_data.class_names),
        "config": asdict(cfg),
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    log(f"test accuracy {test_acc:.4f} ({len(test_data.labels)} images) after {wall:.0f} s")
    return net, report


def weights_sha256(net: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def export(net: EvaluatorNet, report: dict, out: str | Path, card_md: str | Path | None = None) -> dict:
    """Write the evaluator ONNX (inputs ``image``; outputs ``logits``, ``features``) and its card."""
    import logging
    import tempfile
    import warnings

    import onnx

    # The exporter warns about torchvision ops it cannot register; the evaluator uses none.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    net = net.eval()
    info = {
        "format": EVALUATOR_FORMAT,
        "labels": report["labels"],
        "input": {"name": IMAGE, "shape": [1, 28, 28], "range": [-1.0, 1.0]},
        "features": net.embed[0].out_features,
        "test_accuracy": report["test_accuracy"],
        "data": report["data"],
    }
    card = {"name": "fashion-mnist-evaluator", "weights_sha256": weights_sha256(net), **report}
    example = torch.zeros(4, 1, 28, 28)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(tmp) / "evaluator.onnx"
        torch.onnx.export(
            net, (example,), str(path), input_names=[IMAGE], output_names=[LOGITS, FEATURES],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1 << 20)},), dynamo=True,
            external_data=False, optimize=True, verbose=False,
        )
        model = onnx.load(str(path))
    for key, value in ((EVALUATOR_KEY, json.dumps(info, sort_keys=True)), (CARD_KEY, json.dumps(card, sort_keys=True))):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "ctrlgen"
    model.doc_string = "ctrlgen Fashion-MNIST evaluation classifier: image -> logits, features"
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    _check_parity(data, net)
    write_bytes(out, data)
    if card_md is not None:
        write_text(card_md, card_markdown(card, info))
    return card


def _check_parity(data: bytes, net: EvaluatorNet) -> None:
    import onnxruntime as ort

    x = np.random.default_rng(0).uniform(-1, 1, (37, 1, 28, 28)).astype(np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    logits, feats = sess.run([LOGITS, FEATURES], {IMAGE: x})
    with torch.no_grad():
        want_l, want_f = net(torch.from_numpy(x))
    diff = max(float(np.abs(logits - want_l.numpy()).max()), float(np.abs(feats - want_f.numpy()).max()))
    if not diff < 1e-3 or not math.isfinite(diff):
        raise CtrlgenError(f"the evaluator's ONNX differs from torch by {diff:.3g}; it was not written")


CARD_LEAD = "The frozen Fashion-MNIST classifier that `ctrlgen eval` and training-time monitoring use for every"


def is_evaluator_markdown(path: str | Path) -> bool:
    """Whether ``path`` holds an evaluator card ``card_markdown`` wrote (its title, a blank line, its lead)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = [f.readline().rstrip("\n") for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    return head == ["# fashion-mnist-evaluator", "", CARD_LEAD]


def card_markdown(card: dict, info: dict) -> str:
    cfg = card["config"]
    return "\n".join([
        "# fashion-mnist-evaluator",
        "",
        CARD_LEAD,
        "image metric of `METRICS.md` (class histograms, conditional accuracy, Fréchet distance,",
        "precision/recall, density/coverage, intra-class diversity, InfoGAN purity).",
        "",
        "| field | value |",
        "|---|---|",
        f"| test accuracy | {100 * card['test_accuracy']:.2f}% on the 10,000 Fashion-MNIST test images |",
        f"| inputs | `{IMAGE}` float32 [batch, 1, 28, 28] in [-1, 1] |",
        f"| outputs | `{LOGITS}` [batch, {len(info['labels'])}], `{FEATURES}` [batch, {info['features']}] (batch-normalized FC layer) |",
        f"| training | {cfg['epochs']} epochs, batch {cfg['batch_size']}, AdamW one-cycle lr {cfg['lr']:g}, "
        f"weight decay {cfg['weight_decay']:g}, label smoothing {cfg['label_smoothing']:g}, flips + 2 px shifts, seed {cfg['seed']} |",
        f"| train images | {card['train_images']} |",
        f"| wall time | {card['wall_time_s']:.0f} s on {card['device']} |",
        f"| weights sha256 | `{card['weights_sha256'][:16]}…` |",
        f"| data fingerprints | train `{info['data']['train']}`, test `{info['data']['test']}` |",
        "",
        "Reproduce with `ctrlgen train-evaluator -o models/fashion-mnist-evaluator.onnx --force`.",
        "",
    ])
