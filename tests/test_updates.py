"""The trainer's pieces: G updates (standard, E-GAN) over one G-terms function, the spec's one sampler,
EMA owning its average, the population's own state, and techniques that see a RunContext, not the trainer."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.spec import CODE_CAT, CODE_CONT, LABEL, CategoricalCode, ContinuousCode, LatentSpec, Z
from ctrlgen.train import updates
from ctrlgen.train.latent import sample_latent
from ctrlgen.train.techniques import RunContext
from ctrlgen.train.trainer import Trainer
from ctrlgen.train.updates import G_UPDATES

EGAN = 'mode="egan"'
SPEC = LatentSpec(
    noise_dim=3, output_kind="image", output_shape=(1, 28, 28), labels=("a", "b", "c"),
    categorical=(CategoricalCode("c", 4),), continuous=(ContinuousCode("width", -1.0, 1.0), ContinuousCode("tilt", 2.0, 5.0)),
)


# ------------------------------------------------------------------ one definition of the latent draws
def test_numpy_and_torch_latents_come_from_the_specs_one_definition(monkeypatch):
    calls = []
    real_draw = LatentSpec.draw

    def spy(self, n, src, truncation=None):
        calls.append(type(src).__name__)
        return real_draw(self, n, src, truncation)

    monkeypatch.setattr(LatentSpec, "draw", spy)
    np_in = SPEC.sample(5000, seed=1)
    t_in = sample_latent(SPEC, 5000, torch.Generator().manual_seed(1), torch.device("cpu"))
    assert calls == ["NumpyDraws"] * 5 + ["TorchDraws"]  # 5 blocks of 1024 in numpy, one torch draw
    for inputs in (np_in, {k: v.numpy() for k, v in t_in.items()}):
        assert set(inputs) == {Z, LABEL, CODE_CAT, CODE_CONT}
        assert inputs[Z].dtype == np.float32 and inputs[CODE_CONT].dtype == np.float32
        assert inputs[LABEL].dtype == inputs[CODE_CAT].dtype == np.int64
        assert inputs[CODE_CAT].shape == (5000, 1) and inputs[CODE_CONT].shape == (5000, 2)
        assert set(np.unique(inputs[LABEL])) == {0, 1, 2} and set(np.unique(inputs[CODE_CAT])) == {0, 1, 2, 3}
        width, tilt = inputs[CODE_CONT][:, 0], inputs[CODE_CONT][:, 1]
        assert -1 <= width.min() < -0.95 and 0.95 < width.max() <= 1  # each code over its own range
        assert 2 <= tilt.min() < 2.05 and 4.95 < tilt.max() <= 5
        assert abs(inputs[Z].mean()) < 0.05 and abs(inputs[Z].std() - 1) < 0.05


def test_truncation_goes_through_the_same_definition_for_torch():
    from ctrlgen.train.latent import TorchDraws

    z = SPEC.draw(4000, TorchDraws(torch.Generator().manual_seed(0), torch.device("cpu")), truncation=0.5)[Z]
    assert z.abs().max() <= 0.5 and z.abs().max() > 0.45


# ------------------------------------------------------------------ G updates as pieces
def test_the_g_update_is_a_registered_piece_and_the_trainer_is_never_subclassed(tmp_path):
    assert set(G_UPDATES) == {"standard", "egan"}
    plain = Trainer(tiny_config("ring8", "steps=1"), tmp_path / "a")
    evolved = Trainer(tiny_config("ring8", "steps=1", EGAN), tmp_path / "b")
    assert type(plain) is Trainer and type(evolved) is Trainer
    assert plain.g_update.name == "standard" and evolved.g_update.name == "egan"


@pytest.mark.parametrize("mode, g_steps, expected", [("standard", 1, 1), ("egan", 1, 3), ("egan", 2, 6)])
def test_every_g_update_builds_its_loss_with_the_shared_g_terms(tmp_path, monkeypatch, mode, g_steps, expected):
    """E-GAN's children take the standard G step (one g_terms call per update), not a copy of it."""
    calls = []
    real = updates.g_terms

    def counting(tr, loss, inputs, r, y):
        calls.append(loss)
        return real(tr, loss, inputs, r, y)

    monkeypatch.setattr(updates, "g_terms", counting)
    extra = [EGAN, f"egan.g_steps={g_steps}"] if mode == "egan" else []
    t = Trainer(tiny_config("ring8", "steps=1", *extra), tmp_path)
    t.train_step()
    assert len(calls) == expected  # standard: 1; E-GAN: 3 mutations × g_steps
    if mode == "egan":
        assert len({id(loss) for loss in calls}) == 3  # each child with its own mutation's loss


# ------------------------------------------------------------------ EMA owns its average
def test_ema_owns_the_average_and_offers_the_sampling_generator(tmp_path):
    t = Trainer(tiny_config("fashion-cgan" if Path("/usr/share/datasets/fashion-mnist").is_dir() else "ring8",
                            "steps=2", "techniques.ema.decay=0.9"), tmp_path)
    ema = next(tech for tech in t.techniques if tech.name == "ema")
    assert not hasattr(t, "g_ema")
    t.train_step()
    assert t.sampling_generator() is ema.average
    state = t.state_tensors()
    assert any(k.startswith("ema.") for k in state) and not any(k.startswith("tech.ema.") for k in state)
    for k, v in ema.average.state_dict().items():
        assert torch.equal(state[f"ema.{k}"], v), k
    plain = Trainer(tiny_config("ring8", "steps=1", "techniques={}"), tmp_path / "plain")
    assert plain.sampling_generator() is plain.G


# ------------------------------------------------------------------ the population's own state
def test_population_checkpoints_under_its_own_group_and_old_checkpoints_still_resume(tmp_path):
    cfg = tiny_config("ring8", "steps=4", EGAN, "egan.population=2", "checkpoint_every=2")
    t = Trainer(cfg, tmp_path / "run")
    t.run(until=2)
    path = ckpt_io.newest(tmp_path / "run")
    ck = ckpt_io.load(path)
    pop = ck.group("population")
    assert pop and all(k.startswith("1.") for k in pop)  # parent 1 (parent 0 is G itself)
    # the same checkpoint in the layout of earlier versions (population under tech.egan_population.)
    old = {("tech.egan_population." + k[len("population."):] if k.startswith("population.") else k): v
           for k, v in ck.tensors.items()}
    ckpt_io.save(path, old, ck.meta)
    resumed = Trainer.resume(tmp_path / "run")
    for a, b in zip(resumed.g_update.population.slots[0].params, t.g_update.population.slots[0].params, strict=True):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ techniques see a RunContext
def test_techniques_get_the_run_context_not_the_trainer(tmp_path):
    t = Trainer(tiny_config("ring8", "steps=1", "techniques.experience_replay.size=128"), tmp_path)
    assert isinstance(t.run_context, RunContext)
    assert t.run_context.G is t.G and t.run_context.D is t.D and t.run_context.rng is t.rng
    t.train_step()
    t.train_step()
    assert t.run_context.step == 1  # the step the last update ran at
    folder = Path(__file__).resolve().parents[1] / "train" / "techniques"
    for path in folder.glob("*.py"):
        names = {n.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
        assert "trainer" not in names | attrs, f"{path.name} reaches for the trainer; use the RunContext"
