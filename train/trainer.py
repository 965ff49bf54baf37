"""The training loop: D and G updates built from a loss and the active techniques.

One G step = ``n_critic`` D updates, then one G update.  The D update sums
the adversarial loss and whatever the active techniques return; the G update
is a piece named by the config's ``mode`` (train/updates.py: ``standard``, or
E-GAN's ``egan``).  No technique is special-cased here: techniques see a
``RunContext`` (train/techniques), never the trainer.  A run directory holds
config.json, metrics.jsonl, checkpoints/ and samples/; a checkpoint holds
everything needed to continue exactly (train/run_state.py).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ctrlgen import checkpoint as ckpt_io
from ctrlgen import precision
from ctrlgen.data import describe_images, load_images, mixture
from ctrlgen.errors import CtrlgenError
from ctrlgen.files import FolderLock, remove_stale_temps, write_text
from ctrlgen.grids import grid_inputs, picture
from ctrlgen.images import save_png
from ctrlgen.spec import LABEL
from ctrlgen.train import (
    egan_update,  # noqa: F401  (registers the "egan" G update)
    run_state,
    schedule,
)
from ctrlgen.train.accel import adam, maybe_compile
from ctrlgen.train.batches import ImageBatches, MixtureBatches
from ctrlgen.train.board import Board
from ctrlgen.train.config import RUN_FIELDS, TrainConfig
from ctrlgen.train.distributed import rank_seed, ranks
from ctrlgen.train.ensemble import build_networks
from ctrlgen.train.latent import sample_latent
from ctrlgen.train.losses import d_probability, get_loss
from ctrlgen.train.monitor import Monitor
from ctrlgen.train.nonfinite import NonfiniteGuard
from ctrlgen.train.progress import Progress
from ctrlgen.train.techniques import RunContext, StepContext, Technique, build_techniques
from ctrlgen.train.updates import G_UPDATES

FIXED_SEED_OFFSET = 7919  # the fixed-z sample grids draw from spec.sample(seed + this)


def pick_device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise CtrlgenError("CUDA was asked for but no GPU is visible to torch; use --device cpu (or auto)")
        return torch.device("cuda")
    return torch.device("cpu")


class Trainer:
    def __init__(self, cfg: TrainConfig, run_dir: str | Path, distributed: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = pick_device(cfg.device)
        self.amp_dtype = self._amp_dtype()
        # ---- this process's rank (train/distributed.py); batch_size is the global batch, self.batch this rank's share
        self.dist = ranks(cfg, self.device, distributed)
        self.ensemble = cfg.ensemble  # seeds trained at once (train/ensemble.py): every batch holds one block per seed
        if self.ensemble > 1 and self.dist.world > 1:
            raise CtrlgenError("an ensemble run trains many seeds in one process; run it without --distributed")
        self.batch = self.dist.local_batch(cfg) * self.ensemble
        shard = (self.dist.rank, self.dist.world)
        # ---- data and spec
        if cfg.points:
            mix = mixture(cfg.data)
            self.batches: Any = MixtureBatches(mix, cfg.batch_size * self.ensemble, cfg.seed, self.device, *shard)
            class_names = tuple(f"mode{i}" for i in range(len(mix.means)))
            self.mixture, self.data_info = mix, {"name": cfg.data, "std": mix.std, "modes": len(mix.means)}
        else:
            data = load_images(cfg.data_dir or None, "train", cfg.image_size, cfg.channels, unlabelled=not cfg.conditional)
            self.batches = ImageBatches(data, cfg.batch_size, cfg.seed, self.device, *shard)
            class_names, self.mixture = data.class_names, None
            self.data_info = describe_images(cfg.data, cfg.data_dir, data)  # names the folder when trained on one
        self.spec = cfg.spec(class_names)
        # ---- networks (from the seed; an ensemble's copy s from seed + s) and optimizers
        self.G, self.D = build_networks(self.spec, cfg.net, cfg.seed, self.ensemble, cfg.infogan, self.device)
        self.opt_g = adam(self.G.parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2))
        self.opt_d = adam(self.D.parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2))
        self.rng = torch.Generator(device=self.device).manual_seed(rank_seed(cfg.seed, self.dist.rank))
        self.step = 0  # G updates done
        self.batches_drawn = 0  # real batches consumed (the data position)
        self.last_real: tuple[torch.Tensor, torch.Tensor] | None = None  # the last real batch drawn (E-GAN's fitness)
        self.wall_time = 0.0  # seconds of training, summed over resumes
        self.nonfinite_events = 0
        self.total_steps = self._total_steps()
        # ---- techniques: they see this narrow view of the run, never the trainer
        self.run_context = RunContext(
            G=self.G, D=self.D, opt_d=self.opt_d, spec=self.spec, device=self.device, rng=self.rng, seed=cfg.seed,
            seeds=self.ensemble, sample_latent=lambda n: self.sample_latent(n), next_real=lambda: self.next_real(), autocast=self.autocast,
            data=None if cfg.points else data, total_steps=self.total_steps, batch_size=self.batch,
        )
        self.techniques: list[Technique] = build_techniques(cfg)
        for t in self.techniques:
            t.setup(self.run_context)
        self.loss = self.run_context.loss = self.wrapped_loss(get_loss(cfg.loss))
        self.g_train, self.d_train = self.dist.wrap(self)  # DDP wrappers of G and D for the update passes (or G, D)
        base = Technique
        self.d_penalties = [t for t in self.techniques if type(t).d_penalty is not base.d_penalty]
        self.g_penalties = [t for t in self.techniques if type(t).g_penalty is not base.g_penalty]
        self.augmenters = [t for t in self.techniques if type(t).augment is not base.augment]
        self.needs_real_in_g = any(t.needs_real_in_g_step for t in self.techniques)
        self.g_update = G_UPDATES[cfg.mode](self)  # standard, or E-GAN's population (train/updates.py)
        self._stop_requested = False
        self.resuming, self.lock, self.made_dir = False, None, False
        self.board = Board(self.run_dir, cfg.tensorboard and self.dist.main)  # RUN/tensorboard/ (train/board.py)
        self.monitor = Monitor(cfg)  # cheap metrics, best checkpoint, collapse detector (train/monitor.py)
        self.guard = NonfiniteGuard(cfg.nonfinite_limit, cfg.log_every)  # NaN/inf steps undone (train/nonfinite.py)
        self.compiled = maybe_compile(self)  # torch.compile of G and D in place: cfg.compile, on CUDA by default (train/accel.py)

    # ------------------------------------------------------------------ setup helpers
    def wrapped_loss(self, loss):
        """``loss`` as the active techniques change it (``wrap_loss``: label smoothing, feature matching's replace)."""
        for t in self.techniques:
            loss = t.wrap_loss(loss)
        return loss

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.cfg.amp
        if amp == "auto" and self.device.type != "cuda":
            # CPU: bf16 autocast for image models where the CPU has bf16 instructions (about 2x the fp32 step on
            # AVX-512 BF16, benchmarks/train.py; same quality after an epoch, docs/results/train.md).  Never for
            # the 2D mixtures: bf16's 8 mantissa bits cannot place points on modes 0.01 wide.
            return torch.bfloat16 if not self.cfg.points and precision.cpu_has_bf16() else None
        if amp == "off":
            return None
        if amp == "fp16":
            raise CtrlgenError("amp=fp16 needs loss scaling that ctrlgen does not do; use amp=bf16")
        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return None
        return torch.bfloat16

    def _total_steps(self) -> int:
        if self.cfg.steps:
            return self.cfg.steps
        if self.cfg.points:
            raise CtrlgenError("2D mixtures have no epochs; give the length in steps (--steps 5000, or steps = 5000 in the recipe)")
        return max(1, math.ceil(self.cfg.epochs * self.batches.per_epoch / self.cfg.n_critic))

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------------------ inputs
    def sample_latent(self, n: int) -> dict[str, torch.Tensor]:
        """Latent inputs drawn by the spec's definition with the run's own generator (checkpointed)."""
        return sample_latent(self.spec, n, self.rng, self.device)

    def next_real(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batches.get(self.batches_drawn)
        self.batches_drawn += 1
        self.last_real = (x, y)
        return x, y

    # ------------------------------------------------------------------ one step
    def d_step(self) -> dict[str, torch.Tensor]:
        real, y = self.next_real()
        inputs = self.sample_latent(self.batch)
        with torch.no_grad(), self.autocast():
            fake = self.g_update.generate_fake(inputs)
        for t in self.techniques:
            fake, inputs = t.fake_for_d(fake, inputs)
        fake = fake.float()
        for t in self.augmenters:
            real, fake = t.augment(real, self.run_context), t.augment(fake, self.run_context)
        with self.autocast():
            out_r = self.d_train(real, y if self.spec.conditional else None)
            out_f = self.d_train(fake, inputs.get(LABEL))
        terms = {"d_adv": self.loss.d(out_r.logit.float(), out_f.logit.float())}
        ctx = StepContext(self.run_context, real, y if self.spec.conditional else None, inputs, fake, out_f, out_r)
        for t in self.d_penalties:
            terms.update(t.d_penalty(ctx) or {})
        total = sum(terms.values())
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        self.opt_d.step()
        for t in self.techniques:
            t.after_d_step(self.run_context)
        with torch.no_grad():
            p_real = d_probability(self.loss, out_r.logit.float())
            p_fake = d_probability(self.loss, out_f.logit.float())
            terms["d_acc"] = 0.5 * ((p_real > 0.5).float().mean() + (p_fake < 0.5).float().mean())
            terms["d_real"] = p_real.mean()
            terms["d_fake"] = p_fake.mean()
        return {k: v.detach() for k, v in terms.items()}

    def g_step(self) -> dict[str, torch.Tensor]:
        return self.g_update.step()

    def after_g_step(self) -> None:
        """The techniques' after-G-step hooks (EMA, ...), run once per step by the G update."""
        for t in self.techniques:
            t.after_g_step(self.run_context)

    def lr_factor(self, step: int) -> float:
        return schedule.lr_factor(self.cfg, self.total_steps, step)

    def train_step(self) -> dict[str, torch.Tensor]:
        stats: dict[str, torch.Tensor] = {}
        self.run_context.step = self.step
        schedule.apply_lr_schedule(self)
        for _ in range(self.cfg.n_critic):
            stats.update(self.d_step())
        stats.update(self.g_step())
        self.step += 1
        return self.dist.end_step(self, stats)

    # ------------------------------------------------------------------ sampling for people
    def sampling_generator(self) -> torch.nn.Module:
        """The generator that samples and exports: a technique's (EMA's average) when one offers it, else G."""
        for t in self.techniques:
            g = t.sampler()
            if g is not None:
                return g
        return self.G

    def fixed_inputs(self) -> tuple[dict[str, np.ndarray], int]:
        """The fixed latent inputs of the sample grids (a row per class or categorical value; ctrlgen.grids)
        and the samples per row."""
        n = 2000 if self.spec.output_kind == "points" else 100
        return grid_inputs(self.spec, n, self.cfg.seed + FIXED_SEED_OFFSET)

    @torch.no_grad()
    def save_samples(self) -> Path:
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        if not self.dist.main:
            return path
        g = self.sampling_generator()
        if self.ensemble > 1:
            g = g.member(0)  # the grid shows the first seed's copy
        was = g.training
        g.eval()
        inputs, per_row = self.fixed_inputs()
        out = g(**{k: torch.from_numpy(v).to(self.device) for k, v in inputs.items()}).float().cpu().numpy()
        g.train(was)
        pic = picture(self.spec, out, nrow=per_row)
        save_png(pic, path, scale=1 if self.spec.output_kind == "points" else 2)
        self.board.image(self.step, pic)
        return path

    # ------------------------------------------------------------------ checkpoints (train/run_state.py)
    def state_tensors(self) -> dict[str, torch.Tensor]:
        return run_state.state_tensors(self)

    def meta(self) -> dict[str, Any]:
        return run_state.meta(self)

    def device_name(self) -> str:
        return run_state.device_name(self.device)

    def save_checkpoint(self) -> Path:
        self.flush_update_records()  # a stop between two log lines must not lose its steps' records
        path = ckpt_io.checkpoint_path(self.run_dir, self.step)
        rngs = self.dist.gather_rng(self.rng)  # collective: every rank saves at the same steps
        if not self.dist.main:
            return path
        extra = {f"rng.train.rank{r}": s for r, s in enumerate(rngs) if r}  # rank 0's is rng.train
        ckpt_io.save(path, {**self.state_tensors(), **extra}, self.meta())
        for old in ckpt_io.list_checkpoints(self.run_dir)[: -self.cfg.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    def load_checkpoint(self, ck: ckpt_io.Checkpoint) -> None:
        run_state.load_state(self, ck)

    # ------------------------------------------------------------------ the loop
    def claim(self, new_run: bool = False) -> None:
        """Lock the run directory until run() ends (a second train / --resume on it gets one line); with
        ``new_run`` (not a resume), refuse a folder that already holds a run or files a run writes, once the lock is held."""
        if self.lock is not None or not self.dist.main:
            return
        self.made_dir = not self.run_dir.exists()
        self.lock = FolderLock(self.run_dir, "ctrlgen train")
        if new_run:
            try:
                run_state.refuse_taken_folder(self.run_dir)
            except CtrlgenError:
                self.lock.release()
                self.lock = None
                raise

    def write_config(self) -> None:
        if not self.dist.main:
            return
        self.claim()
        write_text(self.run_dir / "config.json", self.cfg.to_json() + "\n")

    def log(self, record: dict[str, Any]) -> None:
        if "event" not in record:  # a training record: the G update's per-step lines (E-GAN's) go first
            self.flush_update_records()
        self._append(record)

    def flush_update_records(self) -> None:
        for r in self.g_update.take_records(self.step):
            self._append(r)

    def _append(self, record: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
        self.board.record(record)

    def truncate_metrics(self) -> None:
        """On resume, drop lines logged after the checkpoint (they will be logged again)."""
        if self.dist.main:
            run_state.truncate_metrics(self.run_dir / "metrics.jsonl", self.step)

    def request_stop(self, *_: Any) -> None:
        if self._stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self._stop_requested = True

    def close(self) -> None:
        """Let go of the run folder without training (``Trainer.resume`` holds it from the start, so that nothing else
        writes it between loading and training; ``run`` lets go when it ends).  Also ``with Trainer.resume(d) as t:``."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, until: int | None = None) -> str:
        """Train up to step ``until`` (default: the run's total).  Returns 'done' or 'interrupted'."""
        fresh = not self.resuming and not (self.run_dir / "config.json").exists()
        self.claim(new_run=fresh)  # a new run never writes into (or, failing, removes) files already there
        made, failed = self.made_dir, True
        try:
            status = self._run(until)
            failed = False
            return status
        finally:
            self.close()
            if failed and fresh and self.dist.main and not ckpt_io.list_checkpoints(self.run_dir):
                run_state.discard_run(self.run_dir, made)  # a new run that failed before its first checkpoint: no half-made folder

    def _run(self, until: int | None) -> str:
        until = self.total_steps if until is None else min(until, self.total_steps)
        self.write_config()
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self.request_stop) if main_thread else None
        previous_term = signal.signal(signal.SIGTERM, self.request_stop) if main_thread else None  # schedulers, timeout
        acc: dict[str, list[torch.Tensor]] = defaultdict(list)
        window_start, window_steps = time.perf_counter(), 0
        cfg = self.cfg
        status = "done"
        try:
            with Progress(cfg.progress and self.dist.main, self.step, until) as bar:
                while self.step < until:
                    t0 = time.perf_counter()
                    stats = self.guard.train_step(self)
                    self.wall_time += time.perf_counter() - t0
                    if stats is None:  # a NaN/inf step, undone: back at the last good state, nothing to log
                        acc.clear()
                        window_start, window_steps = time.perf_counter(), 0
                        continue
                    for k, v in stats.items():
                        acc[k].append(v)
                    window_steps += 1
                    if self.step % cfg.log_every == 0 or self.step == until:
                        dt = (time.perf_counter() - window_start) / window_steps
                        record = {k: round(float(torch.stack(v).float().mean()), 5) for k, v in acc.items()}
                        record.update(
                            step=self.step,
                            epoch=round(self.batches.epoch(self.batches_drawn), 4),
                            step_time=round(dt, 5),
                            samples_per_s=round(cfg.batch_size / dt, 1),
                            wall_time=round(self.wall_time, 2),
                        )
                        self.log(record)
                        bar.update(self.step, record)
                        acc.clear()
                        window_start, window_steps = time.perf_counter(), 0
                    else:
                        bar.update(self.step, None)
                    if cfg.sample_every and self.step % cfg.sample_every == 0:
                        self.save_samples()
                    if self.step % cfg.checkpoint_every == 0 and self.step < until:
                        self.save_checkpoint()
                    if self.dist.main and self.ensemble == 1:  # the monitor judges one model, not a block of seeds
                        self.monitor.after_step(self)
                    if self.dist.any(self._stop_requested, self.device):  # any rank's Ctrl-C, rank 0's monitor
                        status = "interrupted"
                        break
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
                signal.signal(signal.SIGTERM, previous_term)
        self.save_checkpoint()
        if cfg.sample_every and self.step % cfg.sample_every:
            self.save_samples()
        self.board.close()
        return status

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: dict[str, Any] | None = None, distributed: bool = False) -> Trainer:
        """Rebuild a run from its directory and its newest checkpoint."""
        run_dir = Path(run_dir)
        d = run_state.read_run_config(run_dir, overrides, RUN_FIELDS)
        cfg = TrainConfig.from_dict(d, where=str(run_dir / "config.json"))
        trainer = cls(cfg, run_dir, distributed)
        trainer.resuming = True
        found = ckpt_io.newest(run_dir)
        if found is None and ckpt_io.list_checkpoints(run_dir):
            raise CtrlgenError(f"{run_dir} has no loadable checkpoint to resume from (all are damaged); start a new run")
        trainer.claim()
        try:
            if found is not None:  # none yet (stopped before the first one): start again from step 0, the same seed
                trainer.load_checkpoint(ckpt_io.load(found))
            if trainer.total_steps < trainer.step:  # before anything is written: config.json keeps its length
                raise CtrlgenError(f"{run_dir} is at step {trainer.step:,}, past the {trainer.total_steps:,} steps asked for; "
                                   f"give --steps (or --epochs) beyond step {trainer.step:,} to continue it, or export it as it is")
            trainer.truncate_metrics()
        except BaseException:
            trainer.close()
            raise
        if trainer.dist.main:  # other ranks could delete rank 0's temporary files
            remove_stale_temps(run_dir)  # what a kill mid-write left behind (the old files are intact)
        return trainer
