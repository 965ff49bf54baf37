import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import needs_fashion, tiny_config
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.config import load_config, recipe_names
from ctrlgen.train.trainer import Trainer

RECIPES = ["ring8", pytest.param("fashion-cgan", marks=needs_fashion), pytest.param("fashion-infogan", marks=needs_fashion)]


def test_shipped_recipes_all_load():
    assert {"fashion-cgan", "fashion-infogan", "ring8", "grid25"} <= set(recipe_names())
    for name in recipe_names():
        load_config(name)
    info = load_config("fashion-infogan")
    assert info.latent.noise_dim == 62 and not info.conditional
    assert [(c.name, c.n) for c in info.latent.categorical] == [("c", 10)]  # the shipped model's code names
    assert [(c.name, c.low, c.high) for c in info.latent.continuous] == [("u0", -1.0, 1.0), ("u1", -1.0, 1.0)]


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_few_steps_write_checkpoint_metrics_and_samples(tmp_path, recipe):
    trainer = Trainer(tiny_config(recipe, "steps=6"), tmp_path)
    assert trainer.run() == "done"
    lines = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6]
    for r in lines:
        assert {"d_adv", "g_adv", "step_time", "samples_per_s", "d_acc"} <= set(r)
        assert all(v == v for v in r.values())  # no NaN
    assert (tmp_path / "samples" / "step-00000004.png").is_file()
    assert ckpt_io.newest(tmp_path).name == "step-00000006.safetensors"
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["steps"] == 6 and cfg["recipe"] == recipe


def _state(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v for k, v in trainer.state_tensors().items() if not k.startswith("rng.")}


@pytest.mark.parametrize("recipe", RECIPES)
def test_stop_and_resume_ends_with_the_same_weights(tmp_path, recipe):
    whole = Trainer(tiny_config(recipe, "steps=10"), tmp_path / "whole")
    whole.run()
    part = Trainer(tiny_config(recipe, "steps=10"), tmp_path / "part")
    part.run(until=5)
    assert part.step == 5
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.step == 5
    resumed.run()
    a, b = _state(whole), _state(resumed)
    assert a.keys() == b.keys()
    assert any(k.startswith("opt_g.") for k in a)
    if recipe == "fashion-cgan":
        assert any(k.startswith("ema.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(s)["step"] for s in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 10


def _rates_per_step(t) -> list[tuple[float, float]]:
    """Run ``t`` to its end, recording (G's lr, D's lr) after each step."""
    seen = []
    real_step = t.train_step

    def spy():
        out = real_step()
        seen.append((t.opt_g.param_groups[0]["lr"], t.opt_d.param_groups[0]["lr"]))
        return out

    t.train_step = spy
    t.run()
    return seen


def _whole_equals_resumed(tmp_path, overrides) -> dict:
    """A ring8 run of ``overrides`` whole, and stopped at step 8 then resumed: the same weights (returned)."""
    whole = Trainer(tiny_config("ring8", *overrides), tmp_path / "whole")
    whole.run()
    part = Trainer(tiny_config("ring8", *overrides), tmp_path / "part")
    part.run(until=8)
    resumed = Trainer.resume(tmp_path / "part")
    resumed.run()
    a, b = _state(whole), _state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    return a


def test_linear_lr_decay_follows_the_step_changes_the_weights_and_resumes_exactly(tmp_path):
    """lr_decay = linear: both lrs hold until lr_decay_start of the run, then fall linearly to 0 at its end;
    a resume lands on the same weights, and the decayed run ends elsewhere than the constant-lr one."""
    decay = ("steps=10", "lr_decay=linear", "lr_decay_start=0.6")
    t = Trainer(tiny_config("ring8", *decay), tmp_path / "probe")
    assert [round(t.lr_factor(s), 6) for s in range(11)] == [1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25, 0]
    seen = _rates_per_step(t)
    base = tiny_config("ring8", *decay).lr_g
    assert [g for g, _ in seen] == pytest.approx([base * f for f in (1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25)])
    assert [d for _, d in seen] == pytest.approx([tiny_config("ring8").lr_d * f for f in (1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25)])
    a = _whole_equals_resumed(tmp_path, decay)
    flat = Trainer(tiny_config("ring8", "steps=10"), tmp_path / "flat")
    flat.run()
    f = _state(flat)
    assert any(not torch.equal(a[k], f[k]) for k in a if k.startswith("G."))  # the schedule changed training
    with pytest.raises(CtrlgenError, match="lr_decay 'cosine' is unknown"):
        load_config("ring8", ["lr_decay=cosine"])
    with pytest.raises(CtrlgenError, match="lr_decay_start must be in"):
        load_config("ring8", ["lr_decay_start=1"])


def test_late_rates_start_the_decay_from_their_own_value_and_resume_exactly(tmp_path):
    """lr_g_late / lr_d_late: from lr_decay_start on, G's (D's) rate starts its fall from that value instead of
    lr_g (lr_d); before it nothing changes; a resume lands on the same weights; the late G rate changes G."""
    late = ("steps=10", "lr_decay=linear", "lr_decay_start=0.6", "lr_g=2e-3", "lr_d=2e-3", "lr_g_late=5e-4")
    seen = _rates_per_step(Trainer(tiny_config("ring8", *late), tmp_path / "probe"))
    factors = (1, 1, 1, 1, 1, 1, 1, 0.75, 0.5, 0.25)
    assert [g for g, _ in seen] == pytest.approx([2e-3] * 6 + [5e-4 * f for f in factors[6:]])
    assert [d for _, d in seen] == pytest.approx([2e-3 * f for f in factors])
    a = _whole_equals_resumed(tmp_path, late)
    plain = Trainer(tiny_config("ring8", *late[:-1]), tmp_path / "plain")
    plain.run()
    p = _state(plain)
    assert any(not torch.equal(a[k], p[k]) for k in a if k.startswith("G."))  # the late rate changed G's training
    with pytest.raises(CtrlgenError, match="lr_d_late must be a finite number >= 0"):
        load_config("ring8", ["lr_decay=linear", "lr_d_late=-1"])
    with pytest.raises(CtrlgenError, match="lr_g_late must be a finite number"):
        load_config("ring8", ["lr_decay=linear", "lr_g_late=inf"])  # trained to NaN before
    with pytest.raises(CtrlgenError, match="lr_g_late sets a rate for the decay, but lr_decay is none"):
        load_config("ring8", ["lr_g_late=1e-4"])


def test_resume_refuses_to_change_what_defines_the_run(tmp_path):
    Trainer(tiny_config("ring8", "steps=2"), tmp_path).run()
    with pytest.raises(CtrlgenError, match="cannot change"):
        Trainer.resume(tmp_path, {"lr_g": 1.0})
    more = Trainer.resume(tmp_path, {"steps": 4})
    more.run()
    assert more.step == 4


def test_bad_recipe_values_fail_at_config_time():
    with pytest.raises(CtrlgenError, match="unknown key"):
        load_config("ring8", ["learning_rate=1"])
    with pytest.raises(CtrlgenError, match="must be a number"):
        load_config("ring8", ["lr_g=fast"])
    with pytest.raises(CtrlgenError, match="loss 'wasserstein' is unknown"):
        load_config("ring8", ["loss=wasserstein"])
    with pytest.raises(CtrlgenError, match="technique 'magic' is unknown"):
        load_config("ring8", ["techniques.magic.x=1"])
    with pytest.raises(CtrlgenError, match="net.family"):
        load_config("ring8", ["net.family=conv"])


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "ctrlgen", "train", "ring8", "--steps", "1000000", "-o", str(run), "--no-progress",
           "--set", "net.g_width=16", "--set", "net.d_width=16", "--set", "log_every=10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "interrupted at step" in out and "Traceback" not in err
    newest = ckpt_io.newest(run)
    step = ckpt_io.load(newest).step
    assert 0 < step < 1_000_000
    resumed = Trainer.resume(run, {"steps": step + 3, "progress": False})
    assert resumed.step == step and resumed.run() == "done" and resumed.step == step + 3
