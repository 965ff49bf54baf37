"""Pictures of a run: curves of losses and monitored metrics, and a GIF of the fixed-z samples.

``plot_run`` reads ``metrics.jsonl``: training records (losses, D accuracy)
and the monitor's records (``"event": "monitor"``), one panel per quantity,
with dashed vertical lines where the collapse detector fired, dotted ones
where it rolled back to, and orange dash-dotted ones where it warned of a
sustained decline of diversity (``"event": "decline"``).  The monitor's
``intra_diversity`` and ``recall`` panels get a grey horizontal line at the
real data's level (training images scored like generated ones, at the same
sample sizes), from the run's last ``"event": "monitor_reference"`` record.  After a rollback the step counter goes back; each
stretch between rollbacks is drawn as its own line, the abandoned ones faded.  E-GAN runs (``mode = "egan"``)
get two more panels: the fitness of the best child (F, F_q, F_d) and the share of each mutation among the
survivors over a rolling window of steps, from the per-step ``"event": "egan"`` records.  matplotlib (Agg
backend) is imported here only.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes

MARK = b"ctrlgen plot"  # the PNG's Software tag and the GIF's comment: the defaults in RUN/ are replaced only when they carry it

LOSS_KEYS = ("d_adv", "g_adv")
EGAN_KEYS = ("fitness", "f_q", "f_d")  # the best child's fitness terms (train/egan.py)
SHARES = "mutation shares"  # the panel drawn from the "egan" event records
REFERENCE_KEYS = ("intra_diversity", "recall")  # the monitored metrics drawn with the real data's level
REAL_LABEL = "real data"
SKIP = {"step", "epoch", "step_time", "samples_per_s", "wall_time", "event", "reasons", "action", "d_real", "d_fake", "healthy", "declining"}


OTHER_TERMS = "other loss terms"
FITNESS = "E-GAN: fitness of the best child (F = F_q + γ·F_d)"
# Panels whose lines are whichever of a group of quantities the run logged: a legend names them, even one alone.
GROUPED = {"losses", OTHER_TERMS, FITNESS}


def read_records(run_dir: Path) -> tuple[list[dict], list[int]]:
    """The run's records as far as they can be read, and the numbers (from 1) of the lines that could not."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        from ctrlgen.checkpoint import run_of_checkpoints

        if (run := run_of_checkpoints(run_dir)) is not None:
            raise CtrlgenError(f"{run_dir} is the checkpoints folder of a run; give the run directory itself: {run}")
        raise CtrlgenError(f"{run_dir} has no metrics.jsonl; give a run directory written by ctrlgen train")
    out, skipped = [], []
    for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
        try:
            r = json.loads(line) if line.strip() else None
        except (ValueError, RecursionError):
            r = False  # a line cut by a crash, or not JSON at all
        if isinstance(r, dict) and type(r.get("step")) is int and (r.get("event") is None or isinstance(r["event"], str)):
            out.append({k: v for k, v in r.items() if _plain_key(k) and _plain_value(k, v)})  # a tampered line: what can be read
        elif r is not None:
            skipped.append(number)
    return out, skipped


def skipped_note(path: Path, skipped: list[int]) -> str:
    """One line on the lines of ``path`` the plot left out ("" when none)."""
    if not skipped:
        return ""
    lines = f"line {skipped[0]}" if len(skipped) == 1 else f"{len(skipped)} lines (the first: line {skipped[0]})"
    return f"{path}: {lines} not a training record, left out of the plot (a last line cut by a crash is expected)"


def _plain_key(k: str) -> bool:
    return k.replace("_", "").isalnum() and k.isascii()


def _plain_value(k: str, v: object) -> bool:
    if k == "won":
        return isinstance(v, list) and all(isinstance(x, str) and _plain_key(x) for x in v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return math.isfinite(v) and abs(v) < 1e30  # beyond, matplotlib's ticks overflow
    return not isinstance(v, (dict, list))


def _segments(records: list[dict]) -> list[list[dict]]:
    """Split at rollbacks (the step counter goes back there)."""
    segs: list[list[dict]] = [[]]
    for r in records:
        if r.get("event") == "rollback":
            segs.append([])
        else:
            segs[-1].append(r)
    return [s for s in segs if s]


def _series(records: list[dict], key: str, monitor: bool) -> tuple[np.ndarray, np.ndarray]:
    rows = [(r["step"], r[key]) for r in records if key in r and isinstance(r[key], (int, float))
            and (r.get("event") == "monitor") == monitor]
    if not rows:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(rows, np.float64)
    return a[:, 0], a[:, 1]


def share_window(n_steps: int) -> int:
    """The rolling window of the mutation-share panel: about 1/20 of the run, 10 to 500 steps."""
    return int(min(500, max(10, n_steps // 20)))


def mutation_shares(records: list[dict], window: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Share of each mutation among the survivors, averaged over the last ``window`` E-GAN steps: name -> (steps, share)."""
    egan = [r for r in records if r.get("event") == "egan" and r.get("won")]
    names = sorted({m for r in egan for m in r["won"]})
    if not egan:
        return {}
    steps = np.asarray([r["step"] for r in egan], np.float64)
    kernel = np.ones(window)
    out = {}
    for name in names:
        per_step = np.asarray([r["won"].count(name) / len(r["won"]) for r in egan])
        total = np.convolve(per_step, kernel)[: len(per_step)]
        count = np.convolve(np.ones(len(per_step)), kernel)[: len(per_step)]  # the first steps average what there is
        out[name] = (steps, total / count)
    return out


def real_levels(records: list[dict]) -> dict[str, float]:
    """The real data's level of each monitored metric that has one (the last ``monitor_reference`` record)."""
    refs = [r for r in records if r.get("event") == "monitor_reference"]
    return {k: float(refs[-1][k]) for k in REFERENCE_KEYS if refs and isinstance(refs[-1].get(k), (int, float))}


def plot_run(run_dir: str | Path, out: str | Path) -> tuple[Path, list[int]]:
    """Draw the run's curves (``run_figure``) into a PNG at ``out``; also the numbers of the lines left out."""
    records, skipped = read_records(Path(run_dir))
    fig = run_figure(run_dir, records)  # (imports matplotlib, or says how to install it)
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": MARK.decode()})
    plt.close(fig)
    write_bytes(out, buf.getvalue())
    return Path(out), skipped


def run_figure(run_dir: str | Path, records: list[dict] | None = None):
    """The matplotlib figure of the run: one titled panel per quantity, one line per series (labelled with its key)."""
    try:
        import matplotlib
    except ImportError:
        raise CtrlgenError("ctrlgen plot needs matplotlib; install it with: pip install 'ctrlgen[ui]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    if records is None:
        records = read_records(run_dir)[0]
    train = [r for r in records if "event" not in r]
    monitor = [r for r in records if r.get("event") == "monitor"]
    if not train and not monitor:
        raise CtrlgenError(f"{run_dir}/metrics.jsonl has no records yet; train a few steps first")
    panels: list[tuple[str, list[str], bool]] = []
    loss_keys = [k for k in LOSS_KEYS if any(k in r for r in train)]
    extra = sorted({k for r in train for k in r if k not in SKIP and k not in LOSS_KEYS and k not in EGAN_KEYS and k != "d_acc"})
    fitness = [k for k in EGAN_KEYS if any(k in r for r in train)]
    if loss_keys:
        panels.append(("losses", loss_keys, False))
    if extra:
        panels.append((OTHER_TERMS, extra, False))
    if fitness:
        panels.append((FITNESS, fitness, False))
    if any("d_acc" in r for r in train):
        panels.append(("D accuracy", ["d_acc"], False))
    for key in sorted({k for r in monitor for k in r if k not in SKIP and k != "d_acc" and isinstance(r[k], (int, float))}):
        panels.append((f"monitor: {key}", [key], True))
    n_egan = sum(r.get("event") == "egan" for r in records)
    window = share_window(n_egan)
    if n_egan:
        panels.append((f"E-GAN: survivors' mutation, share over {window} steps", [SHARES], False))
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), squeeze=False)
    collapses = [r["step"] for r in records if r.get("event") == "collapse"]
    rollbacks = [r["step"] for r in records if r.get("event") == "rollback"]
    declines = [r["step"] for r in records if r.get("event") == "decline"]
    levels = real_levels(records)
    segments = _segments(records)
    names = sorted({m for r in records if r.get("event") == "egan" for m in r.get("won") or []})
    for ax, (title, keys, is_monitor) in zip(axes.flat, panels, strict=False):
        if keys == [SHARES]:  # one line per mutation, a colour per name
            for i, seg in enumerate(segments):
                last = i == len(segments) - 1
                for name, (x, y) in mutation_shares(seg, window).items():
                    ax.plot(x, y, color=f"C{names.index(name)}", lw=1, label=name if last else None, alpha=1.0 if last else 0.35)
            ax.set_ylim(-0.03, 1.03)
            keys = names
        for j, key in enumerate([] if keys is names else keys):
            for i, seg in enumerate(segments):
                x, y = _series(seg, key, is_monitor)
                if len(x):  # one colour per quantity; stretches abandoned by a rollback are faded
                    ax.plot(x, y, color=f"C{j}", marker="o" if is_monitor else None, ms=3, lw=1,
                            label=key if i == len(segments) - 1 else None, alpha=1.0 if i == len(segments) - 1 else 0.35)
        for s in collapses:
            ax.axvline(s, color="red", ls="--", lw=0.8)
        for s in rollbacks:
            ax.axvline(s, color="purple", ls=":", lw=1.0)
        for s in declines:
            ax.axvline(s, color="orange", ls="-.", lw=0.8)
        if is_monitor and keys[0] in levels:
            ax.axhline(levels[keys[0]], color="grey", ls="--", lw=0.8, label=REAL_LABEL)
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if title in GROUPED or (keys is names and names):
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.supxlabel("step", fontsize=8)
    fig.tight_layout()
    return fig


def samples_gif(run_dir: str | Path, out: str | Path, ms_per_frame: int = 300) -> int:
    """A GIF of samples/step-*.png in step order; returns the number of frames (0 = nothing written)."""
    from PIL import Image

    from ctrlgen.images import save_gif

    files = sorted((Path(run_dir) / "samples").glob("step-*.png"))
    frames = []
    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
        if frames and arr.shape != frames[0].shape:
            continue  # a grid of another layout (should not happen within one run)
        frames.append(arr if arr.ndim == 3 else arr[:, :, None])
    if not frames:
        return 0
    save_gif(frames, out, ms_per_frame=ms_per_frame, comment=MARK)
    return len(frames)


def check_default_output(run_dir: str | Path, path: Path) -> None:
    """``ctrlgen plot RUN`` regenerates RUN/plot.png and RUN/samples.gif without --force, so it must know them
    for its own: refuse to replace a file there that ctrlgen plot did not write (marked since this version;
    earlier ones are known by matplotlib's PNG tag, or a GIF with the run's sample-grid size)."""
    from PIL import Image

    if not (path.exists() or path.is_symlink()):
        return
    ours = False
    if path.is_file() and not path.is_symlink():
        try:
            with Image.open(path) as im:
                tag = im.info.get("Software", "") if im.format == "PNG" else im.info.get("comment", b"")
                size = im.size
                fmt = im.format
        except (OSError, ValueError, Image.DecompressionBombError):
            fmt = None
        if fmt == "PNG" and path.suffix == ".png":
            ours = str(tag).startswith((MARK.decode(), "Matplotlib"))
        elif fmt == "GIF" and path.suffix == ".gif":
            first = sorted((Path(run_dir) / "samples").glob("step-*.png"))[:1]
            legacy = False
            if not tag and first:
                with contextlib.suppress(OSError, ValueError), Image.open(first[0]) as im:
                    legacy = im.size == size
            ours = tag == MARK or legacy
    if not ours:
        raise CtrlgenError(f"{path} exists and ctrlgen plot did not write it; move it away, or write the plot elsewhere "
                           "with -o / --gif")
