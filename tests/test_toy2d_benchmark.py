"""benchmarks/toy2d.py: every row is a valid config, and one short run is scored by the mixture protocol."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import toy2d  # noqa: E402


@pytest.mark.parametrize("dataset", ["ring8", "grid25"])
def test_every_row_builds_a_valid_config(dataset):
    for row in toy2d.ROWS:
        if dataset in row.datasets:
            cfg = toy2d.build_config(dataset, row, seed=3, steps=10)
            assert cfg.data == dataset and cfg.seed == 3 and cfg.steps == 10
            if not row.from_recipe:
                assert cfg.lr_g == 1e-3 and cfg.beta1 == 0.5 and cfg.noise_dim == (2 if "noise_dim=2" in row.overrides else 16)


def test_the_plain_row_has_no_technique_and_the_recipe_row_has_the_recipes():
    plain = toy2d.build_config("grid25", toy2d.ROWS[0], seed=0, steps=10)
    assert plain.techniques == {} and plain.batch_size == 128 and plain.steps == 10
    shipped = toy2d.build_config("grid25", next(r for r in toy2d.ROWS if r.from_recipe), seed=0, steps=10)
    assert shipped.techniques  # the shipped recipe carries the winning techniques


def test_a_short_run_is_scored_and_tabulated():
    (r,) = toy2d.run_seeds("ring8", toy2d.ROWS[0], (0,), steps=3)
    assert r["n_modes"] == 8 and 0 <= r["modes"] <= 8 and 0.0 <= r["hq"] <= 100.0
    text = toy2d.table("ring8", {"GAN": [r, dict(r, modes=8)]})
    assert "| GAN |" in text and "*PacGAN Table 1: PacGAN4* | – | *7.8*" in text and "| 3 × 128 |" in text and "/2 |" in text
    assert " † |" in text  # seeds trained one at a time are marked


def test_an_ensemble_task_scores_each_seed_on_its_own_samples(monkeypatch):
    """Three seeds in one ensemble: three results, each scored on its own copy's 2,500 samples."""
    from ctrlgen.metrics import mixture

    scored = []
    real_score = mixture.score
    monkeypatch.setattr(mixture, "score", lambda x, *a: scored.append(x) or real_score(x, *a))
    rs = toy2d.run_seeds("ring8", toy2d.ROWS[0], (0, 1, 2), steps=3)
    assert [r["seed"] for r in rs] == [0, 1, 2] and all(r["ensemble"] == 3 for r in rs)
    assert [len(x) for x in scored] == [toy2d.EVAL_SAMPLES] * 3
    assert not np.allclose(scored[0], scored[1]) and not np.allclose(scored[1], scored[2])  # different copies
    assert " † |" not in toy2d.table("ring8", {"GAN": rs})


@pytest.mark.parametrize("name", ["+ spectral norm"])
def test_rows_that_cannot_be_ensembles_say_so(name):
    row = next(r for r in toy2d.ROWS if r.name == name)
    assert not row.ensemble
    with pytest.raises(Exception, match="ensemble"):
        toy2d.build_config("ring8", row, seed=0, steps=3, ensemble=2)
