"""The cures on images: every technique and loss of the toolkit on the conditional Fashion-MNIST GAN.

One row per technique or loss, each at the setting its paper uses (said in
the row), on top of the plain reference (the ``fashion-cgan-reference``
recipe: the CGAN of the "generative model collections" repositories, D
conditioning by projection, the non-saturating loss, Adam 2e-4, β = (0.5,
0.999), batch 64), at one fixed budget of G steps.  Every row trains with
ctrlgen's own Trainer (the code path of ``ctrlgen train``) and is scored by
the metrics of ``ctrlgen eval`` (the shipped evaluator's features, 10,000
samples with every class equally often, against the 10,000 test images):
FD, recall, coverage, intra-class diversity, conditional accuracy, classes
covered; the InfoGAN block adds categorical purity and continuous-code
consistency.  Mean ± standard error over seeds.

To fit the whole table in ~90 minutes on a 2-core CPU the ablation uses
smaller networks than the shipped recipe (G and D conv widths 32 instead of
64, FC 256 instead of 1024; ``--width``/``--fc`` change it) and 700 G steps
(0.75 epoch; ``--steps``); runs go two at a time in worker processes with one torch thread
each, bf16 autocast where the CPU has it (the trainer's ``amp = "auto"``).

E-GAN is compared twice: at the same number of G steps as every row, and at
the same *training time* as the reference (its steps cut where its own
training clock reaches the reference's mean), since one E-GAN step costs
several single-loss steps.

    python benchmarks/images.py --out docs/results/images.md          # the whole table
    python benchmarks/images.py --seeds 1 --steps 50 --only reference  # a quick look

Every finished run is kept as JSON under ``--work`` (default
``runs/images-bench``): a rerun skips the runs already there, so an
interrupted table resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_EVAL = 10_000
METRICS = ("fd", "recall", "coverage", "intra_diversity", "conditional_accuracy", "classes_covered")
INFO_METRICS = ("fd", "recall", "coverage", "purity", "consistency")


@dataclass(frozen=True)
class Row:
    name: str
    overrides: tuple[str, ...]
    setting: str  # the paper's setting, as the row uses it
    cost: float = 1.0  # rough time relative to the reference (orders the work only)
    recipe: str = "fashion-cgan-reference"
    budget: str = "steps"  # "steps": the common G steps; "time": the reference's training time


NS = "non-saturating loss, Adam 2e-4 β (0.5, 0.999), batch 64, n_critic 1"
ROWS = [
    Row("reference (plain CGAN)", (), NS),
    Row("minimax loss", ("loss=minimax",), "Goodfellow et al. 2014: the saturating G loss; optimizer as the reference"),
    Row("LSGAN", ("loss=lsgan",), "Mao et al. 2017: targets 0/1, Adam 2e-4 β1 0.5"),
    Row("hinge + spectral norm", ("loss=hinge", "net.d_norm=none", "techniques.spectral_norm={}"),
        "Miyato et al. 2018 setting C: hinge loss, SN in D (in place of its BatchNorm), Adam 2e-4 β (0.5, 0.999), n_dis 1", cost=1.3),
    Row("WGAN (clipping)", ("loss=wgan", "n_critic=5", "lr_g=5e-5", "lr_d=5e-5", "beta1=0", "beta2=0.99", "net.d_norm=none"),
        "Arjovsky et al. 2017: clip 0.01, n_critic 5, lr 5e-5 with RMSProp (here Adam with β1 = 0, which is RMSProp with "
        "bias correction), no BatchNorm in the critic", cost=3.0),
    Row("WGAN-GP", ("loss=wgan-gp", "n_critic=5", "lr_g=1e-4", "lr_d=1e-4", "beta1=0.5", "beta2=0.9", "net.d_norm=layer"),
        "Gulrajani et al. 2017 (their MNIST/toy setting): λ 10, n_critic 5, Adam 1e-4 β (0.5, 0.9), layer norm in the critic "
        "(no BatchNorm under a per-sample penalty)", cost=5.0),
    Row("DRAGAN", ("loss=dragan", "lr_g=1e-4", "lr_d=1e-4", "beta2=0.9", "net.d_norm=layer"),
        "Kodali et al. 2017: λ 10, perturbation scale 0.5·std, Adam 1e-4 β (0.5, 0.9); layer norm in D (a per-sample penalty "
        "cannot go through BatchNorm)", cost=3.0),
    Row("R1 γ=10", ("techniques.r1.gamma=10", "net.d_norm=layer"),
        "Mescheder et al. 2018: R1 on real data, γ 10; layer norm in D (per-sample gradients)", cost=2.5),
    Row("spectral norm", ("net.d_norm=none", "techniques.spectral_norm={}"),
        "Miyato et al. 2018: SN on every layer of D (in place of its BatchNorm), with the NS loss", cost=1.3),
    Row("EMA of G", ("techniques.ema={}",), "Yazıcı et al. 2019: decay 0.999, sampling with the average", cost=1.0),
    Row("feature matching (added)", ("techniques.feature_matching={}",),
        "Salimans et al. 2016: match the mean of D's last hidden features, added to G's loss with weight 1", cost=1.3),
    Row("minibatch discrimination", ("techniques.minibatch_discrimination.kernels=100", "techniques.minibatch_discrimination.dim=5"),
        "Salimans et al. 2016: 100 kernels of dimension 5", cost=1.4),
    Row("minibatch discrimination 32 × 8 (ctrlgen's default)", ("techniques.minibatch_discrimination={}",),
        "the same with 32 kernels of dimension 8, to tell the technique from the paper's size on a width-32 D", cost=1.2),
    Row("minibatch stddev", ("techniques.minibatch_stddev={}",), "Karras et al. 2018: one stddev feature map before D's head", cost=1.1),
    Row("one-sided label smoothing 0.9", ("techniques.label_smoothing={}",), "Salimans et al. 2016: real target 0.9"),
    Row("virtual batch norm", ("techniques.virtual_batchnorm={}",), "Salimans et al. 2016: reference batch of 64 in G", cost=1.5),
    Row("mode seeking", ("techniques.mode_seeking={}",),
        "Mao et al. 2019 (MSGAN): G minimizes 1 / (mean|G(c,z1) − G(c,z2)| / mean|z1 − z2|), weight 1, pairs in G's batch", cost=1.1),
    Row("mode seeking + virtual batch norm", ("techniques.mode_seeking={}", "techniques.virtual_batchnorm={}"),
        "the two together, as the shipped recipe would use them", cost=1.6),
    Row("DiffAugment", ("techniques.diffaugment={}",),
        "Zhao et al. 2020: color, translation by 1/8 and cutout of 1/2, on every image D sees in both updates", cost=1.1),
    Row("historical averaging", ("techniques.historical_averaging={}",), "Salimans et al. 2016: weight 1e-3, both players", cost=1.2),
    Row("experience replay, ratio 0.5", ("techniques.experience_replay.ratio=0.5",),
        "Shrivastava et al. 2017: half of D's fakes from a buffer of 4096 past samples"),
    Row("experience replay, ratio 0.25", ("techniques.experience_replay.ratio=0.25",), "a quarter of D's fakes from the buffer"),
    Row("unrolled, k=5 first-order", ("techniques.unrolled.steps=5", "techniques.unrolled.second_order=false"),
        "Metz et al. 2017: G sees D unrolled 5 steps (first-order: no gradient through the unrolling)", cost=3.5),
    Row("packing m=2", ("techniques.packing.m=2",), "Lin et al. 2018 (PacGAN2): D judges 2 samples at once", cost=1.0),
    Row("TTUR lr_d 4e-4, lr_g 1e-4", ("lr_d=4e-4", "lr_g=1e-4", "beta1=0", "beta2=0.9"),
        "Heusel et al. 2017 / Zhang et al. 2019: D 4x G's learning rate, Adam β (0, 0.9)", cost=1.0),
    Row("TTUR lr_d 4e-4, lr_g 1e-4, β (0.5, 0.999)", ("lr_d=4e-4", "lr_g=1e-4"),
        "the same learning rates with the reference's Adam β, to tell the rates from β1 = 0", cost=1.0),
    Row("E-GAN, equal G steps", ("mode=egan",),
        "Wang et al. 2019: minimax, non-saturating and least-squares mutations (on D's probability), μ 1, γ 0.1", cost=3.5),
    Row("E-GAN, equal training time", ("mode=egan",), "as above, stopped at the reference's training time", cost=1.0, budget="time"),
]
INFO_ROWS = [
    Row("InfoGAN (plain)", (), "Chen et al. 2016: 10-way categorical and 2 continuous codes, λ 1", recipe="fashion-infogan"),
    Row("InfoGAN + EMA", ("techniques.ema={}",), "decay 0.999", recipe="fashion-infogan"),
]


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def config(row: Row, seed: int, steps: int, width: int, fc: int):
    from ctrlgen.train.config import load_config

    base = [f"net.g_width={width}", f"net.d_width={width}", f"net.g_fc={fc}", f"net.d_fc={fc}", "epochs=1"]
    run = [f"seed={seed}", f"steps={steps}", "progress=false", "sample_every=0", "monitor_every=0", "device=cpu"]
    return load_config(row.recipe, [*base, *row.overrides, *run])


def train_and_score(row: Row, seed: int, steps: int, width: int, fc: int, seconds: float | None) -> dict:
    """Train one row for one seed (a worker process), then score its sampling generator."""
    import torch

    torch.set_num_threads(1)
    from ctrlgen.train.trainer import Trainer

    cfg = config(row, seed, steps, width, fc)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp)
        train_s = 0.0
        while trainer.step < cfg.steps and (seconds is None or train_s < seconds):
            t0 = time.perf_counter()
            trainer.train_step()
            train_s += time.perf_counter() - t0
        won = [m for r in getattr(trainer.g_update, "pending", []) for m in r["won"]]
        t0 = time.perf_counter()
        values = score(trainer, row)
    return {"row": row.name, "seed": seed, "steps": trainer.step, "train_s": train_s, "eval_s": time.perf_counter() - t0,
            "values": {k: float(v) for k, v in values.items()}, "won_by_step": won}


def score(trainer, row: Row) -> dict[str, float]:
    """``ctrlgen eval``'s metrics of the trainer's sampling generator on N_EVAL class-balanced samples."""
    from ctrlgen.classifier import Evaluator
    from ctrlgen.metrics import Pair, SampleSet, compute
    from ctrlgen.reference import real_sets
    from ctrlgen.train.monitor import Monitor

    mon = Monitor(dataclasses.replace(trainer.cfg, monitor_samples=N_EVAL))  # its fixed, class-balanced draws and its Q reader
    samples, inputs = mon.samples(trainer)
    evaluator = Evaluator.load()  # as ctrlgen eval: the shipped evaluator and the (cached) test-set features
    test, _ = real_sets(evaluator)
    logits, feats = evaluator(samples)
    gen = SampleSet(features=feats, logits=logits, labels=inputs.get("label"), codes_cat=inputs.get("code_cat"),
                    codes_cont=inputs.get("code_cont"), q_cont=mon._q(trainer, samples))
    names = INFO_METRICS if row.recipe == "fashion-infogan" else METRICS
    return {k: float(v) for k, v in compute(Pair(gen, test), names=list(names)).items()}


def curve(name: str, checks: list[int], seed: int, width: int, fc: int) -> None:
    """One row's metrics at several G step counts of one run (``--curve``): is a slow row heading somewhere?"""
    import torch

    torch.set_num_threads(1)
    from ctrlgen.train.trainer import Trainer

    row = next(r for r in [*ROWS, *INFO_ROWS] if r.name == name)
    cfg = config(row, seed, max(checks), width, fc)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp)
        print(f"| {name}, seed {seed} | G steps | " + " | ".join(METRICS) + " |")
        print("|---|---:|" + "---:|" * len(METRICS))
        while trainer.step < cfg.steps:
            trainer.train_step()
            if trainer.step in checks:
                v = score(trainer, row)
                print(f"| | {trainer.step} | " + " | ".join(f"{v[m]:.3g}" for m in METRICS) + " |", flush=True)


def real_levels() -> dict[str, float]:
    """The real data's values (10,000 test images against the training subset), as ``ctrlgen eval`` prints them."""
    from ctrlgen.classifier import Evaluator
    from ctrlgen.metrics import Pair, compute
    from ctrlgen.reference import real_sets

    test, train_sub = real_sets(Evaluator.load())
    return {k: float(v) for k, v in compute(Pair(test, train_sub), names=list(METRICS)).items()}


def plot_shares(runs: list[dict], out: Path) -> str:
    """The share of each mutation among E-GAN's survivors over training, averaged over runs (50-step windows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in runs if r.get("won_by_step")]
    if not runs:
        return "no per-step records"
    names = sorted({m for r in runs for m in r["won_by_step"]})
    n = min(len(r["won_by_step"]) for r in runs)
    window = 50
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for m in names:
        hits = np.mean([[w == m for w in r["won_by_step"][:n]] for r in runs], axis=0)
        smooth = np.convolve(hits, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=m)
    ax.set_xlabel("G step")
    ax.set_ylabel(f"share of survivors ({window}-step window)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(f"E-GAN on Fashion-MNIST: which mutation survives ({len(runs)} runs)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return f"{len(runs)} runs, {n} steps each"


def mean_se(values: list[float]) -> str:
    v = np.asarray(values, float)
    se = v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    digits = 3 if abs(v.mean()) < 10 else 1
    return f"{v.mean():.{digits}f} ± {se:.{digits}f}" if digits == 3 else f"{v.mean():.1f} ± {se:.1f}"


def table(rows: list[Row], results: dict[str, list[dict]], metrics: tuple[str, ...], real: dict[str, float] | None) -> list[str]:
    head = ["configuration", "G steps", *metrics, "train s / run"]
    out = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in rows:
        rs = results.get(row.name)
        if not rs:
            continue
        cells = [mean_se([r["values"][m] for r in rs]) for m in metrics]
        steps = f"{np.mean([r['steps'] for r in rs]):.0f}"
        out.append(f"| {row.name} | {steps} | " + " | ".join(cells) + f" | {np.mean([r['train_s'] for r in rs]):.0f} |")
    if real:
        out.append("| *real data (test vs train)* | – | " + " | ".join(f"*{real[m]:.3g}*" if m in real else "–" for m in metrics) + " | – |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=700, help="G steps of every row (default 700: 0.75 epoch at batch 64)")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--fc", type=int, default=256)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", nargs="+", metavar="ROW", help="rows whose name starts with one of these")
    p.add_argument("--no-infogan", action="store_true")
    p.add_argument("--work", type=Path, default=Path("runs/images-bench"))
    p.add_argument("--out", type=Path)
    p.add_argument("--curve", metavar="ROW", help="instead of the table: this row's metrics at 1x, 2x and 3x --steps, one seed")
    args = p.parse_args(argv)
    if args.curve:
        curve(args.curve, [args.steps, 2 * args.steps, 3 * args.steps], 0, args.width, args.fc)
        return 0
    import torch

    t_start = time.perf_counter()
    rows = [*ROWS, *([] if args.no_infogan else INFO_ROWS)]
    if args.only:
        rows = [r for r in rows if any(r.name.startswith(o) for o in args.only) or r.name.startswith("reference")]
    args.work.mkdir(parents=True, exist_ok=True)
    tag = f"w{args.width}-fc{args.fc}-s{args.steps}"

    def path(row: Row, seed: int) -> Path:
        return args.work / f"{tag}-{slug(row.name)}-seed{seed}.json"

    def pending(rs: list[Row]) -> list[tuple[Row, int]]:
        return [(r, s) for r in rs for s in range(args.seeds) if not path(r, s).exists()]

    def run(tasks: list[tuple[Row, int]], seconds: float | None = None) -> None:
        tasks = sorted(tasks, key=lambda t: (t[0] is not ROWS[0], -t[0].cost))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futs = {pool.submit(train_and_score, r, s, args.steps, args.width, args.fc, seconds): (r, s) for r, s in tasks}
            for f in as_completed(futs):
                r, s = futs[f]
                try:
                    res = f.result()
                except Exception as e:  # one bad row must not cost the others (the pool would finish them unheard)
                    print(f"{r.name} seed {s} FAILED: {type(e).__name__}: {e}", flush=True)
                    continue
                path(r, s).write_text(json.dumps(res))
                print(f"[{(time.perf_counter() - t_start) / 60:5.1f} min] {r.name} seed {s}: "
                      + ", ".join(f"{k} {v:.3g}" for k, v in res["values"].items()) + f" ({res['train_s']:.0f} s)", flush=True)

    run(pending([r for r in rows if r.budget == "steps"]))
    ref = [json.loads(path(ROWS[0], s).read_text()) for s in range(args.seeds) if path(ROWS[0], s).exists()]
    ref_seconds = float(np.mean([r["train_s"] for r in ref])) if ref else None
    timed = [r for r in rows if r.budget == "time"]
    if timed and ref_seconds:
        run(pending(timed), seconds=ref_seconds)

    results: dict[str, list[dict]] = {}
    for r in rows:
        results[r.name] = [json.loads(path(r, s).read_text()) for s in range(args.seeds) if path(r, s).exists()]
    real = real_levels()
    cmd = "python benchmarks/images.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), platform.machine()) \
        if Path("/proc/cpuinfo").exists() else platform.machine()
    lines = [
        "# The cures on images: conditional Fashion-MNIST GAN",
        "",
        "Printed by",
        "",
        "```bash",
        cmd,
        "```",
        "",
        f"Machine: {cpu}, {os.cpu_count()} CPUs; torch {torch.__version__}; {args.jobs} runs at a time, one torch thread each.  "
        f"Networks: the cgan family at conv width {args.width} and FC {args.fc} (the shipped recipe: 64 and 1024); "
        f"{args.steps} G steps at batch 64 for every row unless said; {args.seeds} seeds per row, mean ± standard error; "
        f"scored on {N_EVAL:,} samples (every class equally often) against the {N_EVAL:,} test images, as `ctrlgen eval` scores.",
        "",
        "## Conditional GAN",
        "",
        *table([r for r in rows if r.recipe != "fashion-infogan"], results, METRICS, real),
        "",
        "### Each row's setting",
        "",
        *[f"- **{r.name}**: {r.setting}." for r in rows if r.recipe != "fashion-infogan"],
    ]
    info = [r for r in rows if r.recipe == "fashion-infogan"]
    if info:
        lines += ["", "## InfoGAN (no labels)", "", *table(info, results, INFO_METRICS, None), "",
                  *[f"- **{r.name}**: {r.setting}." for r in info]]
    egan = [x for r in rows if r.name.startswith("E-GAN") for x in results[r.name]]
    if egan:
        won = Counter(m for x in egan for m in x["won_by_step"])
        total = sum(won.values()) or 1
        lines += ["", "E-GAN survivors by mutation, all its runs: "
                  + ", ".join(f"{m} {100 * c / total:.0f}%" for m, c in sorted(sorted(won.items()), key=lambda kv: -kv[1])) + "."]
        if ref_seconds:
            lines.append(f"Equal training time: {ref_seconds:.0f} s, the reference's mean training time in this run.")
    lines += ["", "`train s / run` is wall time under whatever else the machine ran at the time (the first rows, the reference's "
              "included, ran beside other jobs and took about twice as long as rows of the same cost later): read it as a rough "
              "cost, and the equal-time E-GAN row as generous to E-GAN."]
    if egan:
        lines.append(f"The share of each mutation among the survivors over training: `docs/img/egan-shares-fashion.png` "
                     f"({plot_shares(results.get('E-GAN, equal G steps', []), args.out.parent.parent / 'img' / 'egan-shares-fashion.png' if args.out else args.work / 'egan-shares.png')}).")
    done = [x for rs in results.values() for x in rs]
    busy = sum(x["train_s"] + x["eval_s"] for x in done)
    lines += ["", f"{len(done)} runs; their training and scoring took {busy / 60:.0f} min of worker time in all "
              f"({busy / 60 / args.jobs:.0f} min of wall time at {args.jobs} workers); this invocation took "
              f"{(time.perf_counter() - t_start) / 60:.1f} min (runs already in {args.work} are reused, not retrained)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
