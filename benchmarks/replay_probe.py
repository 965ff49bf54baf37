"""Where experience replay's collapse on the ring happens: G's modes and its replay buffer's modes over training.

The ring8 plain GAN of benchmarks/toy2d.py with experience replay at the given ratio, 5 seeds as one
ensemble; at a few steps it prints, per seed, the modes G's current samples cover (1,000 samples) and
the modes the buffer's contents cover.  G hopping between modes shows as few current modes against
many buffer modes.

    python benchmarks/replay_probe.py --ratio 0.5
    python benchmarks/replay_probe.py --ratio 0.25
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
CHECKS = (100, 200, 400, 800, 1600, 2500)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--seeds", type=int, default=5)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    import toy2d

    from ctrlgen.metrics.mixture import score
    from ctrlgen.train.trainer import Trainer

    row = toy2d.Row("replay", (f"techniques.experience_replay.ratio={args.ratio}",))
    cfg = toy2d.build_config("ring8", row, 0, None, ensemble=args.seeds)
    tr = Trainer(cfg, tempfile.gettempdir())
    replay = next(t for t in tr.techniques if t.name == "experience_replay")
    inputs = [tr.spec.sample(1000, seed=10_000 + s) for s in range(args.seeds)]
    print(f"ring8, experience replay ratio {args.ratio}, buffer {replay.p['size']}, {args.seeds} seeds (one ensemble)")
    while tr.step < cfg.steps:
        tr.train_step()
        if tr.step in CHECKS:
            g = tr.sampling_generator()
            g.eval()
            with torch.no_grad():
                x = g(**{k: torch.from_numpy(np.concatenate([i[k] for i in inputs])) for k in inputs[0]}).numpy()
            g.train()
            buf = replay.buffer.data["sample"].numpy()
            current = [score(x[i * 1000:(i + 1) * 1000], tr.mixture.means, tr.mixture.std).modes for i in range(args.seeds)]
            stored = [score(buf[i, :replay.buffer.filled], tr.mixture.means, tr.mixture.std).modes for i in range(args.seeds)]
            print(json.dumps({"step": tr.step, "G modes": current, "buffer modes": stored}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
