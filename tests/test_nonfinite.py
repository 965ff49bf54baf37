"""NaN/inf losses: the step is undone from the last good state, counted in metrics.jsonl, and too many stop the run."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import needs_fashion, tiny_config
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.errors import CtrlgenError
from ctrlgen.serve.cli import app
from ctrlgen.train.trainer import Trainer

RECIPES = ["ring8", pytest.param("fashion-cgan", marks=needs_fashion)]


def state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.state_tensors().items() if not k.startswith("rng.")}


def poison_step(trainer: Trainer, at: set[int], weights: bool = True):
    """Make the steps that would reach a step in ``at`` non-finite (once each): NaN weights and a NaN loss."""
    real = trainer.train_step

    def step():
        stats = real()
        if trainer.step in at:
            at.discard(trainer.step)
            if weights:
                with torch.no_grad():
                    next(trainer.G.parameters()).fill_(float("nan"))
            stats = {**stats, "d_adv": torch.tensor(float("nan"))}
        return stats

    trainer.train_step = step


def events(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == "nonfinite"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_nonfinite_step_is_undone_exactly(tmp_path, recipe):
    trainer = Trainer(tiny_config(recipe, "steps=12"), tmp_path)
    trainer.run(until=6)
    good = state(trainer)
    assert any(k.startswith("opt_g.") for k in good) and (recipe == "ring8" or any(k.startswith("ema.") for k in good))
    poison_step(trainer, {7})
    assert trainer.guard.train_step(trainer) is None
    assert trainer.step == 6 and trainer.nonfinite_events == 1
    after = state(trainer)
    assert after.keys() == good.keys()
    for k in good:
        assert torch.equal(after[k], good[k]), k  # weights, EMA, buffers, optimizer moments: as before the step


def test_a_run_goes_on_after_a_transient_nan_and_counts_it(tmp_path):
    trainer = Trainer(tiny_config("ring8", "steps=12"), tmp_path)
    poison_step(trainer, {7, 10})
    assert trainer.run() == "done" and trainer.step == 12
    ev = events(tmp_path)
    assert [(e["step"], e["restored_step"], e["terms"], e["count"]) for e in ev] == [(7, 6, ["d_adv"], 1), (10, 8, ["d_adv"], 2)]
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())
    ck = ckpt_io.load(tmp_path)
    assert ck.meta["nonfinite_events"] == 2 and ck.step == 12
    steps = [json.loads(s)["step"] for s in (tmp_path / "metrics.jsonl").read_text().splitlines() if "event" not in s]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # no step logged twice, none from an undone stretch


def test_too_many_events_stop_with_one_line_and_a_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config("ring8", "steps=50", "nonfinite_limit=3"), tmp_path)
    poison_step(trainer, {3, 5, 9, 11}, weights=False)
    with pytest.raises(CtrlgenError, match="3 non-finite .* nonfinite_limit=3; the last good state is saved in") as info:
        trainer.run()
    assert "\n" not in str(info.value) and len(events(tmp_path)) == 3
    ck = ckpt_io.load(tmp_path)
    assert ck.step == trainer.step == 8 and ck.meta["nonfinite_events"] == 3
    assert all(torch.isfinite(v).all() for k, v in ck.tensors.items() if k.startswith(("G.", "D.")))
    resumed = Trainer.resume(tmp_path, {"nonfinite_limit": 10})  # a higher limit lets it go on
    assert resumed.nonfinite_events == 3 and resumed.run() == "done"


def test_a_diverging_learning_rate_stops_the_cli_with_one_line(tmp_path):
    args = ["train", "ring8", "--steps", "200", "--no-progress", "-o", str(tmp_path / "run"), "--set", "lr_g=1e30",
            "--set", "lr_d=1e30", "--set", "nonfinite_limit=3", "--set", "net.g_width=8", "--set", "net.d_width=8"]
    result = CliRunner().invoke(app, args)
    lines = [x for x in result.output.splitlines() if x.startswith("Error")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert "nonfinite_limit=3" in lines[0] and "lower the learning rates" in lines[0]
    assert len(events(tmp_path / "run")) == 3
    assert ckpt_io.newest(tmp_path / "run") is not None
