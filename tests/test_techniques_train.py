"""Every technique in a few real training steps (conv Fashion-MNIST, with labels and with InfoGAN's Q head),
the combinations rejected at config time, and exact resume with the stateful ones."""

import functools
import math

import numpy as np
import pytest
import torch

from conftest import needs_fashion, tiny_config
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.config import load_config
from ctrlgen.train.techniques import TECHNIQUES, Technique, _check_params, _load_all, register
from ctrlgen.train.trainer import Trainer

# name -> (overrides that switch it on, overrides of the baseline it is compared with)
CASES = {
    "feature_matching": (["techniques.feature_matching.weight=1.0"], []),
    "feature_matching_as_g_loss": (["techniques.feature_matching.replace=true"], []),
    "label_smoothing": (["techniques.label_smoothing.real_target=0.9"], []),
    "virtual_batchnorm": (["techniques.virtual_batchnorm.ref_size=8"], []),
    "historical_averaging": (["techniques.historical_averaging.weight=0.01"], []),
    "experience_replay": (["techniques.experience_replay.size=64", "techniques.experience_replay.ratio=0.5"], []),
    "unrolled": (["techniques.unrolled.steps=2"], []),
    "packing": (["techniques.packing.m=2"], []),
    "minibatch_discrimination": (["techniques.minibatch_discrimination.kernels=8"], []),
    "minibatch_stddev": (["techniques.minibatch_stddev={}"], []),
    "spectral_norm": (["net.d_norm=none", "techniques.spectral_norm={}"], ["net.d_norm=none"]),
    "r1": (["net.d_norm=none", "techniques.r1.gamma=1.0"], ["net.d_norm=none"]),
    "ema": (["techniques.ema.decay=0.9", "techniques.ema.warmup=false"], []),
    "n_critic": (["n_critic=2"], []),
    "ttur": (["lr_d=4e-4", "lr_g=1e-4"], []),
    "loss_minimax": (["loss=minimax"], []),
    "loss_lsgan": (["loss=lsgan"], []),
    "loss_hinge": (["loss=hinge"], []),
    "loss_wgan": (["loss=wgan", "net.d_norm=none"], ["net.d_norm=none"]),
    "loss_wgan_gp": (["loss=wgan-gp", "net.d_norm=none"], ["net.d_norm=none"]),
    "loss_dragan": (["loss=dragan", "net.d_norm=none"], ["net.d_norm=none"]),
    "semi_supervised": (["techniques.semi_supervised.labels_per_class=2"], []),
    "mode_seeking": (["techniques.mode_seeking.weight=1.0"], []),
    "catgan": (["techniques.catgan.weight=1.0"], []),
    "diffaugment": (["techniques.diffaugment={}"], []),
}
NOT_WITH_INFOGAN = {"packing", "diffaugment"}  # rejected at config time (tested below)
NOT_WITH_CGAN = {"semi_supervised", "catgan"}  # both shape Q's categorical code: InfoGAN only (rejected below)


@pytest.fixture(scope="module", autouse=True)
def _load_fashion_once():
    """Every Trainer here reads the same Fashion-MNIST arrays; read them once."""
    import ctrlgen.train.trainer as trainer_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module, "load_images", functools.lru_cache(maxsize=2)(trainer_module.load_images))
        yield


def _state(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v for k, v in t.state_tensors().items() if not k.startswith("rng.")}


def _weights(t: Trainer) -> dict[str, torch.Tensor]:
    """G, D, EMA and technique state as they are (state_tensors would recalibrate the EMA's BatchNorm: slow)."""
    out = {f"G.{k}": v for k, v in t.G.state_dict().items()}
    out.update({f"D.{k}": v for k, v in t.D.state_dict().items()})
    for tech in t.techniques:  # EMA's average among them, under ema.
        out.update({f"{tech.group()}.{k}": v for k, v in tech.state_dict().items()})
    return out


@functools.lru_cache(maxsize=8)
def _baseline(recipe: str, overrides: tuple[str, ...], steps: int) -> dict[str, torch.Tensor]:
    t = Trainer(tiny_config(recipe, *overrides), "unused")
    for _ in range(steps):
        t.train_step()
    return _weights(t)


def _smoke(recipe: str, case: str, steps: int = 2):
    on, base = CASES[case]
    t = Trainer(tiny_config(recipe, *on), "unused")
    for _ in range(steps):
        stats = t.train_step()
        assert stats and all(math.isfinite(float(v)) for v in stats.values()), stats
    mine, plain = _weights(t), _baseline(recipe, tuple(base), steps)
    changed = mine.keys() != plain.keys() or any(not torch.equal(mine[k], plain[k]) for k in mine)
    assert changed, f"{case} left training exactly as it was"
    return t, stats


@needs_fashion
@pytest.mark.parametrize("case", sorted(set(CASES) - NOT_WITH_CGAN))
def test_each_technique_trains_a_conditional_conv_gan(case):
    t, stats = _smoke("cgan", case)  # the family, not the shipped preset: that one already has EMA and VBN
    assert t.spec.conditional


@needs_fashion
@pytest.mark.parametrize("case", sorted(set(CASES) - NOT_WITH_INFOGAN))
def test_each_technique_trains_infogan_with_its_q_head(case):
    t, stats = _smoke("infogan", case)  # the family: the shipped preset already has EMA and minibatch stddev
    assert "info_cat" in stats and "info_cont" in stats


def test_penalties_and_feature_matching_show_up_in_the_logged_terms(tmp_path):
    t = Trainer(tiny_config("ring8", "techniques.feature_matching.weight=2.0", "techniques.historical_averaging.players=d", "techniques.r1.gamma=1.0"), tmp_path)
    t.train_step()
    stats = t.train_step()
    assert {"feature_matching", "d_hist_avg", "r1"} <= set(stats) and "g_hist_avg" not in stats
    assert float(stats["feature_matching"]) > 0 and float(stats["d_hist_avg"]) > 0


def test_n_critic_and_ttur_set_the_update_balance(tmp_path):
    t = Trainer(tiny_config("ring8", "n_critic=3", "lr_d=4e-4", "lr_g=1e-4"), tmp_path)
    drawn = t.batches_drawn
    t.train_step()
    t.train_step()
    assert t.batches_drawn - drawn == 6  # three D updates, each on a fresh real batch, per G update
    assert {int(s["step"]) for s in t.opt_d.state.values()} == {6}
    assert {int(s["step"]) for s in t.opt_g.state.values()} == {2}
    assert t.opt_d.param_groups[0]["lr"] == 4e-4 and t.opt_g.param_groups[0]["lr"] == 1e-4


# ------------------------------------------------------------------ combinations rejected at config time
@pytest.mark.parametrize(
    ("recipe", "overrides", "message"),
    [
        ("ring8", ["loss=wgan-gp", "techniques.label_smoothing.real_target=0.9"], "critic with no targets.*use it with minimax"),
        ("ring8", ["loss=wgan", "techniques.unrolled.steps=2"], "unrolling makes no sense with weight_clip"),
        ("ring8", ["techniques.spectral_norm={}", "net.d_norm=batch"], "sets net.d_norm='spectral' but the config sets net.d_norm='batch'"),
        ("ring8", ["techniques.minibatch_discrimination={}", "techniques.minibatch_stddev={}"], "both set net.minibatch.*use one of them"),
        ("ring8", ["techniques.spectral_norm={}", "loss=wgan"], "weight_clip and spectral normalization"),
        ("ring8", ["techniques.r1.gamma=1.0", "net.d_norm=batch"], "per-sample gradients"),
        ("fashion-infogan", ["techniques.packing.m=2"], "Q head reads one sample at a time"),
        ("fashion-cgan", ["techniques.virtual_batchnorm={}", "net.g_batchnorm=false"], "replaces G's BatchNorm"),
        ("ring8", ["techniques.historical_averaging.players=all"], "players must be one of both, g, d"),
        ("ring8", ["techniques.experience_replay.ratio=1.5"], "ratio must be in"),
        ("ring8", ["techniques.experience_replay.size=8"], "size must be >= batch_size"),
        ("ring8", ["techniques.packing.m=1"], "m must be >= 2"),
        ("fashion-cgan", ["techniques.catgan={}"], "no categorical code; use it with infogan = true"),
        ("fashion-infogan", ["techniques.catgan.weight=0"], "catgan.weight must be > 0, got 0 \\(to switch it off, remove its table"),
        ("fashion-infogan", ["techniques.catgan.weight=inf"], "catgan.weight must be a finite number, got inf"),
        ("fashion-infogan", ["techniques.catgan={}", "techniques.semi_supervised.lambda_ent=0.5"], "same term on the same images; keep one"),
        ("fashion-infogan", ["techniques.diffaugment={}"], "Q head moved and erased images"),
        ("ring8", ["techniques.diffaugment={}"], "transforms images; a 2D mixture has none"),
        ("fashion-cgan", ["techniques.diffaugment={}", "techniques.unrolled.steps=1"], "not supported.*keep one"),
        ("fashion-cgan", ["techniques.diffaugment={}", "mode=egan"], "egan.*is not supported.*keep one"),
        ("fashion-cgan", ["techniques.diffaugment.policy=translation,flip"], "comma-separated list of color, translation, cutout"),
        ("fashion-cgan", ["techniques.diffaugment.policy=cutout,cutout"], "each once"),
        ("ring8", ["techniques.unrolled.k=3"], "unknown parameter.*valid: second_order, steps"),
        ("ring8", ["techniques.feature_matching.replace=1"], "replace must be bool"),
        ("ring8", ["techniques.label_smoothing.real_target=0.2"], "real_target must be in"),
        ("ring8", ["techniques.packing.m=4", "batch_size=66"], "multiple of net.pack=4"),
        ("ring8", ["techniques.unroled.steps=3"], "unknown; use one of:.*unrolled"),
        ("ring8", ["techniques.mode_seeking={}", "batch_size=65"], "batch_size must be even"),
        ("ring8", ["techniques.mode_seeking.weight=0"], "weight must be > 0"),
        ("ring8", ["techniques.mode_seeking.weight_late=-1"], "weight_late must be >= 0"),
        ("ring8", ["techniques.mode_seeking.late_from=1.5"], "late_from is the share of the run's steps"),
        ("ring8", ["techniques.r1.gamma=-1"], "r1.gamma must be > 0, got -1"),
        ("ring8", ["techniques.r1.every=1000000000"], "r1.every must be in 1..1,000"),
        ("ring8", ["techniques.gradient_penalty.weight=-10"], "gradient_penalty.weight must be > 0"),
        ("ring8", ["techniques.dragan_penalty.scale=0"], "dragan_penalty.scale must be > 0"),
        ("ring8", ["techniques.experience_replay.size=1000000000000"], "more than half this machine's RAM"),
        ("ring8", ["techniques.ema.start=-5"], "ema.start must be >= 0, got -5 \\(the step the average starts at"),
        ("ring8", ["techniques.feature_matching.weight=-1"], "feature_matching.weight must be > 0, got -1"),
        ("fashion-infogan", ["techniques.mutual_information.lambda_cont=-0.5"], "lambda_cont must be >= 0, got -0.5"),
        ("fashion-infogan-ss", ["techniques.semi_supervised.q_warmup=1000000000"], "q_warmup .*0..100,000"),
    ],
)
def test_combinations_that_make_no_sense_are_rejected_with_the_reason(recipe, overrides, message):
    with pytest.raises(CtrlgenError, match=message):
        load_config(recipe, overrides)


_load_all()
BOUNDED = [(name, key, sign) for name, cls in sorted(TECHNIQUES.items())
           for sign, keys in ((">", cls.positive), (">=", cls.non_negative)) for key in keys]


@pytest.mark.parametrize(("name", "key", "sign"), BOUNDED)
def test_every_declared_bound_is_enforced_with_the_parameter_named(name, key, sign):
    cls = TECHNIQUES[name]
    bad = type(cls.params[key])(0 if sign == ">" else -1)
    with pytest.raises(CtrlgenError, match=rf"^techniques\.{name}\.{key} must be {sign} 0, got {bad}"):
        _check_params(name, cls, {key: bad})
    assert _check_params(name, cls, {key: cls.params[key]}) == {key: cls.params[key]}  # the default passes


def test_the_bounds_cover_the_weights_that_once_had_their_own_checks():
    declared = {(name, key) for name, key, _ in BOUNDED}
    for pair in [("feature_matching", "weight"), ("historical_averaging", "weight"), ("mode_seeking", "weight"),
                 ("mode_seeking", "eps"), ("weight_clip", "clip"), ("r1", "gamma"), ("gradient_penalty", "weight"),
                 ("dragan_penalty", "scale"), ("catgan", "weight"), ("ema", "start"), ("semi_supervised", "lambda_sup")]:
        assert pair in declared


def test_a_bound_on_a_parameter_the_technique_lacks_is_refused_at_registration():
    class Typo(Technique):
        name = "typo_technique"
        params = {"weight": 1.0}
        positive = {"wieght": ""}

    with pytest.raises(ValueError, match="bounds parameters it does not have: \\['wieght'\\]"):
        register(Typo)
    assert "typo_technique" not in TECHNIQUES


def test_a_network_option_set_both_ways_agrees():
    cfg = load_config("ring8", ["techniques.packing.m=4", "net.pack=4"])
    assert cfg.net.pack == 4
    again = cfg.replace(seed=1)  # the saved config rebuilds the same networks
    assert again.net == cfg.net and again.techniques == cfg.techniques


# ------------------------------------------------------------------ exact resume with stateful techniques
STATEFUL = {
    "ring8": [
        "techniques.experience_replay.size=128", "techniques.historical_averaging.weight=0.01",
        "techniques.unrolled.steps=2", "techniques.virtual_batchnorm.ref_size=8", "techniques.ema.decay=0.9",
        "techniques.feature_matching.weight=0.5", "techniques.label_smoothing.real_target=0.9",
    ],
    "fashion-cgan": [
        "techniques.experience_replay.size=32", "techniques.historical_averaging.weight=0.01",
        "techniques.virtual_batchnorm.ref_size=8", "techniques.unrolled.steps=1",
    ],
    # DiffAugment's draws come from the run's generator (and it is refused with unrolled)
    "fashion-cgan+diffaugment": [
        "techniques.diffaugment={}", "techniques.experience_replay.size=32", "techniques.historical_averaging.weight=0.01",
        "techniques.virtual_batchnorm.ref_size=8", "techniques.mode_seeking={}",
    ],
}


@pytest.mark.parametrize("case", ["ring8", pytest.param("fashion-cgan", marks=needs_fashion),
                                  pytest.param("fashion-cgan+diffaugment", marks=needs_fashion)])
def test_stop_and_resume_is_exact_with_stateful_techniques(tmp_path, case):
    recipe = case.split("+")[0]
    steps = 8 if recipe == "ring8" else 6
    whole = Trainer(tiny_config(recipe, f"steps={steps}", "sample_every=0", *STATEFUL[case]), tmp_path / "whole")
    whole.run()
    part = Trainer(tiny_config(recipe, f"steps={steps}", "sample_every=0", *STATEFUL[case]), tmp_path / "part")
    part.run(until=steps // 2 + 1)
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.step == steps // 2 + 1
    resumed.run()
    a, b = _state(whole), _state(resumed)
    assert any(k.startswith("tech.experience_replay.") for k in a)
    assert any(k.startswith("tech.historical_averaging.") for k in a)
    assert any("vbn_ref_z" in k for k in a)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------ VBN in the exported model
def test_vbn_export_uses_fixed_reference_statistics(tmp_path):
    import onnxruntime as ort

    from ctrlgen.export import export

    t = Trainer(tiny_config("ring8", "steps=3", "sample_every=0", "techniques.virtual_batchnorm.ref_size=16"), tmp_path / "run")
    t.run()
    report = export(tmp_path / "run", tmp_path / "vbn.onnx")
    assert report.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "vbn.onnx"), providers=["CPUExecutionProvider"])
    z = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    batch = sess.run(["sample"], {"z": z})[0]
    alone = np.concatenate([sess.run(["sample"], {"z": z[i : i + 1]})[0] for i in range(9)])
    np.testing.assert_allclose(batch, alone, atol=1e-6)  # a sample does not depend on its batch
    assert report.card["techniques"]["virtual_batchnorm"] == {"ref_size": 16}
