"""What one monitor check costs on a Fashion-MNIST model, and the recall part of it (README, Monitoring).

Run: OMP_NUM_THREADS=1 python tests/data/monitor/cost.py [RUN_DIR]   (needs Fashion-MNIST and the shipped evaluator)
Without RUN_DIR it trains a 2-step conv cGAN (the cost of the metrics does not depend on the weights).
"""

import sys
import tempfile
import time
from pathlib import Path

import torch

from ctrlgen.metrics import Pair, SampleSet, compute
from ctrlgen.train.config import load_config
from ctrlgen.train.monitor import RECALL_REAL, Monitor
from ctrlgen.train.trainer import Trainer

REPEATS = 5


def best_of(fn) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


torch.set_num_threads(1)
if len(sys.argv) > 1:
    trainer = Trainer.resume(sys.argv[1])
else:
    small = ["net.g_width=16", "net.d_width=16", "net.g_fc=64", "net.d_fc=32", "steps=2", "progress=false", "monitor_every=0"]
    trainer = Trainer(load_config("cgan", small), Path(tempfile.mkdtemp()) / "run")
    trainer.run()
monitor = Monitor(trainer.cfg)
t0 = time.perf_counter()
monitor.measure(trainer)  # loads the evaluator and the real features (cached on disk after the first run)
first = time.perf_counter() - t0
samples, inputs = monitor.samples(trainer)
evaluator, test, _ = monitor._reference
logits, feats = evaluator(samples)


def recall() -> None:
    compute(Pair(SampleSet(features=feats, logits=logits, labels=inputs["label"]), monitor._recall_real), ["recall"])


print(f"monitor_samples {trainer.cfg.monitor_samples}, recall against {RECALL_REAL} fixed test images, "
      f"{feats.shape[1]}-d features, {torch.get_num_threads()} thread(s); best of {REPEATS}")
print(f"first check (loads the evaluator and real features): {first:.2f} s")
print(f"one check, all metrics:                             {best_of(lambda: monitor.measure(trainer)):.2f} s")
print(f"  of which the evaluator pass:                      {best_of(lambda: evaluator(samples)):.2f} s")
print(f"  of which recall:                                  {best_of(recall):.3f} s")
