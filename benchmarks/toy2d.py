"""The 2D mode-collapse benchmark: ring8 and grid25 under the PacGAN / VEEGAN protocol.

Each configuration is trained from scratch for every seed with ctrlgen's own
Trainer (the same code path as ``ctrlgen train``, so the table measures the
toolkit, not a re-implementation), then scored on 2,500 samples of its
sampling generator (the EMA one when the configuration has EMA) with
``ctrlgen.metrics.mixture`` (METRICS.md): modes captured, % high quality,
reverse KL, as mean ± standard error over seeds, plus how many seeds caught
every mode.  The published rows of PacGAN Table 1 and VEEGAN Table 1 are
printed beside ours.

The seeds of a configuration train at once as ensembles (``ensemble = N``,
train/ensemble.py: the seeds' networks stacked and run under torch.func.vmap,
each seed's networks, batches and batch-level techniques kept apart, tested
against separate runs in tests/test_ensemble.py).  Copy s starts from the
weights of ``seed = s``; the seeds share one stream of data and latent draws.
Spectral norm cannot be an ensemble (vmap cannot batch its power iteration);
its seeds run one by one.  Under E-GAN each seed of an ensemble selects its own survivor.

    python benchmarks/toy2d.py                       # the full table (10 seeds)
    python benchmarks/toy2d.py --seeds 3 --only GAN "shipped recipe"   # a quick look
    python benchmarks/toy2d.py --out docs/results/toy2d.md             # also write the results page

Configurations run in parallel worker processes (``--jobs``, one torch thread each).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EVAL_SAMPLES = 2500
EVAL_SEED = 10_000  # generator samples for seed s are spec.sample(2500, seed=EVAL_SEED + s)

# The plain GAN every technique row starts from: the non-saturating loss, Adam(1e-3, betas 0.5/0.999),
# z in R^16, MLPs of depth 3 and width 64, batch 128, no technique.  Small nets and batches, so that
# every row gets its 10 seeds within the time budget.  z in R^16, not R^2: with z in R^2 the plain GAN
# kept all 8 ring modes in 9/10 seeds at these sizes (the row "GAN with z in R²"), with R^16 it drops
# modes in several seeds, as the GANs of the published tables do (Metz et al. used z in R^256).
PLAIN = {
    "ring8": ["steps=2500"],
    "grid25": ["steps=6000"],
}
PLAIN_COMMON = ["loss=nonsaturating", "lr_g=1e-3", "lr_d=1e-3", "beta1=0.5", "beta2=0.999", "n_critic=1", "noise_dim=16",
                "net.depth=3", "net.g_width=64", "net.d_width=64", "batch_size=128"]
RING, GRID, BOTH = ("ring8",), ("grid25",), ("ring8", "grid25")


@dataclass(frozen=True)
class Row:
    name: str
    overrides: tuple[str, ...]  # --set style, applied to the plain GAN (or to the recipe when from_recipe)
    datasets: tuple[str, ...] = BOTH
    from_recipe: bool = False  # the shipped recipe as it is (its techniques, steps and batch included)
    cost: float = 1.0  # rough time per run relative to the plain GAN (only orders the work: longest first)
    ensemble: bool = True  # seeds in vmapped ensembles (False: spectral norm cannot be one)
    paper: str = ""  # paper-protocol rows: the paper's figure or table and what it reports
    step_share: float = 1.0  # G steps as this share of the plain GAN's on each dataset (equal wall-clock rows)


ROWS = [
    Row("GAN", ()),
    Row("GAN with z in R² (why the plain GAN uses R¹⁶)", ("noise_dim=2",), RING),
    Row("minimax loss (saturating G)", ("loss=minimax",), RING),
    Row("LSGAN", ("loss=lsgan",), RING),
    Row("hinge loss", ("loss=hinge",), RING),
    Row("WGAN, clip 0.01, n_critic 5", ("loss=wgan", "n_critic=5"), RING, cost=3.5),
    Row("WGAN-GP, n_critic 5", ("loss=wgan-gp", "n_critic=5"), RING, cost=4.5),
    Row("DRAGAN", ("loss=dragan",), RING, cost=1.5),
    Row("+ n_critic 2", ("n_critic=2",), RING, cost=1.6),
    Row("+ TTUR lr_d 3e-3, lr_g 1e-3", ("lr_d=3e-3",), RING),
    Row("+ packing m=4 (PacGAN4)", ("techniques.packing.m=4",), BOTH),
    Row("+ minibatch discrimination 8x4", ("techniques.minibatch_discrimination.kernels=8", "techniques.minibatch_discrimination.dim=4"), RING, cost=3),
    Row("+ minibatch stddev", ("techniques.minibatch_stddev={}",), BOTH),
    Row("+ unrolled k=5, first-order", ("techniques.unrolled.steps=5", "techniques.unrolled.second_order=false"), RING, cost=5),
    Row("+ experience replay", ("techniques.experience_replay.ratio=0.5",), RING),  # the default was 0.5 when the table was printed
    Row("+ feature matching (added)", ("techniques.feature_matching={}",), RING, cost=1.3),
    Row("+ label smoothing 0.9", ("techniques.label_smoothing={}",), RING),
    Row("+ historical averaging", ("techniques.historical_averaging={}",), RING, cost=1.2),
    Row("+ virtual batch norm", ("techniques.virtual_batchnorm={}",), RING, cost=1.4),
    Row("+ mode seeking", ("techniques.mode_seeking={}",), RING, cost=1.1),
    Row("+ spectral norm", ("techniques.spectral_norm={}",), RING, cost=1.3, ensemble=False),
    Row("+ EMA", ("techniques.ema={}",), BOTH),
    Row("+ R1 γ=0.01", ("techniques.r1.gamma=0.01",), RING, cost=1.4),
    Row("+ R1 γ=0.01 + EMA", ("techniques.r1.gamma=0.01", "techniques.ema={}"), RING, cost=1.4),
    Row("+ R1 γ=0.1 + EMA", ("techniques.r1.gamma=0.1", "techniques.ema={}"), GRID, cost=1.4),
    Row("shipped recipe", (), BOTH, from_recipe=True, cost=12),
    # E-GAN (train/egan.py): the plain GAN's D and networks, G evolved with three mutations, one survivor (μ = 1).
    Row("E-GAN: minimax + non-saturating + LSGAN, μ=1", ("mode=egan",), BOTH, cost=4),
]

# Paper-protocol rows (``--paper``): each technique at its own paper's toy setting where the paper has one, or at
# the setting its paper recommends, beside the controlled rows above (which share the plain GAN's Adam 1e-3).
# The papers trained for 25k-400k steps with 512-wide nets; on 2 CPU cores these rows use narrower nets and a
# few thousand steps (said in the name), so they say where a setting is heading, not where it ends.
WGAN_GP_TOY = ("loss=wgan-gp", "techniques.gradient_penalty.weight=0.1", "n_critic=5", "lr_g=1e-4", "lr_d=1e-4", "beta1=0.5",
               "beta2=0.9", "batch_size=256", "noise_dim=2")
PAPER_ROWS = [
    Row("GAN", (), paper="the controlled plain GAN, for reference"),
    Row("WGAN-GP, λ 0.1 (the toy λ of gan_toy.py), controlled net and Adam 1e-3", ("loss=wgan-gp", "n_critic=5",
        "techniques.gradient_penalty.weight=0.1"), RING, cost=4.5,
        paper="λ 10 is the paper's image setting; its toy code uses λ 0.1"),
    Row("WGAN-GP, gan_toy.py setting (λ 0.1, Adam 1e-4 β (0.5, 0.9), batch 256, z in R²) at width 64, 3000 steps", (*WGAN_GP_TOY, "steps=3000"),
        BOTH, cost=12, paper="Gulrajani et al. 2017 Fig. 2: 8 and 25 Gaussians learned (width 512, 100k G steps)"),
    Row("DRAGAN, Adam 1e-4 β (0.5, 0.9)", ("loss=dragan", "lr_g=1e-4", "lr_d=1e-4", "beta2=0.9", "steps=5000"), RING, cost=3,
        paper="Kodali et al. 2017: λ 10, C 0.5; mixtures learned without collapse"),
    Row("spectral norm, hinge, Adam 2e-4", ("techniques.spectral_norm={}", "loss=hinge", "lr_g=2e-4", "lr_d=2e-4", "steps=5000"),
        RING, cost=2.6, ensemble=False, paper="Miyato et al. 2018 setting C (the paper has no 2D experiment)"),
    Row("+ experience replay, ratio 0.5", ("techniques.experience_replay.ratio=0.5",), RING,
        paper="Shrivastava et al. 2017: half of D's fakes from the history (images; no 2D experiment)"),
    Row("+ experience replay, ratio 0.25", ("techniques.experience_replay.ratio=0.25",), RING),
    Row("+ experience replay, ratio 0.1", ("techniques.experience_replay.ratio=0.1",), RING),
    Row("+ experience replay, ratio 0.5, buffer 512", ("techniques.experience_replay.ratio=0.5", "techniques.experience_replay.size=512"), RING),
    Row("+ experience replay, ratio 0.5, n_critic 2", ("techniques.experience_replay.ratio=0.5", "n_critic=2"), RING, cost=1.6),
    Row("+ unrolled k=5, first-order", ("techniques.unrolled.steps=5", "techniques.unrolled.second_order=false"), RING, cost=5,
        paper="Metz et al. 2017 Fig. 1: all 8 ring modes with 10 unrolling steps; VEEGAN Table 1: 7.6 modes"),
    Row("LSGAN (a single mutation of E-GAN)", ("loss=lsgan",), BOTH),
    Row("minimax (a single mutation of E-GAN)", ("loss=minimax",), BOTH),
    Row("E-GAN, equal G steps", ("mode=egan",), BOTH, cost=4, paper="Wang et al. 2019: 8 and 25 Gaussians covered"),
    # one E-GAN step costs 3.45 single-loss steps (benchmarks/egan_steptime.py): 725 steps on ring8, 1739 on grid25
    Row("E-GAN, equal wall-clock (G steps / 3.45)", ("mode=egan",), BOTH, cost=1.2, step_share=1 / 3.45),
    Row("E-GAN, toy-code setting (γ 2, Adam 1e-4, batch 64, z uniform in R²) at width 64, 5000 steps",
        ("mode=egan", "egan.gamma=2.0", "lr_g=1e-4", "lr_d=1e-4", "batch_size=64", "noise_dim=2", "latent.noise=uniform",
         "steps=5000"), RING, cost=6, paper="the authors' toys/train_toy_8G.py (width 512, 100k steps)"),
]

# Published anchors (METRICS.md): (modes, % high quality, reverse KL); None where a paper gives none.
PUBLISHED = {
    "ring8": [
        ("PacGAN Table 1: GAN", 6.3, 98.2, 0.45),
        ("PacGAN Table 1: PacGAN4", 7.8, 95.9, 0.07),
        ("VEEGAN Table 1: Unrolled GAN", 7.6, 35.6, None),
        ("VEEGAN Table 1: VEEGAN", 8.0, 52.9, None),
    ],
    "grid25": [
        ("PacGAN Table 1: GAN", 17.3, 94.8, 0.70),
        ("PacGAN Table 1: PacGAN4", 24.8, 93.6, 0.04),
        ("VEEGAN Table 1: Unrolled GAN", 23.6, 16.0, None),
        ("VEEGAN Table 1: VEEGAN", 24.6, 40.0, None),
    ],
}


def build_config(dataset: str, row: Row, seed: int, steps: int | None = None, ensemble: int = 1):
    """The row's TrainConfig; ``steps`` None = the row's own (the recipe's for the shipped recipe row)."""
    from ctrlgen.train.config import TrainConfig, apply_overrides, read_recipe

    d = read_recipe(dataset)
    if not row.from_recipe:
        d.pop("techniques", None)
        d = apply_overrides(d, [*PLAIN_COMMON, *PLAIN[dataset]])
        if row.step_share != 1.0:
            d = apply_overrides(d, [f"steps={round(d['steps'] * row.step_share)}"])
    run = [f"seed={seed}", f"ensemble={ensemble}", "progress=false", "sample_every=0", "device=cpu", "monitor_every=0",
           *([f"steps={steps}"] if steps else [])]
    d = apply_overrides(d, [*row.overrides, *run])
    return TrainConfig.from_dict(d, where=f"toy2d row {row.name!r}")


def run_seeds(dataset: str, row: Row, seeds: tuple[int, ...], steps: int | None = None) -> list[dict]:
    """Train one configuration for the given seeds (one ensemble, or a single seed) and score each
    (runs in a worker process)."""
    import torch

    torch.set_num_threads(1)  # tiny MLPs: one thread per worker is fastest
    from ctrlgen.metrics.mixture import score
    from ctrlgen.train.trainer import Trainer

    t0 = time.perf_counter()
    cfg = build_config(dataset, row, seeds[0], steps, ensemble=len(seeds))
    trainer = Trainer(cfg, tempfile.gettempdir())  # nothing is written: train_step only
    while trainer.step < cfg.steps:
        trainer.train_step()
    g = trainer.sampling_generator().eval()
    inputs = [trainer.spec.sample(EVAL_SAMPLES, seed=EVAL_SEED + s) for s in seeds]
    with torch.no_grad():
        x = g(**{k: torch.from_numpy(np.concatenate([i[k] for i in inputs])) for k in inputs[0]}).numpy()
    seconds = (time.perf_counter() - t0) / len(seeds)
    out = []
    for i, seed in enumerate(seeds):
        s = score(x[i * EVAL_SAMPLES : (i + 1) * EVAL_SAMPLES], trainer.mixture.means, trainer.mixture.std)
        out.append({
            "seed": seed, "modes": s.modes, "n_modes": s.n_modes, "hq": s.high_quality, "kl": s.reverse_kl,
            "seconds": seconds, "steps": cfg.steps, "batch": cfg.batch_size, "ensemble": len(seeds),
        })
    return out


def mean_se(values: list[float]) -> str:
    v = np.asarray(values, float)
    if not np.isfinite(v).all():
        return "inf"
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    return f"{v.mean():.3g} ± {se:.2g}" if v.mean() < 1 else f"{v.mean():.1f} ± {se:.1f}"


def table(dataset: str, results: dict[str, list[dict]], papers: dict[str, str] | None = None) -> str:
    n_modes = next(iter(results.values()))[0]["n_modes"]
    n_seeds = max(len(rs) for rs in results.values())
    lines = [
        f"### {dataset} ({n_modes} modes), {n_seeds} seeds, mean ± standard error over seeds",
        "",
        f"| configuration | G steps × batch | modes (of {n_modes}) | seeds with all modes | high quality % | reverse KL | s / seed |"
        + (" paper |" if papers else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if papers else ""),
    ]
    for name, rs in results.items():
        full = sum(r["modes"] == n_modes for r in rs)
        secs = f"{np.mean([r['seconds'] for r in rs]):.1f}" + (" †" if max(r["ensemble"] for r in rs) == 1 else "")
        lines.append(
            f"| {name} | {rs[0]['steps']} × {rs[0]['batch']} | {mean_se([r['modes'] for r in rs])} | {full}/{len(rs)} "
            f"| {mean_se([r['hq'] for r in rs])} | {mean_se([r['kl'] for r in rs])} | {secs} |"
            + (f" {papers.get(name, '')} |" if papers else "")
        )
    for name, modes, hq, kl in PUBLISHED[dataset]:
        lines.append(f"| *{name}* | – | *{modes}* | – | *{hq}* | *{'–' if kl is None else kl}* | – |" + (" |" if papers else ""))
    lines += ["", "s / seed: wall time of the configuration's ensemble divided by its seeds; † seeds trained one at a time.  "
              "Reverse KL is inf when at least one seed put no sample within 3σ of any mode."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10, help="seeds per configuration (default 10)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)")
    p.add_argument("--datasets", nargs="+", default=["ring8", "grid25"], choices=["ring8", "grid25"])
    p.add_argument("--only", nargs="+", metavar="ROW", help="run only these rows (names as printed)")
    p.add_argument("--steps", type=int, help="G steps for every row (default: each row's own; see PLAIN and the recipes)")
    p.add_argument("--ensemble", type=int, default=5, metavar="N",
                   help="seeds per ensemble (default 5: two ensembles of 5 keep both workers busy); 1 = every seed its own run")
    p.add_argument("--out", type=Path, help="also write the tables, the command and the wall time to this markdown file")
    p.add_argument("--paper", action="store_true", help="the paper-protocol rows (PAPER_ROWS) instead of the controlled ablation")
    args = p.parse_args(argv)
    all_rows = PAPER_ROWS if args.paper else ROWS
    rows = [r for r in all_rows if not args.only or r.name in args.only]
    if args.only and len(rows) != len(args.only):
        known = ", ".join(repr(r.name) for r in all_rows)
        p.error(f"unknown row(s) in --only; rows are: {known}")
    seeds = tuple(range(args.seeds))
    tasks = []  # (dataset, row, seeds, steps): one ensemble per row, or one task per seed
    for ds in args.datasets:
        for r in rows:
            if ds in r.datasets:
                k = args.ensemble if r.ensemble else 1
                groups = [seeds[i : i + k] for i in range(0, len(seeds), k)]
                tasks += [(ds, r, g, args.steps) for g in groups]
    t0 = time.perf_counter()
    results: dict[str, dict[str, list[dict]]] = {ds: {} for ds in args.datasets}

    def cost(task) -> float:  # longest first, so that the workers finish together
        ds, row, group, _ = task
        return row.cost * (4 if ds == "grid25" else 1) * (0.25 * len(group) if len(group) > 1 else 1)

    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_seeds, *t): t for t in sorted(tasks, key=lambda t: -cost(t))}
        for fut in as_completed(futures):
            ds, row, _, _ = futures[fut]
            for r in fut.result():
                results[ds].setdefault(row.name, []).append(r)
                print(f"  {ds:6s} {row.name:32s} seed {r['seed']}: {r['modes']}/{r['n_modes']} modes, {r['hq']:.1f}% HQ, "
                      f"rev KL {r['kl']:.4f} ({r['seconds']:.1f} s per seed)", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    n_runs = sum(len(rs) for per in results.values() for rs in per.values())
    order_names = [r.name for r in rows]
    papers = {r.name: r.paper for r in rows} if args.paper else None
    tables = [table(ds, {n: results[ds][n] for n in order_names if n in results[ds]}, papers) for ds in args.datasets if results[ds]]
    import torch

    footer = (
        f"{n_runs} runs ({len(tasks)} tasks: ensembles of up to {args.ensemble} seeds, and single seeds where marked †) in "
        f"{wall / 60:.1f} min wall time with {args.jobs} worker processes "
        f"(cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__})."
    )
    text = "\n\n".join(tables) + "\n\n" + footer
    print(text)
    if args.out:
        command = "python benchmarks/toy2d.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        title = "2D mode-collapse benchmark: paper-protocol rows" if args.paper else "2D mode-collapse benchmark"
        args.out.write_text(f"# {title}\n\nPrinted by\n\n```bash\n{command.strip()}\n```\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
