"""Checkpoints: one safetensors file holding weights, optimizer state and RNG state,
with the config, spec and network args as JSON in its header.

Loading never unpickles anything: safetensors stores raw tensors and strings.
Writes are atomic, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import atomic_writer
from ctrlgen.limits import check_net, check_parameters, check_regular_file, json_problem

MAX_CHECKPOINT_BYTES = 64 * 1024**3

FORMAT = "1"
_STEP_RE = re.compile(r"step-(\d+)\.safetensors$")


@dataclass
class Checkpoint:
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]  # JSON-decoded header fields
    path: Path

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """The tensors under ``prefix.`` with the prefix stripped (e.g. a module's state dict)."""
        p = prefix + "."
        return {k[len(p) :]: v for k, v in self.tensors.items() if k.startswith(p)}

    @property
    def step(self) -> int:
        return int(self.meta.get("step", 0))


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    header = {"ctrlgen.format": FORMAT}
    header.update({k: json.dumps(v) for k, v in meta.items()})
    # safetensors wants contiguous tensors that do not share memory.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    from safetensors import SafetensorError

    with atomic_writer(path) as tmp:
        try:
            save_file(flat, str(tmp), metadata=header)
        except SafetensorError as e:  # its I/O errors are not OSErrors: a full disk would be a traceback
            if "os error 28" in str(e):
                raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
            raise CtrlgenError(f"cannot write the checkpoint {path} ({e}); check the folder and the disk") from None


def load(path: str | Path) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir() and not list_checkpoints(path) and (run := run_of_checkpoints(path)) is not None:
        path = run  # RUN/checkpoints given for RUN: its newest checkpoint, as for the run
    if path.is_dir():
        found = newest(path)
        if found is None:
            what = "no loadable checkpoint (checkpoints/step-*.safetensors are all damaged)" if list_checkpoints(path) else "no checkpoint (checkpoints/step-*.safetensors)"
            raise CtrlgenError(f"{path} holds {what}; give a run directory or a checkpoint file")
        path = found
    if not path.exists():
        raise CtrlgenError(f"checkpoint {path} does not exist; give a run directory or a .safetensors checkpoint")
    check_regular_file(path, "a checkpoint", MAX_CHECKPOINT_BYTES)  # /dev/zero, a FIFO: refused by type
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CtrlgenError(f"{path} is not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:80]}); it may be truncated, use an earlier one") from None
    if header.get("ctrlgen.format") != FORMAT:
        raise CtrlgenError(f"{path} is not a ctrlgen checkpoint (format {header.get('ctrlgen.format')!r}); give one written by ctrlgen train")
    try:
        meta = {}
        for k, v in header.items():
            if k != "ctrlgen.format":
                meta[k], problem = json_problem(v)
                if problem:
                    raise CtrlgenError(f"{k[:40]!r} is {problem}")
        check_header(meta)
    except CtrlgenError as e:
        raise CtrlgenError(f"{path} has a damaged header ({e}); use an earlier checkpoint") from None
    return Checkpoint(tensors, meta, path)


_COUNTERS = ("step", "total_steps", "batches_drawn", "nonfinite_events", "world_size")
_TABLES = ("config", "spec", "net", "data", "params", "versions")


def check_header(meta: dict[str, Any]) -> None:
    """The header fields ctrlgen reads back, of the types it wrote: counters are integers >= 0, wall_time a
    finite number, tables are tables, param groups lists of tables (a tampered header is one line)."""
    import math

    from ctrlgen.limits import MAX_STEPS, is_int

    for key in _COUNTERS:
        if key in meta and not (is_int(meta[key]) and 0 <= meta[key] <= MAX_STEPS * 1000):
            raise CtrlgenError(f"{key} must be an integer >= 0, got {str(meta[key])[:40]!r}")
    wt = meta.get("wall_time", 0.0)
    if isinstance(wt, bool) or not isinstance(wt, (int, float)) or not math.isfinite(wt) or wt < 0:
        raise CtrlgenError(f"wall_time must be a finite number of seconds, got {str(wt)[:40]!r}")
    for key in _TABLES:
        if key in meta and not isinstance(meta[key], dict):
            raise CtrlgenError(f"{key} must be a table, got {type(meta[key]).__name__}")
    for key in ("opt_g.param_groups", "opt_d.param_groups"):
        groups = meta.get(key, [])
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise CtrlgenError(f"{key} must be a list of tables")
        for g in groups:
            numbers = [g[k] for k in ("lr", "eps", "weight_decay") if k in g] + list(g.get("betas", []) if isinstance(g.get("betas"), list) else [None])
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in numbers):
                raise CtrlgenError(f"{key} holds a learning rate, beta or eps that is not a finite number >= 0")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Periodic checkpoints of a run, oldest first."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_RE.search(p.name))]
    return [p for _, p in sorted(found)]


def run_of_checkpoints(folder: str | Path) -> Path | None:
    """The run directory when ``folder`` is a run's own ``checkpoints`` folder (given where the run is asked for)."""
    folder = Path(folder)
    if folder.name == "checkpoints" and (folder.parent / "config.json").is_file() and list_checkpoints(folder.parent):
        return folder.parent
    return None


def newest(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that loads (a damaged newest one is skipped, never deleted)."""
    for p in reversed(list_checkpoints(run_dir)):
        try:
            from safetensors import safe_open

            with safe_open(str(p), framework="pt") as f:
                if (f.metadata() or {}).get("ctrlgen.format") == FORMAT:
                    return p
        except Exception:  # noqa: BLE001 - any unreadable file is skipped
            continue
    return None


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}.safetensors"


def load_generator(source: str | Path, prefer_ema: bool = True):
    """(generator in eval mode, spec, checkpoint) from a run directory or checkpoint file."""
    from ctrlgen.nets import Generator, NetConfig
    from ctrlgen.spec import LatentSpec

    ckpt = load(source)
    try:
        spec = LatentSpec.from_dict(ckpt.meta["spec"])
        net = NetConfig.from_dict(ckpt.meta["net"])
    except KeyError as e:
        raise CtrlgenError(f"{ckpt.path} lacks {e.args[0]!r} in its header; it was not written by ctrlgen train") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise CtrlgenError(f"{ckpt.path} has a damaged header ({type(e).__name__}); use an earlier checkpoint") from None
    seeds = (ckpt.meta.get("config") or {}).get("ensemble", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise CtrlgenError(f"{ckpt.path} has a damaged header (ensemble {str(seeds)[:20]!r}); use an earlier checkpoint")
    if seeds > 1:
        raise CtrlgenError(f"{ckpt.path} holds an ensemble of {seeds} seeds (a benchmark run), not one generator; "
                           "train the seed you want with ensemble=1 to sample or export it")
    check_net(net, f"{ckpt.path}: net")
    with torch.device("meta"):  # its size before any memory is taken
        check_parameters(sum(p.numel() for p in Generator(spec, net).parameters()), f"{ckpt.path}: the generator's header says it will",
                         fix="use a checkpoint ctrlgen wrote")
    g = Generator(spec, net)
    ema = ckpt.group("ema")
    state = ema if (prefer_ema and ema) else ckpt.group("G")
    try:
        g.load_state_dict(state)
    except RuntimeError as e:
        raise CtrlgenError(f"{ckpt.path}: weights do not match the network in its header ({str(e).splitlines()[0][:100]})") from None
    g.eval()
    ckpt.meta["weights"] = "ema" if (prefer_ema and ema) else "G"
    return g, spec, ckpt
