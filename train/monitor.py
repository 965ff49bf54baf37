"""Training-time monitoring: cheap metrics every N steps, a best checkpoint, and the collapse detector.

The trainer calls ``monitor.after_step(trainer)`` once per step; every
``monitor_every`` steps it

1. draws ``monitor_samples`` samples from the sampling generator (EMA when
   the run has it) with fixed inputs (conditional models: every class equally
   often), without touching the training RNG, weights or BatchNorm state of
   G and D, so monitoring never changes the trajectory;
2. computes the cheap metrics of the registry: the 2D protocol for
   mixtures; for Fashion-MNIST (through the shipped evaluator ONNX) classes
   covered, KL, FD against the test set, conditional accuracy and intra-class
   diversity ratio, InfoGAN purity and Q-head consistency; ``recall``
   (improved recall, k = 3, ``ctrlgen.metrics.manifold``, the function ``ctrlgen
   eval`` uses) against a fixed draw of ``RECALL_REAL`` test images; plus
   ``d_acc``, the mean D accuracy logged since the previous check;
3. logs them to ``metrics.jsonl`` as ``{"event": "monitor", ...}``; the first
   check of a process also logs ``{"event": "monitor_reference", ...}``: what
   real images score on the same metrics at the same sample sizes (training
   images in place of the generated ones), the level ``ctrlgen plot`` draws
   as a reference line;
4. asks the collapse detector (``ctrlgen.train.collapse``) about the history:
   its collapse rules, and its decline warnings (a sustained fall of intra-class
   diversity or recall: a ``{"event": "decline"}`` line and a line on stderr,
   ``"declining": true`` on the check, never a rollback or a stop).

Healthy check: the state is saved as ``checkpoints/best.safetensors`` when
``best_metric`` improved and the check is not declining (``auto``: ``fd`` for images, ``reverse_kl`` for
mixtures), and, under ``on_collapse=rollback``, as
``checkpoints/healthy.safetensors``.  Collapse: a ``{"event": "collapse"}``
line, then by ``on_collapse``

* ``warn``: a line on stderr; training goes on;
* ``stop``: training stops after this step (a checkpoint is saved as on Ctrl-C);
* ``rollback``: the last healthy state is restored (weights, EMA, optimizer
  moments, step, data position), the sampling seed becomes
  ``seed + ROLLBACK_SEED_STRIDE · k`` for the k-th rollback, and both learning
  rates are multiplied by ``ROLLBACK_LR_SCALE``.  Periodic checkpoints from the
  collapsed stretch move to ``checkpoints/collapsed/`` (kept, but never
  resumed from).  After ``MAX_ROLLBACKS`` rollbacks, or with no healthy
  state yet, it stops / warns instead.

The history lives in ``metrics.jsonl`` itself (rollback lines drop the
checks after the restored step), so resuming a run resumes its detector.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np
import torch

from ctrlgen.errors import CtrlgenError
from ctrlgen.train.board import check_tensorboard
from ctrlgen.train.collapse import declines, diagnose

# The trainer and its config (train/trainer.py, train/config.py) import this module, so the types are named here,
# not imported: an import back, even a type-only one, would close an import cycle.
Trainer = Any
TrainConfig = Any

ACTIONS = ("warn", "rollback", "stop")
ROLLBACK_LR_SCALE = 0.5
ROLLBACK_SEED_STRIDE = 1_000_003
MAX_ROLLBACKS = 3
MONITOR_SEED_OFFSET = 15_485_863
CHUNK = 1000
HEALTHY, BEST, COLLAPSED = "healthy.safetensors", "best.safetensors", "collapsed"
# Recall against a fixed draw of real test images, not all 10,000: its cost per check is
# monitor_samples² (the generated k-NN radii) + monitor_samples · RECALL_REAL distances; with the
# defaults (2,000 and 2,000) 0.35 s of a 2.95 s check on one thread of a loaded machine
# (tests/data/monitor/cost.py prints it; the evaluator pass is most of a check).
RECALL_REAL = 2000
RECALL_SEED = 20_261_204
REFERENCE_KEYS = ("intra_diversity", "recall")


def _auto_best(cfg: TrainConfig) -> str:
    return "reverse_kl" if cfg.points else "fd"


def check_monitoring(cfg: TrainConfig) -> None:
    from ctrlgen.metrics import METRICS

    if cfg.on_collapse not in ACTIONS:
        raise CtrlgenError(f"on_collapse {cfg.on_collapse!r} is unknown; use one of {', '.join(ACTIONS)}")
    if cfg.monitor_samples < 10:
        raise CtrlgenError(f"monitor_samples must be >= 10, got {cfg.monitor_samples}")
    cheap = sorted(m.name for m in METRICS.values() if m.cheap)
    if cfg.best_metric not in ("auto", "none", *cheap):
        raise CtrlgenError(f"best_metric {cfg.best_metric!r} is unknown; use auto, none or one of: {', '.join(cheap)}")
    check_tensorboard(cfg.tensorboard)  # the monitor's numbers' other destination: fail before training, not at the first write


class Monitor:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.best_metric = _auto_best(cfg) if cfg.best_metric == "auto" else cfg.best_metric
        from ctrlgen.train.losses import get_loss

        self.probabilistic = get_loss(cfg.loss).probabilistic  # "D accuracy" means nothing for a critic
        self.stop_reason: str | None = None
        self._reference: Any = None  # (evaluator, test set, real levels) once loaded; False when unavailable
        self._reference_logged = False
        self._recall_real: Any = None  # the fixed real subset recall is measured against (recall_subset)
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ the hook
    def after_step(self, trainer: Trainer) -> None:
        every = self.cfg.monitor_every
        if every and trainer.step % every == 0:
            self.check(trainer)

    def check(self, trainer: Trainer) -> dict[str, Any]:
        records = self._records(trainer)
        history = self.history(records)
        values = self.measure(trainer)
        d_acc = self._d_acc_since_last_check(records)
        if d_acc is not None and self.probabilistic:
            values["d_acc"] = d_acc
        reasons = diagnose([*history, values])
        warnings = declines([*history, values])
        if self._reference and not self._reference_logged:
            self._reference_logged = True
            trainer.log({"event": "monitor_reference", "step": trainer.step, **_rounded(self._reference[2])})
        record = {"event": "monitor", "step": trainer.step, "healthy": not reasons, **_rounded(values)}
        if warnings:
            record["declining"] = True
        trainer.log(record)
        if warnings:  # warn-level (train/collapse.py says why): logged and printed, never a rollback or a stop
            trainer.log({"event": "decline", "step": trainer.step, "reasons": warnings})
            print(f"Warning: diversity declining at step {trainer.step}: {'; '.join(warnings)}", file=sys.stderr, flush=True)
        if reasons:
            self._on_collapse(trainer, reasons, records)
        else:
            self._on_healthy(trainer, values, history, declining=bool(warnings))
        return record

    # ------------------------------------------------------------------ measuring
    @torch.no_grad()
    def samples(self, trainer: Trainer) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        spec, n = trainer.spec, self.cfg.monitor_samples
        inputs = spec.sample(n, seed=self.cfg.seed + MONITOR_SEED_OFFSET)
        if spec.conditional:
            inputs["label"] = np.arange(n, dtype=np.int64) % spec.n_classes
        g = trainer.sampling_generator()
        was = g.training
        g.eval()
        try:
            out = [
                g(**{k: torch.from_numpy(v[i : i + CHUNK]).to(trainer.device) for k, v in inputs.items()}).float().cpu().numpy()
                for i in range(0, n, CHUNK)
            ]
        finally:
            g.train(was)
        return np.concatenate(out), inputs

    def measure(self, trainer: Trainer) -> dict[str, float]:
        from ctrlgen.metrics import Pair, SampleSet, compute

        samples, inputs = self.samples(trainer)
        if trainer.spec.output_kind == "points":
            return compute(Pair(SampleSet(points=samples), mixture=trainer.mixture), cheap_only=True)
        ref = self._load_reference(trainer)
        if not ref:
            return {}
        evaluator, test, _ = ref
        logits, feats = evaluator(samples)
        gen = SampleSet(features=feats, logits=logits, labels=inputs.get("label"), codes_cat=inputs.get("code_cat"),
                        codes_cont=inputs.get("code_cont"), q_cont=self._q(trainer, samples))
        return {**compute(Pair(gen, test), cheap_only=True), **compute(Pair(gen, self._recall_real), ["recall"])}

    @torch.no_grad()
    def _q(self, trainer: Trainer, samples: np.ndarray) -> np.ndarray | None:
        if not trainer.spec.continuous or getattr(trainer.D, "q", None) is None:
            return None
        from ctrlgen.qhead import QHead

        was = trainer.D.training
        trainer.D.eval()  # running BatchNorm statistics; no spectral-norm power iteration
        try:
            q = QHead(trainer.D)
            out = [q(torch.from_numpy(samples[i : i + CHUNK]).to(trainer.device)).float().cpu().numpy()
                   for i in range(0, len(samples), CHUNK)]
        finally:
            trainer.D.train(was)
        return np.concatenate(out)

    def _load_reference(self, trainer: Trainer):
        if self._reference is None:
            self._reference = False
            if self.cfg.data != "fashion-mnist":
                self._warn("data", f"monitor: no evaluator for data={self.cfg.data}; only D accuracy is monitored")
                return False
            from ctrlgen.classifier import Evaluator
            from ctrlgen.reference import real_sets

            try:
                evaluator = Evaluator.load()
                evaluator.check_images(trainer.spec.output_shape)
                test, train = real_sets(evaluator, self.cfg.data_dir or None)
            except CtrlgenError as e:
                self._warn("evaluator", f"monitor: image metrics off ({e})")
                return False
            self._recall_real = recall_subset(test)
            self._reference = (evaluator, test, self.real_levels(test, train))
        return self._reference

    def real_levels(self, test: Any, train: Any) -> dict[str, float]:
        """The monitored metrics of ``monitor_samples`` real training images (their true classes as labels), the
        level a perfect generator would reach at this sample size."""
        from ctrlgen.metrics import Pair, compute

        real = train.head(self.cfg.monitor_samples)  # a new set: its k-NN radii are those of the head
        levels = compute(Pair(real, test), ["intra_diversity"]) if real.labels is not None else {}
        return {**levels, **compute(Pair(real, self._recall_real), ["recall"])}

    # ------------------------------------------------------------------ history (metrics.jsonl)
    @staticmethod
    def _records(trainer: Trainer) -> list[dict]:
        path = trainer.run_dir / "metrics.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    @staticmethod
    def history(records: list[dict]) -> list[dict]:
        """The monitor checks that count: rollback lines drop the checks after the restored step."""
        hist: list[dict] = []
        for r in records:
            if r.get("event") == "monitor":
                hist.append(r)
            elif r.get("event") == "rollback":
                hist = [h for h in hist if h["step"] <= r["step"]]
        return hist

    @staticmethod
    def _d_acc_since_last_check(records: list[dict]) -> float | None:
        vals: list[float] = []
        for r in records:
            if "event" in r:
                vals = []
            elif isinstance(r.get("d_acc"), (int, float)):
                vals.append(float(r["d_acc"]))
        return float(np.mean(vals)) if vals else None

    # ------------------------------------------------------------------ acting
    def _on_healthy(self, trainer: Trainer, values: dict[str, float], history: list[dict], declining: bool = False) -> None:
        from ctrlgen import checkpoint as ckpt_io

        folder = trainer.run_dir / "checkpoints"
        if self.cfg.on_collapse == "rollback":
            ckpt_io.save(folder / HEALTHY, trainer.state_tensors(), trainer.meta())
        key = self.best_metric
        value = values.get(key)
        if key == "none" or value is None or not math.isfinite(value) or declining:  # FD alone would pick a declining check
            return
        from ctrlgen.metrics import get

        higher = get(key).higher_is_better
        before = [h[key] for h in history if h.get("healthy") and not h.get("declining") and isinstance(h.get(key), (int, float))]
        if not before or (value > max(before) if higher else value < min(before)):
            ckpt_io.save(folder / BEST, trainer.state_tensors(), {**trainer.meta(), "best": {"metric": key, "value": value}})

    def _on_collapse(self, trainer: Trainer, reasons: list[str], records: list[dict]) -> None:
        rollbacks = sum(r.get("event") == "rollback" for r in records)
        healthy = trainer.run_dir / "checkpoints" / HEALTHY
        action = self.cfg.on_collapse
        if action == "rollback" and rollbacks >= MAX_ROLLBACKS:
            action = "stop"
        elif action == "rollback" and not healthy.is_file():
            action = "warn"  # nothing healthy to go back to yet
        trainer.log({"event": "collapse", "step": trainer.step, "reasons": reasons, "action": action})
        line = f"collapse detected at step {trainer.step}: {'; '.join(reasons)}"
        if action == "warn":
            print(f"Warning: {line}", file=sys.stderr, flush=True)
        elif action == "stop":
            self.stop_reason = line + (f" (after {rollbacks} rollbacks)" if rollbacks else "")
            print(f"Stopping: {self.stop_reason}", file=sys.stderr, flush=True)
            trainer._stop_requested = True
        else:
            self.rollback(trainer, healthy, rollbacks + 1, line)

    def rollback(self, trainer: Trainer, healthy, k: int, why: str) -> None:
        from ctrlgen import checkpoint as ckpt_io

        from_step, wall, nonfinite = trainer.step, trainer.wall_time, trainer.nonfinite_events
        trainer.load_checkpoint(ckpt_io.load(healthy))
        trainer.wall_time, trainer.nonfinite_events = wall, nonfinite
        seed = self.cfg.seed + ROLLBACK_SEED_STRIDE * k
        trainer.rng.manual_seed(seed)
        torch.manual_seed(seed)
        for opt in (trainer.opt_g, trainer.opt_d):
            for group in opt.param_groups:
                group["lr"] *= ROLLBACK_LR_SCALE
                if "base_lr" in group:  # under an lr schedule (train/schedule.py) the base is what counts
                    group["base_lr"] *= ROLLBACK_LR_SCALE
        for p in ckpt_io.list_checkpoints(trainer.run_dir):
            if int(p.stem.split("-")[1]) > trainer.step:
                (p.parent / COLLAPSED).mkdir(exist_ok=True)
                p.replace(p.parent / COLLAPSED / p.name)
        lr_g, lr_d = trainer.opt_g.param_groups[0]["lr"], trainer.opt_d.param_groups[0]["lr"]
        trainer.log({"event": "rollback", "step": trainer.step, "from_step": from_step, "seed": seed, "lr_g": lr_g, "lr_d": lr_d})
        print(f"Rolled back: {why}; restored step {trainer.step}, seed {seed}, lr_g {lr_g:g}, lr_d {lr_d:g}",
              file=sys.stderr, flush=True)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(message, file=sys.stderr, flush=True)


def recall_subset(test: Any) -> Any:
    """A fixed draw of ``RECALL_REAL`` test images (the same on every machine and every check)."""
    from ctrlgen.metrics import SampleSet

    idx = np.sort(np.random.default_rng(RECALL_SEED).permutation(len(test))[:RECALL_REAL])
    return SampleSet(features=test.features[idx], logits=test.logits[idx], labels=test.labels[idx])


def _rounded(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (round(v, 5) if math.isfinite(v) else None) for k, v in values.items()}
