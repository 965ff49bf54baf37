"""InfoGAN's Q head as a function of the sample: what "continuous-code consistency" reads.

Q shares D's trunk, so predicting the codes of a generated sample means
running D's trunk and the Q head on it.  Two places hold Q:

* a checkpoint or run directory: ``load_q(source)`` rebuilds D from the
  header and weights (eval mode, BatchNorm running statistics);
* an ONNX model exported with ``ctrlgen export --q-head``: the graph has a
  second output ``q_code_cont`` [batch, n_continuous] computed from
  ``sample`` by the same trunk and head.  ``sample`` stays the first output,
  so every ONNX Runtime caller that asks for ``sample`` is unaffected.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import Q_OUTPUT


class QHead(nn.Module):
    """sample [B, C, H, W] -> Q's prediction of the continuous codes [B, n_continuous]."""

    def __init__(self, d: nn.Module) -> None:
        super().__init__()
        self.d = d
        self.n_cat = sum(c.n for c in d.spec.categorical)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d.q(self.d.trunk(x))[:, self.n_cat :]


class WithQ(nn.Module):
    """The exported interface with Q's prediction as a second output."""

    def __init__(self, interface: nn.Module, q: QHead) -> None:
        super().__init__()
        self.interface, self.q = interface, q

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sample = self.interface(*args)
        return sample, self.q(sample)


def q_from_checkpoint(ck) -> QHead | None:
    """The Q head of a loaded checkpoint, or None when the model has no continuous codes."""
    from ctrlgen.nets import Discriminator, NetConfig
    from ctrlgen.spec import LatentSpec

    spec = LatentSpec.from_dict(ck.meta["spec"])
    if not spec.continuous:
        return None
    d = Discriminator(spec, NetConfig.from_dict(ck.meta["net"]), q_head=True)
    try:
        d.load_state_dict(ck.group("D"))
    except RuntimeError as e:
        raise CtrlgenError(f"{ck.path}: D's weights do not match its header ({str(e).splitlines()[0][:100]})") from None
    return QHead(d).eval()


def load_q(source: str | os.PathLike) -> QHead | None:
    from ctrlgen.checkpoint import load

    return q_from_checkpoint(load(source))


@torch.no_grad()
def predict(q: QHead, samples: np.ndarray, chunk: int = 1000) -> np.ndarray:
    outs = [q(torch.from_numpy(np.ascontiguousarray(samples[i : i + chunk], np.float32))).numpy() for i in range(0, len(samples), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)


def q_parity(model_bytes: bytes, q: QHead, interface: nn.Module, spec, seed: int = 4321) -> float:
    """Max |ORT − torch| of the ``q_code_cont`` output at batch 1 and 37."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    worst = 0.0
    for i, b in enumerate((1, 37)):
        inputs = spec.sample(b, seed=seed + i)
        (got,) = sess.run([Q_OUTPUT], inputs)
        with torch.no_grad():
            want = q(interface(*[torch.from_numpy(inputs[k]) for k in spec.input_names])).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst
