"""Real batches as index gathers from one in-memory tensor (no per-item DataLoader).

Batch number i is a pure function of (seed, i): image data walks a fresh
permutation per epoch, seeded by (seed, epoch); the 2D mixtures draw batch i
from a stream seeded by (seed, i).  Resuming therefore needs only the count of
batches drawn, and every rank of a distributed run can compute its own shard.

On CUDA nothing here waits for the GPU: the image set lives on the device as one
uint8 tensor and a batch is an index gather from it (the permutation is copied up
once per epoch), and the mixtures' few host-drawn points go up from pinned memory
without blocking, so the host keeps queueing kernels ahead of the GPU (checked by
tests/test_gpu.py under ``torch.cuda.set_sync_debug_mode("error")``).
"""

from __future__ import annotations

import numpy as np
import torch

from ctrlgen.data import ImageData, Mixture
from ctrlgen.errors import CtrlgenError


def to_unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels as floats in [-1, 1], the range G's tanh makes and D reads."""
    return pixels.float().div_(127.5).sub_(1.0)


def shift_flip(x: torch.Tensor, shift: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Images ``x`` [n, C, H, W] in [-1, 1] (background -1), each mirrored left-right with probability 1/2
    (with ``flip``), then moved by up to ``shift`` pixels in each direction, the uncovered border filled with -1.
    Draws come from ``gen`` in that order (the flips, then the shifts), and only for what is switched on: a
    run's checkpointed generator resumes exactly.  Used by the evaluator's training and by semi-supervised
    InfoGAN's labelled images."""
    b, _, h, w = x.shape
    if flip:
        mirror = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    if shift <= 0:
        return x
    pad = torch.nn.functional.pad(x, (shift, shift, shift, shift), value=-1.0)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b), generator=gen, device=gen.device).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return pad[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Images ``x`` [n, C, H, W] in [-1, 1], each with one ``size`` x ``size`` square at a random centre set to the
    background (-1), clipped at the borders (Cutout, DeVries & Taylor 2017; FixMatch's strong augmentation ends with
    it).  The centres come from ``gen`` (rows, then columns), only when ``size`` > 0."""
    if size <= 0:
        return x
    b, _, h, w = x.shape
    cy = torch.randint(0, h, (b,), generator=gen, device=gen.device).to(x.device)[:, None] - size // 2
    cx = torch.randint(0, w, (b,), generator=gen, device=gen.device).to(x.device)[:, None] - size // 2
    r, c = torch.arange(h, device=x.device)[None, :], torch.arange(w, device=x.device)[None, :]
    inside = ((r >= cy) & (r < cy + size))[:, :, None] & ((c >= cx) & (c < cx + size))[:, None, :]
    return x.masked_fill(inside[:, None], -1.0)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``; to CUDA from pinned memory without blocking the host."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _shard(batch_size: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s rows of a global batch: consecutive blocks, so the ranks' shards concatenate to it."""
    per = batch_size // world
    return slice(rank * per, (rank + 1) * per)


class ImageBatches:
    """Fashion-MNIST or an image folder, held on the training device as uint8."""

    def __init__(self, data: ImageData, batch_size: int, seed: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        n = len(data.labels)
        if n < batch_size:
            raise CtrlgenError(f"the data has {n} image{'' if n == 1 else 's'}, fewer than batch_size={batch_size}; lower batch_size or add data")
        self.x = torch.from_numpy(np.ascontiguousarray(data.images)).to(device)
        self.y = torch.from_numpy(data.labels).to(device)
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self.shard = _shard(batch_size, rank, world)
        self._perm_epoch, self._perm = -1, None

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = to_device(torch.randperm(self.n, generator=gen), self.x.device)
            self._perm_epoch = epoch
        return self._perm

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch ``index`` (this rank's rows of it): images as float in [-1, 1] and their labels."""
        epoch, i = divmod(index, self.per_epoch)
        idx = self.permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size][self.shard]
        return to_unit(self.x[idx]), self.y[idx]

    def epoch(self, index: int) -> float:
        return index / self.per_epoch


class MixtureBatches:
    """Samples of a 2D Gaussian mixture; the mode index is the label."""

    def __init__(self, mixture: Mixture, batch_size: int, seed: int, device: torch.device, rank: int = 0, world: int = 1) -> None:
        self.mixture, self.batch_size, self.seed, self.device = mixture, batch_size, seed, device
        self.per_epoch = 0
        self.shard = _shard(batch_size, rank, world)

    def get(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        x, k = self.mixture.sample(self.batch_size, rng)  # the whole global batch (cheap), then this rank's rows
        x, k = x[self.shard], k[self.shard]
        return to_device(torch.from_numpy(x), self.device), to_device(torch.from_numpy(k), self.device)

    def epoch(self, index: int) -> float:
        return 0.0
