"""scripts/gpu_sweep.py's bookkeeping: where a run stands, when it will end, and what its monitor said."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("gpu_sweep", Path(__file__).resolve().parents[1] / "scripts" / "gpu_sweep.py")
gpu_sweep = importlib.util.module_from_spec(spec)
sys.modules["gpu_sweep"] = gpu_sweep  # dataclasses look their module up there
spec.loader.exec_module(gpu_sweep)


def write_lines(run: Path, lines: list[dict]) -> None:
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))


def test_step_is_the_newest_logged_step_and_zero_before_any(tmp_path):
    job = gpu_sweep.Job("a", ["true"], 0, 100, tmp_path / "run")
    assert job.step() == 0 and not job.finished()
    write_lines(job.run, [{"step": 50, "d_acc": 0.7}, {"event": "monitor", "step": 50, "purity": 0.6}, {"step": 100}])
    assert job.step() == 100 and job.finished()
    with open(job.run / "metrics.jsonl", "a") as f:
        f.write('{"step": 1')  # a line being written
    assert job.step() == 100


def test_eta_projects_the_rate_over_the_last_minute(tmp_path):
    job = gpu_sweep.Job("a", ["true"], 0, 1000, tmp_path / "run")
    write_lines(job.run, [{"step": 100}])
    assert job.eta(0.0) is None  # no rate yet
    write_lines(job.run, [{"step": 300}])
    assert job.eta(50.0) == pytest.approx(700 / (200 / 50))  # 4 steps/s, 700 to go
    write_lines(job.run, [{"step": 300}])
    assert job.eta(100.0) is None  # stalled: no rate to project


def test_monitor_purity_is_the_last_check(tmp_path):
    run = tmp_path / "run"
    assert gpu_sweep.monitor_purity(run) is None
    write_lines(run, [{"event": "monitor", "step": 300, "purity": 0.6}, {"step": 350},
                      {"event": "monitor", "step": 600, "purity": 0.71}, {"event": "monitor", "step": 900, "fd": 3.0}])
    assert gpu_sweep.monitor_purity(run) == (600, 0.71)


def test_run_lengths_follow_the_recipes():
    """The sweep's step totals are the recipes' epochs (read from their files) times Fashion-MNIST's steps per epoch."""
    from ctrlgen.train.config import load_config

    for name in ("fashion-infogan", "fashion-infogan-ss"):
        cfg = load_config(name)
        assert gpu_sweep.recipe_epochs(name) == cfg.epochs and cfg.steps == 0
        assert gpu_sweep.STEPS_PER_EPOCH == 60_000 // cfg.batch_size
