"""A run's state as checkpoint tensors and header, and back: what makes resume exact.

Groups of tensors in a checkpoint (``ctrlgen.checkpoint``):

* ``G.``, ``D.``: the networks; ``opt_g.``, ``opt_d.``: Adam's moments;
* ``rng.train`` (and ``rng.train.rankN``), ``rng.torch``: the random streams;
* each technique's state under its group (``tech.NAME.``; EMA's average under ``ema.``);
* the G update's state under ``population.`` (E-GAN's parents 1..μ-1).

The header (``meta``) holds the config, the spec, the counters and all that
the model card needs (data, device, precision, versions, parameter counts),
so export reads the card from the checkpoint alone.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

import ctrlgen
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_text
from ctrlgen.nets import count_parameters
from ctrlgen.train.distributed import rank_seed
from ctrlgen.train.techniques import active_techniques

# The trainer (train/trainer.py) imports this module, so the type is named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any

POPULATION = "population"
OLD_POPULATION = "tech.egan_population"  # where checkpoints before the G-update pieces kept E-GAN's parents


def state_tensors(tr: Trainer) -> dict[str, torch.Tensor]:
    tr.sampling_generator()  # EMA: BatchNorm statistics that match the averaged weights
    t: dict[str, torch.Tensor] = {}
    t.update({f"G.{k}": v for k, v in tr.G.state_dict().items()})
    t.update({f"D.{k}": v for k, v in tr.D.state_dict().items()})
    for name, opt in (("opt_g", tr.opt_g), ("opt_d", tr.opt_d)):
        for pid, st in opt.state_dict()["state"].items():
            for key, val in st.items():
                t[f"{name}.{pid}.{key}"] = val if torch.is_tensor(val) else torch.tensor(val)
    t["rng.train"] = tr.rng.get_state()
    t["rng.torch"] = torch.get_rng_state()
    for tech in tr.techniques:
        t.update({f"{tech.group()}.{k}": v for k, v in tech.state_dict().items()})
    t.update({f"{POPULATION}.{k}": v for k, v in tr.g_update.state_dict().items()})
    return t


def meta(tr: Trainer) -> dict[str, Any]:
    return {
        "config": tr.cfg.to_dict(),
        "spec": tr.spec.to_dict(),
        "net": tr.cfg.net.to_dict(),
        "techniques": active_techniques(tr.cfg),  # the card's list (export reads no training code)
        "technique_meta": {t.name: m for t in tr.techniques if (m := t.meta())},  # e.g. semi-supervision's labelled set
        "step": tr.step,
        "total_steps": tr.total_steps,
        "batches_drawn": tr.batches_drawn,
        "wall_time": round(tr.wall_time, 3),
        "nonfinite_events": tr.nonfinite_events,
        "world_size": tr.dist.world,
        "opt_g.param_groups": tr.opt_g.state_dict()["param_groups"],
        "opt_d.param_groups": tr.opt_d.state_dict()["param_groups"],
        "data": tr.data_info,
        "device": device_name(tr.device),
        "precision": "bf16 autocast" if tr.amp_dtype is not None else "fp32",
        "versions": {"ctrlgen": ctrlgen.__version__, "torch": torch.__version__, "python": platform.python_version()},
        "params": {"G": count_parameters(tr.G), "D": count_parameters(tr.D)},
        **tr.g_update.meta(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def load_state(tr: Trainer, ck: ckpt_io.Checkpoint) -> None:
    """Put a checkpoint's state into the trainer (networks, optimizers, streams, techniques, counters)."""
    try:
        tr.G.load_state_dict(ck.group("G"))
        tr.D.load_state_dict(ck.group("D"))
        for name, opt in (("opt_g", tr.opt_g), ("opt_d", tr.opt_d)):
            state: dict[int, dict[str, torch.Tensor]] = defaultdict(dict)
            for key, val in ck.group(name).items():
                pid, k = key.split(".", 1)
                state[int(pid)][k] = val
            opt.load_state_dict({"state": dict(state), "param_groups": ck.meta[f"{name}.param_groups"]})
        tr.rng.set_state(ck.tensors["rng.train"])
        if tr.dist.rank:  # its own stream when the checkpoint has one (same number of ranks), else a fresh one
            own = ck.tensors.get(f"rng.train.rank{tr.dist.rank}")
            if own is not None:
                tr.rng.set_state(own)
            else:
                tr.rng.manual_seed(rank_seed(tr.cfg.seed, tr.dist.rank, int(ck.meta["step"])))
        torch.set_rng_state(ck.tensors["rng.torch"])
        for tech in tr.techniques:
            tech.load_state_dict(ck.group(tech.group()))
        population = ck.group(POPULATION) or ck.group(OLD_POPULATION)
        tr.g_update.load_state_dict(population)
    except (KeyError, RuntimeError, ValueError) as e:
        raise CtrlgenError(f"{ck.path} does not match this run's networks ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None
    tr.step = int(ck.meta["step"])
    tr.batches_drawn = int(ck.meta["batches_drawn"])
    tr.wall_time = float(ck.meta.get("wall_time", 0.0))
    tr.nonfinite_events = int(ck.meta.get("nonfinite_events", 0))


def read_run_config(run_dir: Path, overrides: dict[str, Any] | None, run_fields: set[str]) -> dict[str, Any]:
    """A run directory's config.json with the allowed --resume overrides applied."""
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        from ctrlgen.checkpoint import run_of_checkpoints

        if (run := run_of_checkpoints(run_dir)) is not None:
            raise CtrlgenError(f"{run_dir} is the checkpoints folder of a run; give the run directory itself: {run}")
        raise CtrlgenError(f"{run_dir} is not a run directory (no config.json); give the folder ctrlgen train wrote")
    from ctrlgen.limits import MAX_SMALL_FILE, json_problem, read_limited

    fix = "restore it from a copy (every checkpoint's header holds the config too) or start a new run"
    d, problem = json_problem(read_limited(cfg_path, "a config.json", MAX_SMALL_FILE))
    if problem:
        raise CtrlgenError(f"{cfg_path} is damaged ({problem}); {fix}")
    if not isinstance(d, dict):
        raise CtrlgenError(f"{cfg_path} is damaged (not a table of settings); {fix}")
    changes = dict(overrides or {})
    bad = sorted(set(changes) - run_fields)
    if bad:
        raise CtrlgenError(f"cannot change {bad} on --resume (they define the run); only {sorted(run_fields)} may change")
    d.update(changes)
    return d


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the lines of metrics.jsonl logged after ``step`` (a resume logs them again), and lines cut by a
    crash or tampered with."""
    if not path.exists():
        return
    keep = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            at = json.loads(line).get("step", 0)
        except (ValueError, AttributeError, RecursionError):
            continue  # a line cut by a crash, or tampered with: not kept
        if isinstance(at, int) and not isinstance(at, bool) and at <= step:
            keep.append(line)
    write_text(path, "".join(k + "\n" for k in keep))


RUN_FILES = ("config.json", "metrics.jsonl", "checkpoints", "samples")  # what a run writes (discard_run removes them)


def refuse_taken_folder(run_dir: Path) -> None:
    """A new run writes, appends to and (failing before its first checkpoint) removes RUN_FILES: refuse a folder
    where any of them is already there, so no file of an earlier run or of the user's is mixed in or lost."""
    if (run_dir / "config.json").exists():
        raise CtrlgenError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
    taken = [name for name in RUN_FILES if (run_dir / name).exists() or (run_dir / name).is_symlink()]
    if taken:
        raise CtrlgenError(f"{run_dir} already has {', '.join(taken)}, which a new run would write into; choose an empty or new --out")


def discard_run(run_dir: Path, made: bool) -> None:
    """Remove what a new run wrote before failing (config, metrics, samples), and the folder if it made it."""
    for name in ("config.json", "metrics.jsonl"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "samples", ignore_errors=True)
    for folder in (run_dir / "checkpoints", *([run_dir] if made else [])):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: never a file someone else put there
