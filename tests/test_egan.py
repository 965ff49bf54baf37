"""E-GAN (train/egan.py): fitness terms by hand, selection, determinism, short runs, exact resume, bad configs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from conftest import needs_fashion, tiny_config
from ctrlgen.errors import CtrlgenError
from ctrlgen.train import egan, egan_update
from ctrlgen.train.config import load_config
from ctrlgen.train.losses import get_loss
from ctrlgen.train.trainer import Trainer

EGAN = 'mode="egan"'


def _records(run_dir, event=None):
    rows = [json.loads(s) for s in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r.get("event") == event]


def _linear_d(w: list[float], b: float):
    """D(x) = w·x + b, a logit: its loss gradient is easy to write down."""
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([w]))
        lin.bias.fill_(b)
    return lin, (lambda x, label=None: SimpleNamespace(logit=lin(x).squeeze(1)))


def test_fitness_terms_match_a_hand_computation():
    real, fake = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    bce = get_loss("nonsaturating")
    # D = 0: σ = ½ everywhere.  ∂L/∂w = -σ(-l_r)·x_r + σ(l_f)·x_f = (-1, 1), ∂L/∂b = -½ + ½ = 0.
    lin, d_fn = _linear_d([0.0, 0.0], 0.0)
    f_q, f_d = egan.fitness_terms(d_fn, list(lin.parameters()), bce, d_fn(real).logit, fake, None)
    assert f_q.item() == pytest.approx(0.5)
    assert f_d.item() == pytest.approx(-math.log(math.sqrt(2.0)), abs=1e-6)
    # D = x_1: l_r = 2, l_f = 0.  ∂L/∂w = (-2σ(-2), 1), ∂L/∂b = ½ - σ(-2).
    lin, d_fn = _linear_d([1.0, 0.0], 0.0)
    f_q, f_d = egan.fitness_terms(d_fn, list(lin.parameters()), bce, d_fn(real).logit, fake, None)
    s = 1.0 / (1.0 + math.exp(2.0))
    norm = math.sqrt((2 * s) ** 2 + 1.0 + (0.5 - s) ** 2)
    assert f_q.item() == pytest.approx(0.5)
    assert f_d.item() == pytest.approx(-math.log(norm), abs=1e-6)
    # A fake D is sure of scores low on quality: F_q = σ(-3) for the fake (0, -3) under D = x_2.
    lin, d_fn = _linear_d([0.0, 1.0], 0.0)
    f_q, _ = egan.fitness_terms(d_fn, list(lin.parameters()), bce, d_fn(real).logit, torch.tensor([[0.0, -3.0]]), None)
    assert f_q.item() == pytest.approx(1.0 / (1.0 + math.exp(3.0)))


def test_select_keeps_the_fittest_ties_to_the_earlier_and_nan_last():
    assert egan.select([0.1, 0.5, float("nan"), 0.5, 0.3], 2) == [1, 3]
    assert egan.select([0.1, 0.5, float("nan"), 0.5, 0.3], 1) == [1]
    assert egan.select([float("nan"), -1.0], 1) == [1]
    assert egan.reduce_fitness(torch.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]  # no process group: unchanged


def _rank_selects(rank: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    # Each rank measured different fitness on its own data; after the reduction both rank the same numbers.
    local = torch.tensor([[0.2, 0.6, 0.4], [1.0, 0.0, 2.0]]) if rank == 0 else torch.tensor([[0.6, 0.2, 0.4], [3.0, 0.0, 0.0]])
    fq_fd = egan.reduce_fitness(local)
    chosen = egan.select((fq_fd[0] + fq_fd[1]).tolist(), 1)
    torch.save({"reduced": fq_fd, "chosen": chosen, "local": egan.select((local[0] + local[1]).tolist(), 1)}, f"{out}.{rank}")
    dist.destroy_process_group()


@pytest.mark.slow
def test_reduced_fitness_selects_the_same_survivor_on_every_rank(tmp_path):
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available in this build")
    mp.spawn(_rank_selects, args=(f"file://{tmp_path}/pg", str(tmp_path / "r")), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"r.{i}", weights_only=True) for i in (0, 1))
    assert r0["local"] != r1["local"]  # alone, the ranks would keep different children
    assert torch.equal(r0["reduced"], r1["reduced"]) and r0["chosen"] == r1["chosen"] == [0]
    assert torch.allclose(r0["reduced"], torch.tensor([[0.4, 0.4, 0.4], [2.0, 0.0, 1.0]]))


def test_the_fittest_child_becomes_g(monkeypatch):
    """With the third child (lsgan) made the fittest, G after one step is exactly a one-mutation lsgan run's G:
    children start from the parent's weights and Adam moments, not from the previous child."""
    def favour_third(values):
        out = torch.zeros_like(values)
        out[0, 2] = 1.0
        return out

    cfg = tiny_config("ring8", "steps=1", EGAN)
    three = Trainer(cfg, "unused")
    monkeypatch.setattr(egan_update, "reduce_fitness", favour_third)
    three.train_step()
    monkeypatch.undo()
    one = Trainer(tiny_config("ring8", "steps=1", EGAN, 'egan.mutations=["lsgan"]'), "unused")
    one.train_step()
    assert three.g_update.pending[-1]["won"] == ["lsgan"]
    for (name, a), b in zip(three.G.state_dict().items(), one.G.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for p3, p1 in zip(three.G.parameters(), one.G.parameters(), strict=True):
        assert torch.equal(three.opt_g.state[p3]["exp_avg"], one.opt_g.state[p1]["exp_avg"])


@pytest.mark.slow
def test_2d_run_logs_a_survivor_per_step_and_same_seed_same_selections(tmp_path):
    runs = []
    for name in ("a", "b"):
        t = Trainer(tiny_config("ring8", "steps=8", EGAN, "egan.population=2"), tmp_path / name)
        assert t.g_update.name == "egan" and t.run() == "done"
        runs.append(_records(tmp_path / name, "egan"))
    a, b = runs
    assert [r["step"] for r in a] == list(range(1, 9))
    assert a == b  # the same survivors and fitness values, step by step
    for r in a:
        assert len(r["won"]) == 2 and len(r["fitness"]) == 6  # μ survivors of μ × 3 children
        top = max(r["fitness"])  # (values are rounded in the log: the winner is one of the children at the top)
        assert r["won"][0] in {["minimax", "nonsaturating", "lsgan"][i % 3] for i, f in enumerate(r["fitness"]) if f == top}
        assert all(f == pytest.approx(q + 0.1 * d, abs=2e-5) for f, q, d in zip(r["fitness"], r["f_q"], r["f_d"], strict=True))
    train = _records(tmp_path / "a")
    assert all({"fitness", "f_q", "f_d", "g_adv", "d_adv"} <= set(r) for r in train)
    other = Trainer(tiny_config("ring8", "steps=8", EGAN, "egan.population=2", "seed=1"), tmp_path / "c")
    other.run()
    assert _records(tmp_path / "c", "egan") != a


@pytest.mark.slow
def test_resume_is_exact_with_a_population(tmp_path):
    cfg = tiny_config("ring8", "steps=10", EGAN, "egan.population=2", "egan.g_steps=2", "techniques.ema={}")
    whole = Trainer(cfg, tmp_path / "whole")
    whole.run()
    part = Trainer(cfg, tmp_path / "part")
    part.run(until=5)
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.g_update.name == "egan" and resumed.step == 5
    resumed.run()
    a, b = whole.state_tensors(), resumed.state_tensors()
    assert a.keys() == b.keys() and any(k.startswith("population.1.") for k in a)
    for k in a:
        if not k.startswith("rng."):
            assert torch.equal(a[k], b[k]), k
    assert _records(tmp_path / "whole", "egan") == _records(tmp_path / "part", "egan")


def test_export_and_sampling_use_the_best_survivor(tmp_path):
    from ctrlgen.checkpoint import load_generator

    t = Trainer(tiny_config("ring8", "steps=4", EGAN, "egan.population=2"), tmp_path)
    t.run()
    g, _, ck = load_generator(tmp_path, prefer_ema=False)
    assert ck.meta["egan"]["population"] == 2
    for (name, a), b in zip(g.state_dict().items(), t.G.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@needs_fashion
@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["fashion-cgan", "fashion-infogan"])
def test_conditional_and_infogan_runs(tmp_path, recipe):
    t = Trainer(tiny_config(recipe, "steps=4", EGAN, "egan.eval_batch=8"), tmp_path)
    assert t.run() == "done"
    train = _records(tmp_path)
    assert len(_records(tmp_path, "egan")) == 4
    if recipe == "fashion-infogan":  # each child's loss holds the mutual-information term
        assert all({"info_cat", "info_cont"} <= set(r) for r in train)
    assert all(math.isfinite(r["fitness"]) for r in train)


def test_plot_shares_panel(tmp_path):
    from ctrlgen.serve.plot import mutation_shares, plot_run

    records = [{"event": "egan", "step": s, "won": [w]} for s, w in enumerate(["a", "a", "b", "b"], start=1)]
    shares = mutation_shares(records, window=2)
    assert shares["a"][1].tolist() == [1.0, 1.0, 0.5, 0.0]
    assert shares["b"][1].tolist() == [0.0, 0.0, 0.5, 1.0]
    Trainer(tiny_config("ring8", "steps=4", EGAN), tmp_path).run()
    assert plot_run(tmp_path, tmp_path / "p.png")[0].stat().st_size > 0


@pytest.mark.parametrize(("override", "message"), [
    ('egan.mutations=["minimax", "softmax"]', r"unknown loss\(es\) \['softmax'\]; use names from: minimax, nonsaturating"),
    ("egan.mu=2", r"unknown setting\(s\) \['mu'\]; valid: population"),
    ("egan.population=0", "must be >= 1"),
    ("egan.eval_batch=1000", "larger than batch_size=64"),
    ('egan.mutations="lsgan"', "non-empty list"),
    ('egan.mutations=["lsgan", "lsgan"]', "names a loss twice"),
    ("egan.gamma=-1", "gamma must be a number >= 0"),
    ("techniques.feature_matching.replace=true", "removes G's adversarial loss"),
])
def test_bad_egan_config_is_one_line(override, message):
    with pytest.raises(CtrlgenError, match=message) as e:
        tiny_config("ring8", EGAN, override)
    assert "\n" not in str(e.value)


def test_egan_table_needs_the_mode_and_modes_are_checked():
    with pytest.raises(CtrlgenError, match='set mode = "egan"'):
        load_config("ring8", ["egan.population=2"])
    with pytest.raises(CtrlgenError, match="mode 'evolve' is unknown; use one of standard, egan"):
        load_config("ring8", ['mode="evolve"'])
    assert load_config("ring8-egan").mode == "egan"


def test_least_squares_mutation_reads_d_probability_under_a_cross_entropy_d():
    """E-GAN's least-squares mutation is E[(D(G(z)) - 1)^2] on D's sigmoid probability (the paper, the authors'
    Theano code).  It was the LSGAN loss on D's raw logit, whose gradient grows without bound: that child
    won ~90% of the selections on quality alone and collapsed E-GAN on Fashion-MNIST."""
    logits = torch.tensor([-6.0, -2.0, 0.0, 3.0], requires_grad=True)
    m = egan.mutation_loss("lsgan", get_loss("nonsaturating"))
    m.g(logits).backward()
    p = torch.sigmoid(logits.detach())
    assert torch.allclose(m.g(logits.detach()), ((p - 1) ** 2).mean())
    # d/dl (σ(l) - 1)^2 / n = 2 (σ - 1) σ (1 - σ) / n: bounded by 0.3/n, vanishing where D is sure
    assert torch.allclose(logits.grad, 2 * (p - 1) * p * (1 - p) / 4)
    assert logits.grad.abs().max() < 0.3 / 4
    # under a least-squares D the LSGAN G loss on its score applies as it is; other mutations are the registry's
    assert egan.mutation_loss("lsgan", get_loss("lsgan")) is get_loss("lsgan")
    assert egan.mutation_loss("minimax", get_loss("nonsaturating")) is get_loss("minimax")


def test_egan_children_use_the_paper_mutations(tmp_path):
    tr = Trainer(tiny_config("ring8", "mode=egan"), tmp_path)
    logits = torch.linspace(-5, 5, 11)
    by_name = dict(tr.g_update.mutations)
    assert torch.allclose(by_name["lsgan"].g(logits), ((torch.sigmoid(logits) - 1) ** 2).mean())
