"""Optional TensorBoard logging: ``tensorboard = true`` (``--set tensorboard=true``) writes ``RUN/tensorboard/``.

What goes there is what ``metrics.jsonl`` and ``samples/`` already hold, as TensorBoard
reads it (``tensorboard --logdir RUN/tensorboard``):

* training records (losses, D accuracy, step time, ...) as scalars ``train/<key>``;
* the monitor's checks (``ctrlgen.train.monitor``) as ``monitor/<key>``, and the real data's
  level of the same metrics (its ``monitor_reference`` record) as ``real/<key>``;
* E-GAN's per-step fitness terms as ``egan/<key>``;
* the fixed-z sample grid as the image ``samples``, at each ``sample_every``.

The writer is ``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard``
package (the ``tensorboard`` extra); without it the run fails at config time, before
training starts, with the line naming the fix.  Only rank 0 writes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ctrlgen.errors import CtrlgenError

FOLDER = "tensorboard"
INSTALL = "pip install 'ctrlgen[tensorboard]'"
GROUPS = {None: "train", "monitor": "monitor", "monitor_reference": "real", "egan": "egan"}
NOT_SCALARS = {"step", "event", "healthy", "epoch"}


def check_tensorboard(enabled: bool) -> None:
    """Fail before training when TensorBoard logging is asked for and its package is missing."""
    if not enabled:
        return
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise CtrlgenError(f"tensorboard = true needs the tensorboard package; install it with: {INSTALL}") from None


class Board:
    """Writes run records and sample grids to ``run_dir/tensorboard`` when enabled; does nothing otherwise."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.folder = Path(run_dir) / FOLDER
        self.enabled = enabled
        self._writer: Any = None  # opened at the first write, so a run that fails early leaves no folder

    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder))
        return self._writer

    def record(self, record: dict[str, Any]) -> None:
        group = GROUPS.get(record.get("event"), "") if self.enabled else ""
        step = record.get("step")
        if not group or not isinstance(step, int):
            return
        for key, value in record.items():
            if key not in NOT_SCALARS and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                self.writer().add_scalar(f"{group}/{key}", value, step)

    def image(self, step: int, picture: np.ndarray) -> None:
        """The fixed-z sample grid, an (H, W, C) uint8 picture."""
        if self.enabled:
            self.writer().add_image("samples", picture, step, dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
