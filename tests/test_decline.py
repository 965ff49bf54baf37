"""The decline warning (train/collapse.py): it fires on a recorded run that loses within-class diversity, stays quiet
on recorded healthy runs, and never makes the monitor roll back or stop; ``ctrlgen plot`` draws the series it reads.

The recordings are the monitor lines of short real training runs (tests/data/monitor/README.md has the commands).
"""

import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.train.collapse import DECLINE_CHECKS, DECLINE_WARMUP, declines, diagnose
from ctrlgen.train.monitor import BEST, Monitor
from ctrlgen.train.trainer import Trainer

DATA = Path(__file__).parent / "data" / "monitor"
HEALTHY = sorted(p.name for p in DATA.glob("healthy-*.jsonl"))  # small runs, and full-size ones (healthy-full-*)
COLLAPSING = "collapsing-cgan-no-g-batchnorm.jsonl"


def recording(name: str) -> list[dict]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(s) for s in lines if s.strip() and not s.startswith("#")]


def checks(name: str) -> list[dict]:
    return Monitor.history(recording(name))


def replay(history: list[dict], judge) -> list[tuple[int, list[str]]]:
    """(step, reasons) of every check where ``judge`` fires, judging each check on the history up to it."""
    return [(h["step"], r) for i, h in enumerate(history) if (r := judge(history[: i + 1]))]


@pytest.mark.parametrize("name", HEALTHY)
def test_the_decline_rule_stays_quiet_on_recorded_healthy_runs(name):
    history = checks(name)
    assert len(history) >= 14 and {"intra_diversity", "recall", "fd"} <= set(history[-1])
    assert replay(history, declines) == []


def test_the_decline_rule_stays_quiet_on_the_shipped_models_run():
    """The run that made models/fashion-cgan.onnx (16 epochs, a check every 500 steps): within-class diversity and
    recall rise to the end but for a dip of 0.006 in the last checks, and the rule says nothing."""
    history = checks("shipped-fashion-cgan.jsonl")
    assert [h["step"] for h in history] == list(range(500, 14992, 500))
    div, rec = [h["intra_diversity"] for h in history], [h["recall"] for h in history]
    assert div[-1] > div[0] + 0.1 and rec[-1] > rec[0] + 0.5  # a run that gains diversity, not a flat one
    assert replay(history, declines) == [] and all(h["healthy"] for h in history)


def test_the_decline_rule_fires_on_the_recorded_run_that_loses_diversity():
    history = checks(COLLAPSING)
    div = [h["intra_diversity"] for h in history]
    fired = replay(history, declines)
    assert fired, div
    step, reasons = fired[0]
    i = [h["step"] for h in history].index(step)
    best = max(div[DECLINE_WARMUP : i - DECLINE_CHECKS + 1])
    assert all(d <= 0.8 * best for d in div[i - DECLINE_CHECKS + 1 : i + 1])  # really lost a fifth, 3 checks running
    assert any(r.startswith("intra-class diversity ratio 20% or more below its best so far") for r in reasons), reasons
    assert div[-1] < 0.8 * max(div[DECLINE_WARMUP:])  # and did not get it back


@pytest.mark.parametrize("name", [*HEALTHY, COLLAPSING])
def test_the_collapse_rules_verdicts_on_the_recordings_are_unchanged(name):
    """The recorded "healthy" flags were written by the collapse rules before the decline rule existed; replaying
    ``diagnose`` gives them back, so the decline rule changed no collapse verdict (and so no rollback or stop)."""
    history = checks(name)
    unhealthy = {s for s, _ in replay(history, diagnose)}
    assert unhealthy == {h["step"] for h in history if not h["healthy"]}


def test_the_rule_needs_a_sustained_fall_after_the_warm_up():
    def hist(*div):
        return [{"intra_diversity": d} for d in div]

    assert declines(hist(0.9, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7))  # 22% below 0.9 for 3 checks
    assert not declines(hist(0.9, 0.9, 0.9, 0.9, 0.7, 0.7, 0.75))  # the last one is back within 20%
    assert not declines(hist(0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.7))  # 2 checks only
    assert not declines(hist(1.5, 1.5, 1.5, 0.5, 0.5, 0.5, 0.5))  # the warm-up's spread (untrained G) is no level reached
    assert not declines(hist(0.9, 0.7, 0.7, 0.7))  # too few checks to judge
    # Recall only from a level that is more than counting noise.
    assert not declines([{"recall": r} for r in (0, 0, 0, 0.04, 0.01, 0.01, 0.01)])
    assert "recall 35% or more below" in declines([{"recall": r} for r in (0, 0, 0, 0.2, 0.1, 0.1, 0.1)])[0]
    assert diagnose(hist(0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.6)) == []  # a warning, never a collapse reason


def scripted(values: list[dict]):
    """A ``Monitor.measure`` that returns the next of ``values`` at each check (the monitor's actions under test)."""
    it = iter(values)

    def measure(self, trainer):
        return dict(next(it))

    return measure


def test_a_declining_run_is_warned_of_never_rolled_back_and_never_becomes_best(tmp_path, monkeypatch, capfd):
    # FD keeps improving while diversity falls from 0.9 to 0.6: FD alone would pick the last check.
    div = [0.9, 0.9, 0.9, 0.9, 0.9, 0.6, 0.6, 0.6, 0.6]
    values = [{"intra_diversity": d, "fd": 50.0 - i} for i, d in enumerate(div)]
    monkeypatch.setattr(Monitor, "measure", scripted(values))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = tiny_config("ring8", f"steps={len(div)}", "monitor_every=1", "best_metric=fd", "on_collapse=rollback")
    trainer = Trainer(cfg, tmp_path)
    try:
        assert trainer.run() == "done" and trainer.step == len(div)
    finally:
        torch.set_num_threads(threads)
    logged = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    monitor = [r for r in logged if r.get("event") == "monitor"]
    assert [r["step"] for r in monitor if r.get("declining")] == [8, 9] and all(r["healthy"] for r in monitor)
    assert [r["step"] for r in logged if r.get("event") == "decline"] == [8, 9]
    assert not [r for r in logged if r.get("event") in ("rollback", "collapse")]
    best = ckpt_io.load(tmp_path / "checkpoints" / BEST)
    assert best.step == 7 and best.meta["best"]["value"] == pytest.approx(44.0)  # the last check not warned of
    assert "diversity declining at step 8: intra-class diversity ratio 20% or more below" in capfd.readouterr().err


def test_plot_draws_intra_class_diversity_and_recall_with_the_real_level_and_the_warnings(tmp_path):
    pytest.importorskip("matplotlib")
    from ctrlgen.serve.plot import REAL_LABEL, run_figure

    records = recording(COLLAPSING)
    lines, history = [], []
    for r in records:  # the recording, with the decline lines the monitor now writes
        lines.append(r)
        if r.get("event") == "monitor":
            history.append(r)
            if w := declines(history):
                lines.append({"event": "decline", "step": r["step"], "reasons": w})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    fig = run_figure(tmp_path)
    axes = {ax.get_title(): ax for ax in fig.axes}
    (ref,) = [r for r in records if r.get("event") == "monitor_reference"]
    fired = [r["step"] for r in lines if r.get("event") == "decline"]
    assert fired
    for key in ("intra_diversity", "recall"):
        ax = axes[f"monitor: {key}"]
        by_label = {ln.get_label(): ln for ln in ax.get_lines()}
        x, y = by_label[key].get_data()
        assert list(x) == [h["step"] for h in history] and list(y) == pytest.approx([h[key] for h in history])
        assert list(by_label[REAL_LABEL].get_ydata()) == pytest.approx([ref[key]] * 2)  # the real data's level, flat
        warned = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_color() == "orange"]
        assert warned == fired
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_plot_without_a_reference_record_draws_no_reference_line(tmp_path):
    pytest.importorskip("matplotlib")
    from ctrlgen.serve.plot import REAL_LABEL, plot_run, run_figure

    src = [r for r in recording(HEALTHY[0]) if r.get("event") == "monitor"]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in src))
    fig = run_figure(tmp_path)
    ax = {a.get_title(): a for a in fig.axes}["monitor: recall"]
    assert REAL_LABEL not in [ln.get_label() for ln in ax.get_lines()] and len(ax.get_lines()) == 1
    png, skipped = plot_run(tmp_path, tmp_path / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and skipped == []


def test_plot_names_a_lone_extra_loss_term(tmp_path):
    """A panel of whichever quantities a run logged names them in a legend, even one alone (mode seeking's term, one loss)."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from ctrlgen.serve.plot import OTHER_TERMS, run_figure

    rows = [{"step": s, "d_adv": 0.7, "g_adv": 1.9, "d_acc": 0.8, "mode_seeking": 1.5 - 0.01 * s} for s in range(0, 100, 10)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = run_figure(tmp_path)
    ax = {a.get_title(): a for a in fig.axes}[OTHER_TERMS]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mode_seeking"]
    plt.close(fig)
    for r in rows:  # a run that logs one loss only: that panel names it too
        del r["d_adv"]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = run_figure(tmp_path)
    ax = {a.get_title(): a for a in fig.axes}["losses"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["g_adv"]
    plt.close(fig)
