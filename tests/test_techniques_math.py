"""Each stabilizer's math on a hand-built case whose answer is known in closed form."""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_config
from ctrlgen.nets import Discriminator, DOut, Generator, MinibatchDiscrimination, MinibatchStddev
from ctrlgen.spec import LABEL, Z
from ctrlgen.train.losses import LOSSES
from ctrlgen.train.techniques import StepContext, build_techniques
from ctrlgen.train.techniques.catgan import CatGan
from ctrlgen.train.techniques.diffaugment import color, diff_augment
from ctrlgen.train.techniques.ema import EMA
from ctrlgen.train.techniques.experience_replay import ExperienceReplay
from ctrlgen.train.techniques.feature_matching import FeatureMatching, feature_distance
from ctrlgen.train.techniques.historical_averaging import HistoricalAveraging, RunningMean
from ctrlgen.train.techniques.label_smoothing import LabelSmoothing
from ctrlgen.train.techniques.mode_seeking import ModeSeeking, mode_seeking_ratio, nearby_pairs, paired
from ctrlgen.train.techniques.penalties import R1, DraganPenalty, GradientPenalty
from ctrlgen.train.techniques.unrolled import look_ahead
from ctrlgen.train.trainer import Trainer
from ctrlgen.vbn import VirtualBatchNorm


class LinearD(nn.Module):
    """D(x) = x·w: its input gradient is w everywhere, so every penalty has a closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x, label=None):
        return DOut(x @ self.w, x)


def _ctx(d, real, fake, step=1):
    run = SimpleNamespace(D=d, rng=torch.Generator().manual_seed(0), step=step, seeds=1)
    return StepContext(run, real, None, {}, fake, d(fake))


# ------------------------------------------------------------------ input-gradient penalties
def test_gradient_penalty_dragan_and_r1_match_the_closed_form_for_a_linear_d():
    d = LinearD([3.0, 4.0])  # ||grad|| = 5
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    gp = GradientPenalty(weight=10.0).d_penalty(_ctx(d, real, fake))["gp"]
    assert gp.item() == pytest.approx(10 * (5 - 1) ** 2)
    assert DraganPenalty(weight=2.0).d_penalty(_ctx(d, real, fake))["dragan"].item() == pytest.approx(2 * 16)
    assert R1(gamma=10.0).d_penalty(_ctx(d, real, fake))["r1"].item() == pytest.approx(0.5 * 10 * 25)
    # the penalty trains D: d/dw 10·(||w|| − 1)² = 20·(||w|| − 1)·w/||w||
    (grad,) = torch.autograd.grad(gp, d.w)
    assert torch.allclose(grad, torch.tensor([48.0, 64.0]))


def test_gradient_penalty_is_taken_at_interpolates_and_r1_is_lazy():
    class Quadratic(nn.Module):  # D(x) = ½||x||², input gradient x: the norm says where it was taken
        def forward(self, x, label=None):
            return DOut(0.5 * (x * x).sum(1), x)

    a = torch.tensor([[3.0, 4.0]]).repeat(8, 1)
    gp = GradientPenalty(weight=1.0).d_penalty(_ctx(Quadratic(), a, a.clone()))["gp"]
    assert gp.item() == pytest.approx(16.0)  # every interpolate of a and a is a: ||a|| = 5
    far = GradientPenalty(weight=1.0).d_penalty(_ctx(Quadratic(), a, torch.zeros_like(a)))["gp"]
    assert far.item() < 16.0  # interpolates towards 0 have smaller norms
    lazy = R1(gamma=10.0, every=2)
    assert lazy.d_penalty(_ctx(LinearD([3.0, 4.0]), a, a, step=1)) is None
    assert lazy.d_penalty(_ctx(LinearD([3.0, 4.0]), a, a, step=2))["r1"].item() == pytest.approx(2 * 125.0)


# ------------------------------------------------------------------ label smoothing
@pytest.mark.parametrize("loss", ["minimax", "nonsaturating", "lsgan", "hinge", "dragan"])
def test_one_sided_label_smoothing_moves_only_the_real_target(loss):
    smoothed = LabelSmoothing(real_target=0.9).wrap_loss(LOSSES[loss])
    plain = LOSSES[loss]
    r, f = torch.randn(32), torch.randn(32)
    f2 = f + 1.0
    # fake targets stay 0: changing the fakes changes both losses by the same amount
    assert (smoothed.d(r, f2) - smoothed.d(r, f)).item() == pytest.approx((plain.d(r, f2) - plain.d(r, f)).item(), abs=1e-6)
    assert smoothed.d(r, f).item() != pytest.approx(plain.d(r, f).item())


def test_smoothed_bce_is_minimized_where_d_says_alpha():
    loss = LabelSmoothing(real_target=0.9).wrap_loss(LOSSES["nonsaturating"])
    r = torch.tensor([math.log(0.9 / 0.1)], requires_grad=True)  # σ(r) = 0.9
    (g,) = torch.autograd.grad(loss.d(r, torch.zeros(1)), r)
    assert abs(g.item()) < 1e-6
    r1 = torch.tensor([5.0], requires_grad=True)  # σ = 0.993 > 0.9: smoothing pushes it back down
    (g1,) = torch.autograd.grad(loss.d(r1, torch.zeros(1)), r1)
    assert g1.item() > 0


# ------------------------------------------------------------------ minibatch features
def test_minibatch_discrimination_sees_identical_vs_distinct_samples():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(4, kernels=3, dim=2)
    same = layer(torch.ones(5, 4))
    assert same.shape == (5, 7)
    assert torch.allclose(same[:, 4:], torch.full((5, 3), 4.0))  # Σ_{j≠i} exp(0) = B − 1
    distinct = layer(torch.arange(5.0)[:, None].repeat(1, 4) * 100)
    assert distinct[:, 4:].abs().max() < 1e-3  # exp(−large L1) ≈ 0
    assert torch.equal(distinct[:, :4], torch.arange(5.0)[:, None].repeat(1, 4) * 100)  # features pass through


def test_minibatch_stddev_appends_the_batch_spread():
    layer = MinibatchStddev(2)
    assert layer(torch.ones(4, 2))[:, 2].max() < 1e-3
    spread = layer(torch.tensor([[0.0, 0.0], [2.0, 4.0]]))  # per-feature std 1 and 2 -> mean 1.5
    assert torch.allclose(spread[:, 2], torch.full((2,), 1.5), atol=1e-4)


# ------------------------------------------------------------------ virtual batch norm
def test_vbn_normalizes_with_the_reference_statistics_combined_with_the_example():
    torch.manual_seed(0)
    vbn = VirtualBatchNorm(3, n_ref=4)
    ref, x = torch.randn(4, 3) * 2 + 1, torch.randn(2, 3)
    out = vbn(torch.cat([ref, x]))  # training mode: the reference batch runs in front
    assert torch.allclose(vbn.ref_mean, ref.mean(0)) and torch.allclose(vbn.ref_sq, (ref * ref).mean(0))
    c = 1 / 5  # 1 / (N_ref + 1)
    mean = c * x + (1 - c) * ref.mean(0)
    var = c * x * x + (1 - c) * (ref * ref).mean(0) - mean**2
    assert torch.allclose(out[4:], (x - mean) / torch.sqrt(var + 1e-5), atol=1e-5)
    ref_var = ref.var(0, unbiased=False)  # the reference rows are normalized by their own statistics
    assert torch.allclose(out[:4], (ref - ref.mean(0)) / torch.sqrt(ref_var + 1e-5), atol=1e-5)
    vbn.eval()  # eval: fixed buffers, each example on its own
    assert torch.allclose(vbn(x), out[4:], atol=1e-6)
    assert torch.allclose(vbn(x[:1]), vbn(x)[:1])


def test_vbn_maps_also_work_per_channel():
    vbn = VirtualBatchNorm(2, n_ref=3)
    h = torch.randn(5, 2, 4, 4)
    vbn(h)
    assert torch.allclose(vbn.ref_mean, h[:3].mean((0, 2, 3)), atol=1e-6)


@pytest.mark.parametrize("recipe", ["ring8", "fashion-cgan"])
def test_a_vbn_generator_samples_do_not_depend_on_their_batch(recipe):
    cfg = tiny_config(recipe, "techniques.virtual_batchnorm.ref_size=8")
    g = Generator(cfg.spec(cfg.default_class_names() or ("a", "b")), cfg.net)
    assert sum(isinstance(m, VirtualBatchNorm) for m in g.modules()) >= 2
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in g.modules())
    inputs = {k: torch.from_numpy(v) for k, v in g.spec.sample(6, seed=1).items()}
    g.train()
    g(**inputs)  # refreshes the reference statistics from the reference batch
    g.eval()
    full = g(**inputs)
    one = g(**{k: v[2:3] for k, v in inputs.items()})
    assert torch.allclose(full[2:3], one, atol=1e-6)


# ------------------------------------------------------------------ experience replay
def test_replay_mixes_the_ratio_of_old_fakes_with_their_labels():
    er = ExperienceReplay(size=16, ratio=0.5)
    er.rng = torch.Generator().manual_seed(0)
    first = torch.arange(8.0)[:, None].repeat(1, 2)  # sample i is (i, i) with label i
    out, inputs = er.fake_for_d(first, {LABEL: torch.arange(8)})
    assert torch.equal(out, first) and er.buffer.filled == 4  # nothing to replay yet; the first half is stored
    second = 100 + torch.arange(8.0)[:, None].repeat(1, 2)
    out, inputs = er.fake_for_d(second, {LABEL: 100 + torch.arange(8)})
    assert (out[:4, 0] < 4).all()  # the first half replays stored fakes of batch 1
    assert torch.equal(out[4:], second[4:])  # the rest is fresh
    assert torch.equal(inputs[LABEL], out[:, 0].long())  # every sample keeps its own label
    assert er.buffer.filled == 8 and set(er.buffer.data["sample"][0, 4:8, 0].tolist()) == {100.0, 101.0, 102.0, 103.0}
    clone = ExperienceReplay(size=16, ratio=0.5)
    clone.rng = torch.Generator()
    clone.load_state_dict(er.state_dict())
    assert clone.buffer.filled == 8 and torch.equal(clone.buffer.data["sample"], er.buffer.data["sample"])


def test_replay_keeps_the_seeds_of_an_ensemble_apart():
    """Two seeds' blocks (train/ensemble.py): each block replays only its own seed's past fakes."""
    er = ExperienceReplay(size=8, ratio=0.5)
    er.rng = torch.Generator().manual_seed(0)
    er.buffer.groups = 2
    for step in range(6):
        fake = torch.cat([torch.full((4, 2), 10.0 * step), torch.full((4, 2), -10.0 * step - 1)])  # seed 0 >= 0, seed 1 < 0
        out, _ = er.fake_for_d(fake, {})
        assert (out[:4] >= 0).all() and (out[4:] < 0).all()
    assert er.buffer.filled == 8 and set(out[:2, 0].tolist()) < {10.0 * s for s in range(6)}


# ------------------------------------------------------------------ unrolled GAN
def test_unrolling_matches_a_real_adam_step_and_leaves_d_untouched(tmp_path):
    t = Trainer(tiny_config("ring8", "steps=4"), tmp_path)
    t.train_step()  # D's optimizer has moments now
    before = {k: v.clone() for k, v in t.D.state_dict().items()}
    opt_before = copy.deepcopy(t.opt_d.state_dict())
    rng, drawn = t.rng.get_state(), t.batches_drawn
    ahead = look_ahead(t.run_context, steps=1, second_order=False)
    for k, v in t.D.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(torch.equal(a, b) for a, b in zip(_flat(t.opt_d.state_dict()), _flat(opt_before), strict=True))
    # the same look-ahead by hand: one Adam step of a copy of D on the same batches
    t.rng.set_state(rng)
    t.batches_drawn = drawn
    d = copy.deepcopy(t.D)
    opt = torch.optim.Adam(d.parameters(), lr=t.cfg.lr_d, betas=(t.cfg.beta1, t.cfg.beta2))
    opt.load_state_dict(t.opt_d.state_dict())
    real, _ = t.next_real()
    with torch.no_grad():
        fake = t.G(**t.sample_latent(real.shape[0]))
    opt.zero_grad()
    t.loss.d(d(real).logit, d(fake).logit).backward()
    opt.step()
    for k, p in d.named_parameters():
        assert torch.allclose(ahead[k], p, atol=1e-6), k
        assert not torch.equal(ahead[k], before[k]), k


def test_second_order_unrolling_changes_gs_gradient(tmp_path):
    grads = {}
    for second in (False, True):
        t = Trainer(tiny_config("ring8", "steps=4", "techniques.unrolled.steps=3", f"techniques.unrolled.second_order={str(second).lower()}"), tmp_path / str(second))
        t.train_step()
        d = t.techniques[0].d_for_g(t.run_context, t.D)
        inputs = t.sample_latent(64)
        loss = t.loss.g(d(t.G(**inputs)).logit)
        grads[second] = torch.autograd.grad(loss, list(t.G.parameters()))
    assert all(torch.isfinite(g).all() for g in grads[True])
    assert not all(torch.allclose(a, b) for a, b in zip(grads[False], grads[True], strict=True))


def _flat(opt_state):
    return [v for st in opt_state["state"].values() for v in st.values() if torch.is_tensor(v)]


# ------------------------------------------------------------------ spectral norm, EMA, averaging, feature matching
@pytest.mark.parametrize("recipe", ["ring8", "fashion-cgan"])
def test_spectral_norm_makes_every_weights_sigma_one(recipe):
    cfg = tiny_config(recipe, "techniques.spectral_norm={}", "net.d_norm=none")
    assert cfg.net.d_norm == "spectral"
    torch.manual_seed(0)
    d = Discriminator(cfg.spec(("a", "b")), cfg.net, q_head=False)
    x = torch.randn(8, *cfg.spec(("a", "b")).output_shape)
    layers = [m for m in d.modules() if hasattr(m, "parametrizations")]
    with torch.no_grad():
        for m in layers:
            m.parametrizations.weight.original.mul_(3.0)  # raw weights far from sigma = 1
    for _ in range(30):  # one power iteration per training-mode forward
        d(x, torch.zeros(8, dtype=torch.long))
    assert len(layers) >= 3
    for m in layers:
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        raw = m.parametrizations.weight.original.detach().reshape(w.shape[0], -1)
        assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.02)
        assert abs(torch.linalg.matrix_norm(raw, ord=2).item() - 1.0) > 0.2  # the normalization did the work


def test_ema_decays_towards_g_with_the_warmup_schedule():
    ema = EMA(decay=0.99, warmup=True)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10_000) == pytest.approx(0.99)
    g = nn.Linear(1, 1, bias=False)
    nn.init.constant_(g.weight, 2.0)
    run = SimpleNamespace(G=g)
    ema.setup(run)
    nn.init.constant_(g.weight, 12.0)
    run.step = 10_000
    ema.after_g_step(run)
    assert ema.average.weight.item() == pytest.approx(0.99 * 2 + 0.01 * 12)
    assert ema.state_dict()["weight"].item() == pytest.approx(0.99 * 2 + 0.01 * 12)  # checkpointed under ema.
    assert g.weight.item() == 12.0


def test_historical_average_penalizes_distance_to_the_mean_of_past_parameters():
    rm = RunningMean()
    assert rm.penalty([torch.tensor([5.0])]) is None
    for v in (1.0, 3.0, 8.0):
        rm.add([torch.tensor([v])])
    assert rm.mean[0].item() == pytest.approx(4.0)
    assert rm.penalty([torch.tensor([6.0])]).item() == pytest.approx(4.0)
    ha = HistoricalAveraging(weight=0.5, players="d")
    d = LinearD([1.0, 1.0])
    ctx = _ctx(d, torch.zeros(2, 2), torch.zeros(2, 2))
    ctx.run.G = d
    assert ha.d_penalty(ctx) is None  # the first D iterate starts the average
    with torch.no_grad():
        d.w += torch.tensor([2.0, 0.0])
    assert ha.d_penalty(ctx)["d_hist_avg"].item() == pytest.approx(0.5 * 4.0)  # mean of past = (1, 1)
    assert ha.g_penalty(ctx) is None  # players = d
    fresh = HistoricalAveraging(weight=0.5, players="d")
    fresh.load_state_dict(ha.state_dict())
    assert fresh.means["D"].count == 2 and torch.allclose(fresh.means["D"].mean[0], torch.tensor([2.0, 1.0]))


def test_mode_seeking_pairs_samples_that_differ_only_in_z_and_rewards_distance():
    inputs = {Z: torch.arange(16.0).reshape(8, 2), LABEL: torch.arange(8), "code_cont": torch.arange(8.0)[:, None]}
    one = paired(inputs)
    assert torch.equal(one[Z], inputs[Z])  # the noise is left as drawn
    assert one[LABEL].tolist() == [0, 1, 2, 3, 0, 1, 2, 3] and one["code_cont"][:, 0].tolist() == [0, 1, 2, 3] * 2
    two = paired(inputs, blocks=2)  # an ensemble of 2 seeds pairs within each seed's block of 4
    assert two[LABEL].tolist() == [0, 1, 0, 1, 4, 5, 4, 5]
    # images 1 apart for z 2 apart, in every pair: d = 1/2
    z = torch.zeros(4, 3)
    z[2:] = 2.0
    fake = torch.zeros(4, 1, 2, 2, requires_grad=True)
    with torch.no_grad():
        fake[2:] = 1.0
    assert mode_seeking_ratio(fake, z).tolist() == pytest.approx([0.5])
    z2 = torch.arange(4.0)[:, None].expand(4, 3)  # as 2 blocks the pairs are (0, 1) and (2, 3): images 0 and 0 apart
    assert mode_seeking_ratio(fake, z2, blocks=2).tolist() == pytest.approx([0.0, 0.0])
    ms = ModeSeeking(weight=3.0, eps=1e-5)
    run = SimpleNamespace(seeds=1, step=90, total_steps=100)
    value = ms.g_penalty(StepContext(run, None, None, {Z: z}, fake, None))["mode_seeking"]
    assert value.item() == pytest.approx(3.0 / (0.5 + 1e-5))
    # weight_late takes over from step late_from x the run's steps
    sched = ModeSeeking(weight=3.0, eps=1e-5, weight_late=1.0, late_from=0.5)
    at = lambda step: sched.g_penalty(StepContext(SimpleNamespace(seeds=1, step=step, total_steps=100), None, None, {Z: z},  # noqa: E731
                                                  fake, None))["mode_seeking"].item()
    assert at(49) == pytest.approx(3.0 / (0.5 + 1e-5)) and at(50) == at(99) == pytest.approx(1.0 / (0.5 + 1e-5))
    # minimizing it pushes the pair apart: the gradient on the second half points away from the first
    (g,) = torch.autograd.grad(value, fake)
    assert (g[2:] < 0).all() and (g[:2] > 0).all()


def test_catgan_spreads_real_images_leaning_to_one_value_over_every_value_and_makes_each_call_confident():
    """The term on Q's logits for 40 real images, every one leaning to value 0 (all 40 called 0): minimizing it
    moves the calls onto all 4 values, none left with more than 15, and each call becomes confident.  Two codes
    give two terms (the second code's images spread too); without a real batch (G's step) there is no term."""
    torch.manual_seed(0)
    logits = (torch.randn(40, 4) * 0.1 + torch.tensor([0.5, 0, 0, 0])).requires_grad_()
    other = (torch.randn(40, 3) * 0.1 + torch.tensor([0.5, 0, 0])).requires_grad_()
    assert torch.bincount(logits.argmax(1), minlength=4).tolist() == [40, 0, 0, 0]
    tech = CatGan(weight=2.0)
    opt = torch.optim.SGD([logits, other], lr=0.5)
    for _ in range(1000):
        out = DOut(torch.zeros(40), torch.zeros(40, 1), q_cat=[logits, other])
        terms = tech.d_penalty(StepContext(SimpleNamespace(), torch.zeros(40, 1), None, {}, torch.zeros(40, 1), out, out_real=out))
        opt.zero_grad()
        terms["d_catgan"].backward()
        opt.step()
    p = torch.softmax(logits.detach(), 1)
    counts = torch.bincount(p.argmax(1), minlength=4)
    assert counts.min() >= 5 and counts.max() <= 15, counts
    assert p.max(1).values.min() > 0.9
    assert torch.bincount(other.detach().argmax(1), minlength=3).min() >= 5
    # the value: the weight times the sum of the codes' gaps (sure and even: -log 2; unsure: 0)
    out = DOut(torch.zeros(2), torch.zeros(2, 1), q_cat=[torch.eye(2) * 40, torch.zeros(2, 3)])
    ctx = StepContext(SimpleNamespace(), torch.zeros(2, 1), None, {}, torch.zeros(2, 1), out, out_real=out)
    assert tech.d_penalty(ctx)["d_catgan"].item() == pytest.approx(2.0 * -math.log(2), abs=1e-4)
    assert tech.d_penalty(StepContext(SimpleNamespace(), None, None, {}, torch.zeros(2, 1), out)) is None


def test_mode_seeking_makes_g_batches_in_pairs_during_training():
    t = Trainer(tiny_config("cgan", "techniques.mode_seeking={}"), "unused")
    seen = []
    t.G.register_forward_pre_hook(lambda m, args, kw: seen.append({k: v.clone() for k, v in kw.items()}), with_kwargs=True)
    t.train_step()
    g_batch = seen[-1]  # the G step's batch comes after D's
    half = g_batch[LABEL].shape[0] // 2
    assert torch.equal(g_batch[LABEL][:half], g_batch[LABEL][half:])
    assert not torch.equal(g_batch[Z][:half], g_batch[Z][half:])
    d_batch = seen[0]
    assert not torch.equal(d_batch[LABEL][:half], d_batch[LABEL][half:])  # D's fakes are drawn as before


def test_nearby_pairs_put_each_second_noise_close_to_its_first():
    z = torch.randn(8, 62, generator=torch.Generator().manual_seed(0))
    near = nearby_pairs(z, 1, 0.1, torch.Generator().manual_seed(1), uniform=False)
    assert torch.equal(near[:4], z[:4])  # the first half is left as drawn
    step = (near[4:] - near[:4]).abs().mean().item()
    assert 0.06 < step < 0.10  # 0.1 x E|N(0, 1)| = 0.08, where two fresh draws are 1.13 apart
    again = nearby_pairs(z, 1, 0.1, torch.Generator().manual_seed(1), uniform=False)
    assert torch.equal(near, again)  # drawn from the run's generator: a resume draws the same
    two = nearby_pairs(z, 2, 0.1, torch.Generator().manual_seed(1), uniform=False)  # each seed's block pairs within itself
    assert torch.equal(two[:2], z[:2]) and torch.equal(two[4:6], z[4:6]) and (two[2:4] - z[:2]).abs().max() < 0.6
    u = nearby_pairs(torch.full((4, 3), 0.99), 1, 0.5, torch.Generator().manual_seed(2), uniform=True)
    assert u.abs().max() <= 1.0  # uniform noise stays in its support


def test_mode_seeking_with_nearby_pairs_trains_on_neighbours_and_changes_training():
    def g_batch_and_weights(*extra):
        torch.manual_seed(0)
        t = Trainer(tiny_config("cgan", "techniques.mode_seeking={}", *extra), "unused")
        seen = []
        t.G.register_forward_pre_hook(lambda m, args, kw: seen.append({k: v.clone() for k, v in kw.items()}), with_kwargs=True)
        t.train_step()
        t.train_step()
        return seen[-1], torch.cat([p.detach().flatten() for p in t.G.parameters()])

    fresh, w_fresh = g_batch_and_weights()
    near, w_near = g_batch_and_weights("techniques.mode_seeking.pair_scale=0.1")
    half = near[LABEL].shape[0] // 2
    assert torch.equal(near[LABEL][:half], near[LABEL][half:])
    assert (near[Z][half:] - near[Z][:half]).abs().mean() < 0.15 < (fresh[Z][half:] - fresh[Z][:half]).abs().mean()
    assert not torch.allclose(w_fresh, w_near)  # the option changes what G learns


# ------------------------------------------------------------------ DiffAugment
def _garments(n=32):
    """Images in [-1, 1] on a black (-1) background, each a bright 6 x 6 block well inside the frame."""
    x = torch.full((n, 1, 28, 28), -1.0)
    x[:, :, 11:17, 11:17] = torch.linspace(0.2, 1.0, n)[:, None, None, None]
    return x


def test_diffaugment_translation_moves_each_image_by_at_most_an_eighth_and_keeps_it_whole():
    x = _garments()
    out = diff_augment(x, ("translation",), torch.Generator().manual_seed(0))
    moves = set()
    for a, b in zip(x, out, strict=True):
        ya, xa = torch.nonzero(a[0] > -1).min(0).values
        yb, xb = torch.nonzero(b[0] > -1).min(0).values
        dy, dx = int(yb - ya), int(xb - xa)
        assert max(abs(dy), abs(dx)) <= 4  # 28 / 8, rounded
        assert torch.equal(b, torch.roll(a, (dy, dx), (1, 2)))  # the same garment, moved; nothing lost or added
        moves.add((dy, dx))
    assert len(moves) > 10  # drawn per image


def test_diffaugment_cutout_erases_one_square_of_half_the_side_to_the_background():
    x = torch.ones(64, 1, 28, 28)
    out = diff_augment(x, ("cutout",), torch.Generator().manual_seed(0))
    for b in out:
        rows, cols = torch.nonzero(b[0] == -1).unbind(1)
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert h * w == rows.numel()  # one rectangle, the square clipped at the borders
        assert 7 <= h <= 14 and 7 <= w <= 14 and set(b.unique().tolist()) == {-1.0, 1.0}
    assert (out == -1).float().sum((1, 2, 3)).max() == 196  # some squares lie wholly inside: 14 x 14


def test_diffaugment_color_shifts_brightness_and_scales_contrast_within_the_papers_ranges():
    x = _garments(256) + 0.01 * torch.randn(256, 1, 28, 28)
    out = color(x, torch.Generator().manual_seed(0))
    shift = (out.mean((1, 2, 3)) - x.mean((1, 2, 3)))
    scale = (out - out.mean((1, 2, 3), keepdim=True)).std((1, 2, 3)) / (x - x.mean((1, 2, 3), keepdim=True)).std((1, 2, 3))
    assert shift.abs().max() <= 0.5 + 1e-5 and shift.std() > 0.2  # U(-0.5, 0.5)
    assert 0.5 - 1e-4 <= scale.min() and scale.max() <= 1.5 + 1e-4 and scale.std() > 0.2  # U(0.5, 1.5); one channel: no saturation


def test_diffaugment_is_differentiable_and_repeats_with_the_generator_state():
    x = _garments().requires_grad_(True)
    diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(3)).sum().backward()
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}  # a pixel D sees passes its gradient; moved out or erased: none
    x.grad = None
    out = diff_augment(x, ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    (out ** 2).sum().backward()
    assert x.grad.abs().sum() > 0 and torch.isfinite(x.grad).all()
    again = diff_augment(x.detach(), ("color", "translation", "cutout"), torch.Generator().manual_seed(3))
    assert torch.equal(out.detach(), again)
    gen = torch.Generator().manual_seed(3)
    first, second = diff_augment(x.detach(), ("translation",), gen), diff_augment(x.detach(), ("translation",), gen)
    assert not torch.equal(first, second)  # fresh draws per call


@pytest.mark.parametrize("on", [False, True])
def test_diffaugment_shows_d_transformed_reals_and_fakes_in_both_steps_and_leaves_gs_images_alone(on):
    t = Trainer(tiny_config("cgan", *(["techniques.diffaugment.policy=cutout"] if on else [])), "unused")
    d_in, g_out = [], []
    t.D.register_forward_pre_hook(lambda m, args: d_in.append(args[0].detach().clone()))
    t.G.register_forward_hook(lambda m, args, out: g_out.append(out.detach().clone()))
    t.train_step()
    real = t.last_real[0]
    seen_real, seen_fake_d, seen_fake_g = d_in[0], d_in[1], d_in[-1]
    erased = lambda shown, raw: ((shown == -1) & (raw > -1)).flatten(1).any(1)  # noqa: E731
    if on:  # every image D saw has pixels the original did not have at -1: the erased square
        assert erased(seen_real, real).float().mean() > 0.9
        assert erased(seen_fake_d, g_out[0]).float().mean() > 0.9
        assert erased(seen_fake_g, g_out[-1]).float().mean() > 0.9
        assert not erased(g_out[-1], g_out[-1]).any()  # G's images themselves are whole (mode seeking compares them)
    else:
        assert torch.equal(seen_real, real) and torch.allclose(seen_fake_g, g_out[-1])


def test_feature_matching_is_the_squared_distance_of_mean_features():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    value = feature_distance(real, fake)
    assert value.item() == pytest.approx(1.0**2 + 2.0**2)
    (g,) = torch.autograd.grad(value, fake)
    assert torch.allclose(g, -torch.tensor([[1.0, 2.0], [1.0, 2.0]]))  # d/d fake_i = −2·diff/B
    fm = FeatureMatching(weight=3.0)
    ctx = _ctx(LinearD([0.0, 0.0]), real, fake)
    assert fm.g_penalty(ctx)["feature_matching"].item() == pytest.approx(15.0)
    replaced = FeatureMatching(replace=True).wrap_loss(LOSSES["nonsaturating"])
    assert replaced.g(torch.randn(4)).item() == 0.0 and replaced.d is LOSSES["nonsaturating"].d


def test_techniques_build_in_a_fixed_order():
    cfg = tiny_config("ring8", "techniques.unrolled.steps=1", "techniques.ema.decay=0.9", "techniques.feature_matching.weight=1.0")
    # (the ring8 recipe itself brings R1 and EMA)
    assert [t.name for t in build_techniques(cfg)] == ["ema", "feature_matching", "r1", "unrolled"]


def test_packing_makes_d_judge_m_samples_at_once():
    cfg = tiny_config("ring8", "techniques.packing.m=4")
    assert cfg.net.pack == 4
    d = Discriminator(cfg.spec(()), cfg.net, q_head=False)
    x = torch.randn(8, 2)
    assert d(x).logit.shape == (2,)
    assert torch.allclose(d(x).logit[0], d(torch.cat([x[:4], torch.zeros(4, 2)])).logit[0])  # pack 0 is samples 0-3
    assert np.isfinite(d(x).logit.detach().numpy()).all() and Z == "z"


def test_vbn_buffers_match_the_weights_after_each_g_step(tmp_path):
    t = Trainer(tiny_config("ring8", "techniques.virtual_batchnorm.ref_size=8"), tmp_path)
    t.train_step()
    vbn = next(m for m in t.G.modules() if isinstance(m, VirtualBatchNorm))
    stored = vbn.ref_mean.clone()
    g = copy.deepcopy(t.G).train()  # recompute the reference statistics with the current weights
    g(**{k: v[:0] for k, v in ((n, getattr(g, f"vbn_ref_{n}")) for n in g.ref_names)})
    fresh = next(m for m in g.modules() if isinstance(m, VirtualBatchNorm)).ref_mean
    assert torch.equal(stored, fresh)
