"""Live monitoring: the collapse detector fires on a collapsing run, never on a healthy one, and rollback restores."""

import json
import shutil

import numpy as np
import pytest
import torch

from conftest import needs_fashion, tiny_config
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.collapse import diagnose
from ctrlgen.train.config import load_config
from ctrlgen.train.monitor import BEST, HEALTHY, ROLLBACK_LR_SCALE, ROLLBACK_SEED_STRIDE, Monitor
from ctrlgen.train.trainer import Trainer

# The shipped ring8 recipe (full width) reaches all 8 modes within 2,000 steps on CPU.
HEALTHY_STEPS = 2000
RING = ["progress=false", "log_every=25", "sample_every=500", "checkpoint_every=50", "keep_checkpoints=50", "monitor_every=250"]
# (a rollback restores the healthy checkpoint's optimizer, the recipe's learning rates, then scales them)
# Then the same generator trained on with the saturating minimax loss and a 10x G learning rate
# loses its modes within 50 steps (D wins outright; G's samples leave the ring).
PUSH = ["loss=minimax", "lr_g=1e-2", "monitor_every=50"]


@pytest.fixture(autouse=True)
def one_thread():
    """Small MLP batches: one thread is fastest on a busy machine, and gives the same numbers everywhere."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def records(run_dir):
    return [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]


def events(run_dir, kind):
    return [r for r in records(run_dir) if r.get("event") == kind]


@pytest.fixture(scope="module")
def healthy_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("ring8-healthy")
    trainer = Trainer(load_config("ring8", [*RING, f"steps={HEALTHY_STEPS}", "on_collapse=rollback"]), run)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (module fixtures run before the autouse one_thread)
    try:
        assert trainer.run() == "done"
    finally:
        torch.set_num_threads(threads)
    return run


def push(healthy_run, tmp_path, steps, *overrides):
    """Continue the healthy run (its weights and monitor history) with the collapsing configuration."""
    run = tmp_path / "pushed"
    shutil.copytree(healthy_run, run)
    cfg = load_config("ring8", [*RING, *PUSH, f"steps={HEALTHY_STEPS + steps}", *overrides])
    trainer = Trainer(cfg, run)
    ck = ckpt_io.load(run / "checkpoints" / f"step-{HEALTHY_STEPS:08d}.safetensors")
    trainer.G.load_state_dict(ck.group("G"))
    trainer.D.load_state_dict(ck.group("D"))
    trainer.step, trainer.batches_drawn = ck.step, ck.meta["batches_drawn"]
    return trainer, run


def test_a_healthy_run_never_fires_and_keeps_best_and_healthy_checkpoints(healthy_run):
    checks = events(healthy_run, "monitor")
    assert [c["step"] for c in checks] == list(range(250, HEALTHY_STEPS + 1, 250))
    assert all(c["healthy"] for c in checks), checks
    assert not events(healthy_run, "collapse") and not events(healthy_run, "rollback")
    assert checks[-1]["modes"] == 8 and checks[-1]["high_quality"] > 50
    assert all({"modes", "high_quality", "reverse_kl", "d_acc"} <= set(c) for c in checks)
    best = ckpt_io.load(healthy_run / "checkpoints" / BEST)
    logged = [c["reverse_kl"] for c in checks if c["reverse_kl"] is not None]
    assert best.meta["best"] == {"metric": "reverse_kl", "value": pytest.approx(min(logged), abs=1e-5)}
    assert ckpt_io.load(healthy_run / "checkpoints" / HEALTHY).step == HEALTHY_STEPS


def test_the_detector_fires_when_the_run_collapses(healthy_run, tmp_path, capfd):
    trainer, run = push(healthy_run, tmp_path, 100)
    assert trainer.run() == "done"  # warn: training goes on
    fired = events(run, "collapse")
    assert fired and fired[0]["step"] == HEALTHY_STEPS + 50 and fired[0]["action"] == "warn"
    assert any("2D modes captured fell from 8" in r for r in fired[0]["reasons"]), fired[0]
    assert not events(run, "monitor")[-1]["healthy"]
    assert "collapse detected at step 2050" in capfd.readouterr().err


def test_stop_ends_training_at_the_collapse(healthy_run, tmp_path):
    trainer, run = push(healthy_run, tmp_path, 500, "on_collapse=stop")
    assert trainer.run() == "interrupted"
    assert trainer.step == HEALTHY_STEPS + 50 and "2D modes" in trainer.monitor.stop_reason
    assert ckpt_io.newest(run).name == f"step-{HEALTHY_STEPS + 50:08d}.safetensors"


def test_rollback_restores_the_healthy_weights_and_changes_seed_and_learning_rates(healthy_run, tmp_path):
    trainer, run = push(healthy_run, tmp_path, 100)  # warn: ends collapsed at step 2100
    trainer.run()
    healthy = ckpt_io.load(run / "checkpoints" / HEALTHY)
    assert not torch.equal(trainer.G.body[0].weight, healthy.group("G")["body.0.weight"])
    old_rng = torch.Generator().manual_seed(0)
    old_rng.set_state(healthy.tensors["rng.train"])
    trainer.monitor.rollback(trainer, run / "checkpoints" / HEALTHY, 1, "test")
    for name, module in (("G", trainer.G), ("D", trainer.D)):
        for k, v in module.state_dict().items():
            assert torch.equal(v, healthy.group(name)[k]), (name, k)
    assert trainer.step == HEALTHY_STEPS and trainer.batches_drawn == healthy.meta["batches_drawn"]
    assert trainer.rng.initial_seed() == trainer.cfg.seed + ROLLBACK_SEED_STRIDE
    assert not torch.equal(torch.rand(8, generator=trainer.rng), torch.rand(8, generator=old_rng))
    for opt, key in ((trainer.opt_g, "opt_g"), (trainer.opt_d, "opt_d")):
        assert opt.param_groups[0]["lr"] == pytest.approx(healthy.meta[f"{key}.param_groups"][0]["lr"] * ROLLBACK_LR_SCALE)
    # The collapsed stretch's checkpoints are kept aside, never resumed from.
    aside = sorted(p.name for p in (run / "checkpoints" / "collapsed").iterdir())
    assert aside == ["step-00002050.safetensors", "step-00002100.safetensors"]
    assert ckpt_io.newest(run).name == "step-00002000.safetensors"
    rb = events(run, "rollback")[-1]
    assert rb["step"] == HEALTHY_STEPS and rb["from_step"] == HEALTHY_STEPS + 100
    # The history the detector replays drops the checks after the restored step.
    assert max(h["step"] for h in Monitor.history(records(run))) == HEALTHY_STEPS


def test_on_collapse_rollback_in_a_run(healthy_run, tmp_path):
    trainer, run = push(healthy_run, tmp_path, 150, "on_collapse=rollback")
    status = trainer.run()
    first = events(run, "rollback")[0]
    assert first["step"] == HEALTHY_STEPS and first["from_step"] == HEALTHY_STEPS + 50
    assert first["seed"] == ROLLBACK_SEED_STRIDE and first["lr_g"] == pytest.approx(load_config("ring8").lr_g * ROLLBACK_LR_SCALE)
    assert status in ("done", "interrupted") and len(events(run, "rollback")) <= 3


def test_monitoring_never_changes_the_training_trajectory(tmp_path):
    a = Trainer(tiny_config("ring8", "steps=12", "monitor_every=3", "monitor_samples=200"), tmp_path / "a")
    b = Trainer(tiny_config("ring8", "steps=12", "monitor_every=0"), tmp_path / "b")
    a.run()
    b.run()
    assert len(events(tmp_path / "a", "monitor")) == 4 and not events(tmp_path / "b", "monitor")
    sa, sb = a.state_tensors(), b.state_tensors()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@needs_fashion
@pytest.mark.parametrize("recipe, keys", [
    ("fashion-cgan", {"classes_covered", "kl_classes", "fd", "conditional_accuracy", "intra_diversity", "recall", "d_acc"}),
    ("fashion-infogan", {"classes_covered", "kl_classes", "fd", "purity", "consistency", "recall", "d_acc"}),
])
def test_image_runs_log_the_cheap_metrics_through_the_evaluator(tmp_path, recipe, keys):
    Trainer(tiny_config(recipe, "steps=4", "monitor_every=4", "monitor_samples=300"), tmp_path).run()
    (check,) = events(tmp_path, "monitor")
    assert keys <= set(check), check
    assert 1 <= check["classes_covered"] <= 10 and check["fd"] > 0 and 0 <= check["recall"] <= 1
    assert (tmp_path / "checkpoints" / BEST).is_file()
    # The real data's level at the same sample sizes, logged once, before the first check.
    (ref,) = events(tmp_path, "monitor_reference")
    assert ref["step"] == 4 and 0.3 < ref["recall"] <= 1 and check["recall"] < ref["recall"]
    if recipe == "fashion-cgan":
        assert 0.8 < ref["intra_diversity"] < 1.2  # real images against real images: ~1 by construction


def test_rules_need_a_fall_from_a_level_once_reached():
    assert diagnose([{"modes": 1}, {"modes": 0}]) == []  # never spread out: nothing to lose
    assert diagnose([{"modes": 8}, {"modes": 5}]) == []
    assert diagnose([{"modes": 8}, {"modes": 4}]) == ["2D modes captured fell from 8 to 4"]
    assert diagnose([{"classes_covered": 10}, {"classes_covered": 9}]) == []
    assert diagnose([{"classes_covered": 10}, {"classes_covered": 8}]) == ["classes covered fell from 10 to 8"]
    assert diagnose([{"intra_diversity": 0.2}, {"intra_diversity": 0.3}]) == []  # early G: not yet diverse
    assert "below 0.5" in diagnose([{"intra_diversity": 0.9}, {"intra_diversity": 0.3}])[0]
    assert diagnose([{"d_acc": 1.0}]) == [] and diagnose([{"d_acc": 0.7}, {"d_acc": 1.0}]) == []
    assert "pinned" in diagnose([{"d_acc": 0.995}, {"d_acc": 1.0}])[0]


def test_bad_monitoring_settings_fail_at_config_time():
    with pytest.raises(CtrlgenError, match="on_collapse 'panic' is unknown"):
        load_config("ring8", ["on_collapse=panic"])
    with pytest.raises(CtrlgenError, match="best_metric 'beauty' is unknown"):
        load_config("ring8", ["best_metric=beauty"])
    with pytest.raises(CtrlgenError, match="monitor_every must be >= 0"):
        load_config("ring8", ["monitor_every=-1"])
    assert np.isfinite(load_config("ring8", ["best_metric=modes"]).monitor_samples)


def test_train_flags_set_monitoring(tmp_path):
    from typer.testing import CliRunner

    from ctrlgen.serve.cli import app

    runner = CliRunner()
    args = ["train", "ring8", "--steps", "4", "--no-progress", "--set", "net.g_width=8", "--set", "net.d_width=8"]
    ok = runner.invoke(app, [*args, "-o", str(tmp_path / "a"), "--monitor-every", "2", "--on-collapse", "stop"])
    assert ok.exit_code == 0, ok.output
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["monitor_every"] == 2 and cfg["on_collapse"] == "stop"
    assert [r["step"] for r in events(tmp_path / "a", "monitor")] == [2, 4]
    bad = runner.invoke(app, [*args, "-o", str(tmp_path / "b"), "--on-collapse", "panic"])
    lines = bad.output.strip().splitlines()
    assert bad.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error: ")
    assert "on_collapse 'panic' is unknown; use one of warn, rollback, stop" in lines[0]
