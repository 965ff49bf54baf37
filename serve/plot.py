"""Pictures of a run: curves of losses and monitored metrics, and a GIF of the fixed-z samples.

``plot_run`` reads ``metrics.jsonl``: training records (losses, D accuracy)
and the monitor's records (``"event": "monitor"``), one panel per quantity,
with dashed vertical lines where the collapse detector fired and dotted ones
where it rolled back to.  After a rollback the step counter goes back; each
stretch between rollbacks is drawn as its own line, the abandoned ones faded.  matplotlib (Agg backend) is imported here only.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes

LOSS_KEYS = ("d_adv", "g_adv")
SKIP = {"step", "epoch", "step_time", "samples_per_s", "wall_time", "event", "reasons", "action", "d_real", "d_fake", "healthy"}


def read_records(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise CtrlgenError(f"{run_dir} has no metrics.jsonl; give a run directory written by ctrlgen train")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    return out


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


def plot_run(run_dir: str | Path, out: str | Path) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise CtrlgenError("ctrlgen plot needs matplotlib; install it with: pip install 'ctrlgen[ui]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_records(run_dir)
    train = [r for r in records if "event" not in r]
    monitor = [r for r in records if r.get("event") == "monitor"]
    if not train and not monitor:
        raise CtrlgenError(f"{run_dir}/metrics.jsonl has no records yet; train a few steps first")
    panels: list[tuple[str, list[str], bool]] = []
    loss_keys = [k for k in LOSS_KEYS if any(k in r for r in train)]
    extra = sorted({k for r in train for k in r if k not in SKIP and k not in LOSS_KEYS and k != "d_acc"})
    if loss_keys:
        panels.append(("losses", loss_keys, False))
    if extra:
        panels.append(("other loss terms", extra, False))
    if any("d_acc" in r for r in train):
        panels.append(("D accuracy", ["d_acc"], False))
    for key in sorted({k for r in monitor for k in r if k not in SKIP and k != "d_acc" and isinstance(r[k], (int, float))}):
        panels.append((f"monitor: {key}", [key], True))
    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 2.6 * rows), squeeze=False)
    collapses = [r["step"] for r in records if r.get("event") == "collapse"]
    rollbacks = [r["step"] for r in records if r.get("event") == "rollback"]
    segments = _segments(records)
    for ax, (title, keys, is_monitor) in zip(axes.flat, panels, strict=False):
        for j, key in enumerate(keys):
            for i, seg in enumerate(segments):
                x, y = _series(seg, key, is_monitor)
                if len(x):  # one colour per quantity; stretches abandoned by a rollback are faded
                    ax.plot(x, y, color=f"C{j}", marker="o" if is_monitor else None, ms=3, lw=1,
                            label=key if i == len(segments) - 1 else None, alpha=1.0 if i == len(segments) - 1 else 0.35)
        for s in collapses:
            ax.axvline(s, color="red", ls="--", lw=0.8)
        for s in rollbacks:
            ax.axvline(s, color="purple", ls=":", lw=1.0)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        if len(keys) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.supxlabel("step", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes(out, buf.getvalue())
    return Path(out)


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
    save_gif(frames, out, ms_per_frame=ms_per_frame)
    return len(frames)
