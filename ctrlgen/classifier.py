"""The frozen evaluation classifier, run with ONNX Runtime (numpy in, numpy out).

``Evaluator.load()`` opens ``models/fashion-mnist-evaluator.onnx`` (or a given
file); ``evaluator(images)`` returns ``(logits, features)`` for float images
in [-1, 1] of shape [N, 1, 28, 28], in chunks so memory stays bounded.  The
file's SHA-256 keys the cache of real-data features (``ctrlgen.reference``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import CARD_KEY

EVALUATOR_FORMAT = 1
EVALUATOR_KEY = "ctrlgen.evaluator"  # metadata key inside shipped files: keeps its name
EVALUATOR_FILE = "fashion-mnist-evaluator.onnx"
EVALUATOR_ENV = "CTRLGEN_EVALUATOR"
IMAGE, LOGITS, FEATURES = "image", "logits", "features"
CHUNK = 1000


def default_path() -> Path:
    """``$CTRLGEN_EVALUATOR`` when set, else the shipped ``models/fashion-mnist-evaluator.onnx``."""
    from ctrlgen.models import models_dir

    return Path(os.environ.get(EVALUATOR_ENV) or models_dir() / EVALUATOR_FILE)


@dataclass
class Evaluator:
    session: object
    path: Path
    sha256: str
    info: dict  # labels, input shape and range, feature size, test accuracy, data fingerprints
    card: dict

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, threads: int | None = None) -> Evaluator:
        import onnxruntime as ort

        path = Path(path) if path is not None else default_path()
        try:
            data = path.read_bytes()
        except OSError as e:
            hint = "train it with: ctrlgen train-evaluator" if path == default_path() else "check the path"
            raise CtrlgenError(f"cannot read the evaluator {path} ({e.strerror}); {hint}") from None
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # Idle ORT workers spin by default and starve the BLAS threads of the metrics that follow.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            so.intra_op_num_threads = threads
        try:
            sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own types
            raise CtrlgenError(f"{path} is not a loadable ONNX model ({type(e).__name__}); retrain it with ctrlgen train-evaluator") from None
        meta = sess.get_modelmeta().custom_metadata_map
        if EVALUATOR_KEY not in meta:
            raise CtrlgenError(f"{path} has no '{EVALUATOR_KEY}' metadata; it is not a ctrlgen evaluator (make one with ctrlgen train-evaluator)")
        info = json.loads(meta[EVALUATOR_KEY])
        if info.get("format", 0) > EVALUATOR_FORMAT:
            raise CtrlgenError(f"{path} has evaluator format {info.get('format')}, newer than this ctrlgen; upgrade ctrlgen")
        outs = [o.name for o in sess.get_outputs()]
        if outs[:2] != [LOGITS, FEATURES]:
            raise CtrlgenError(f"{path} outputs {outs}, expected [{LOGITS!r}, {FEATURES!r}]; retrain it with ctrlgen train-evaluator")
        card = json.loads(meta.get(CARD_KEY, "{}"))
        return cls(sess, path, hashlib.sha256(data).hexdigest(), info, card)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.info["labels"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.info["input"]["shape"])

    def check_images(self, shape: tuple[int, ...], what: str = "the model") -> None:
        if tuple(shape) != self.input_shape:
            want = "x".join(map(str, self.input_shape))
            raise CtrlgenError(f"{what} makes images of shape {'x'.join(map(str, shape))}, the evaluator reads {want}; "
                               "image metrics need Fashion-MNIST-shaped samples")

    def __call__(self, images: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """(logits [N, K], features [N, F]) of float images in [-1, 1]."""
        images = np.asarray(images)
        self.check_images(images.shape[1:], "the input")
        logits, feats = [], []
        for i in range(0, len(images), chunk):
            x = np.ascontiguousarray(images[i : i + chunk], dtype=np.float32)
            lo, fe = self.session.run([LOGITS, FEATURES], {IMAGE: x})
            logits.append(lo)
            feats.append(fe)
        if not logits:
            return np.zeros((0, len(self.labels)), np.float32), np.zeros((0, self.info["features"]), np.float32)
        return np.concatenate(logits), np.concatenate(feats)

    def uint8(self, images: np.ndarray, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
        """The same for uint8 images (real data), converted chunk by chunk."""
        logits, feats = [], []
        for i in range(0, len(images), chunk):
            lo, fe = self(images[i : i + chunk].astype(np.float32) / 127.5 - 1.0, chunk)
            logits.append(lo)
            feats.append(fe)
        return np.concatenate(logits), np.concatenate(feats)
