"""Semi-supervised InfoGAN ([techniques.semi_supervised]): the labelled set, the supervised term's
gradients, exact resume, folders with an unlabelled/ subfolder, the named spec in the ONNX file,
and the one-line errors."""

from __future__ import annotations

import contextlib
import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import assert_one_line_error, needs_fashion, run_cli
from ctrlgen.data import UNLABELLED, image_classes, load_image_folder, load_images, probe_image_folder
from ctrlgen.errors import CtrlgenError
from ctrlgen.spec import CategoricalCode, LatentSpec
from ctrlgen.train.batches import to_unit
from ctrlgen.train.config import load_config
from ctrlgen.train.techniques.semi_supervised import labelled_set
from ctrlgen.train.trainer import Trainer

CLASSES = ("circle", "square", "stripe")
TINY = ["net.g_width=8", "net.d_width=8", "net.d_fc=32", "net.q_hidden=16", "net.g_fc=32", "batch_size=8",
        "progress=false", "monitor_every=0", "sample_every=0", "log_every=2", "checkpoint_every=3"]
RECIPE = """extends = "infogan"
[latent]
noise_dim = 8
[[latent.categorical]]
name = "c"
n = {n}
[techniques.semi_supervised]
labels_per_class = {per_class}
"""


def make_folder(root, per_class=(4, 4, 4), unlabelled=30, classes=CLASSES, bands=(0, 1, 2)):
    """A tiny 12x12 grayscale folder: class k is a bright vertical band at columns 4b..4b+3, b = bands[k]
    (plus noise); the unlabelled images cycle over the three bands."""
    rng = np.random.default_rng(0)

    def band(k):
        a = rng.integers(0, 40, (12, 12)).astype(np.uint8)
        a[:, 4 * k : 4 * k + 4] = 255
        return Image.fromarray(a)

    for k, (name, count) in enumerate(zip(classes, per_class, strict=False)):
        (root / name).mkdir(parents=True)
        for i in range(count):
            band(bands[k]).save(root / name / f"{i}.png")
    if unlabelled:
        (root / "unlabelled").mkdir(parents=True)
        for i in range(unlabelled):
            band(i % 3).save(root / "unlabelled" / f"u{i:02d}.png")
    return root


def recipe(tmp_path, n=3, per_class=2):
    path = tmp_path / "ss.toml"
    path.write_text(RECIPE.format(n=n, per_class=per_class))
    return path


def folder_config(tmp_path, *overrides, n=3, per_class=2, **folder):
    data = make_folder(tmp_path / "data", **folder) if not (tmp_path / "data").exists() else tmp_path / "data"
    return load_config(str(recipe(tmp_path, n, per_class)), [*TINY, f"data_dir={data}", "data=image-folder", "image_size=12",
                                                             "channels=1", *overrides])


# ---------------------------------------------------------------- the labelled set
def test_labelled_set_is_n_per_class_never_unlabelled_and_a_function_of_the_seed():
    rng = np.random.default_rng(1)
    labels = rng.integers(-1, 4, 500)  # -1: unlabelled
    a = labelled_set(labels, 4, 7, seed=5)
    assert len(a) == 28 and len(set(a.tolist())) == 28
    assert (np.bincount(labels[a], minlength=4) == 7).all()  # 7 of each class, none unlabelled
    assert np.array_equal(labels[a], np.repeat(np.arange(4), 7))  # class by class
    assert np.array_equal(a, labelled_set(labels, 4, 7, seed=5))
    assert not np.array_equal(a, labelled_set(labels, 4, 7, seed=6))


# ---------------------------------------------------------------- folders with unlabelled images
def test_folder_with_an_unlabelled_subfolder(tmp_path):
    root = make_folder(tmp_path / "d", per_class=(4, 3, 5), unlabelled=6)
    assert image_classes(root) == list(CLASSES)  # unlabelled/ is not a class
    assert probe_image_folder(root) == (1, 12)
    data = load_image_folder(root, 12, 1, unlabelled=True)
    assert data.class_names == CLASSES and len(data.labels) == 18
    assert np.bincount(data.labels[data.labels >= 0]).tolist() == [4, 3, 5]
    assert (data.labels == UNLABELLED).sum() == 6
    with pytest.raises(CtrlgenError, match="unlabelled/ subfolder.*class-conditional"):
        load_images(str(root), "train", 12, 1)  # a conditional run needs every label
    only = make_folder(tmp_path / "only", per_class=(), unlabelled=6)
    assert image_classes(only) == [] and (load_image_folder(only, 12, 1, unlabelled=True).labels == UNLABELLED).all()


def test_cli_errors_are_one_line(tmp_path):
    folder = make_folder(tmp_path / "nolabels", per_class=(), unlabelled=12)
    r = recipe(tmp_path)
    base = ["train", r, "--steps", "2", "--no-progress", "-s", "batch_size=4", "-s", "monitor_every=0"]
    res = run_cli(*base, "--data", folder, "-o", tmp_path / "a", ok=False)
    assert_one_line_error(res, "gives no labels")
    few = make_folder(tmp_path / "few", per_class=(4, 1, 4), unlabelled=6)
    assert_one_line_error(run_cli(*base, "--data", few, "-o", tmp_path / "b", ok=False), "'square' has 1 labelled image(s), fewer than")
    assert_one_line_error(run_cli(*base[:1], recipe(tmp_path, n=4), *base[2:], "--data", few, "-o", tmp_path / "c", ok=False),
                          "has 4 values but the data has 3 classes; set n = 3 in [[latent.categorical]] (or --set latent.categorical.0.n=3)")
    # the fix the message gives works from the command line, without editing the recipe
    run_cli(*base[:1], recipe(tmp_path, n=4), *base[2:], "--data", few, "-o", tmp_path / "c", "-s", "latent.categorical.0.n=3",
            "-s", "techniques.semi_supervised.labels_per_class=1")
    assert (tmp_path / "c" / "checkpoints").is_dir()
    assert_one_line_error(run_cli(*base, "--data", few, "-s", "techniques.semi_supervised.labels_per_class=0", ok=False),
                          "labels_per_class must be >= 1")
    cond = make_folder(tmp_path / "cond", unlabelled=3)
    assert_one_line_error(run_cli("train", "cgan", "--data", cond, "--steps", "2", "-o", tmp_path / "e", ok=False),
                          "unlabelled/ subfolder")


@pytest.mark.parametrize(("recipe_name", "overrides", "fragment"), [
    ("fashion-cgan", ["techniques.semi_supervised.labels_per_class=10"], "exactly one categorical code"),
    ("fashion-infogan", ["techniques.semi_supervised.lambda_sup=-1.0"], "lambda_sup must be >= 0"),
    ("fashion-infogan", ["techniques.semi_supervised.lambda_ent=-0.5"], "lambda_ent must be >= 0"),
    ("fashion-infogan", ["techniques.semi_supervised.labels_per_class=10", "conditional=true"], "class-conditional"),
    ("fashion-infogan", ["techniques.semi_supervised.lambda_pseudo=-1.0"], "lambda_pseudo must be >= 0"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.pseudo_threshold=1.0"], "pseudo_threshold must be in"),
    ("fashion-infogan", ["techniques.semi_supervised.lambda_pseudo=1.0"], "set shift = 2 and/or flip = true"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.lambda_sup_late=-2.0"], "lambda_sup_late must be >= 0"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.late_from=1.5"], "late_from is the share"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.pseudo_cutout=-1"], "pseudo_cutout is the side"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.pseudo_cutout=15"], "whole number 0..14"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.pseudo_cutout=2.5"], "pseudo_cutout must be int"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.pseudo_cutout=8", "techniques.semi_supervised.lambda_pseudo=0.0"],
     "set lambda_pseudo > 0 or remove pseudo_cutout"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.q_warmup=-5"], "q_warmup is the number of updates"),
    ("fashion-infogan", ["techniques.mutual_information.q_cat_from_fakes=0.0"], "add \\[techniques.semi_supervised\\] or remove"),
    ("fashion-infogan-ss", ["techniques.mutual_information.q_cat_from_fakes=-1.0"], "q_cat_from_fakes must be >= 0"),
    ("fashion-infogan-ss", ["techniques.semi_supervised.q_warmup=2.5"], "q_warmup must be int"),
    ("fashion-infogan-ss", ["techniques.mutual_information.q_cat_from_fakes_late=-1.0"], "q_cat_from_fakes_late must be >= 0"),
    ("fashion-infogan-ss", ["techniques.mutual_information.late_from=1.5"], "late_from is the share"),
    ("fashion-infogan", ["techniques.mutual_information.q_cat_from_fakes_late=0.5"], "add \\[techniques.semi_supervised\\] or remove"),
])
def test_config_checks(recipe_name, overrides, fragment):
    with pytest.raises(CtrlgenError, match=fragment) as e:
        load_config(recipe_name, overrides)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------- the supervised term
def _technique(trainer):
    return next(t for t in trainer.techniques if t.name == "semi_supervised")


def _sup_grads(trainer, real):
    """d_sup's value and its gradients on D's parameters (and G's), from a fixed state of the run's generator."""
    from ctrlgen.train.techniques import StepContext

    t = _technique(trainer)
    trainer.rng.manual_seed(11)
    for p in (*trainer.G.parameters(), *trainer.D.parameters()):
        p.grad = None
    inputs = trainer.sample_latent(len(real))
    fake = trainer.G(**inputs)
    ctx = StepContext(trainer.run_context, real, None, inputs, fake, trainer.D(fake.detach(), None))
    term = t.d_penalty(ctx)["d_sup"]
    term.backward()
    d = {k: (p.grad.clone() if p.grad is not None else None) for k, p in trainer.D.named_parameters()}
    g = [p.grad for p in trainer.G.parameters()]
    return float(term.detach()), d, g


def test_supervised_term_reaches_q_only_through_the_labelled_images(tmp_path, monkeypatch):
    """The term is CE(Q_cat(x), y) on labelled images only: it ignores the real batch, the fakes and every
    image outside the labelled set, moves D's trunk and Q head, never G."""
    import ctrlgen.train.trainer as trainer_module

    cfg = folder_config(tmp_path, "amp=off", per_class=2)
    real_load = trainer_module.load_images
    base = real_load(cfg.data_dir, "train", 12, 1, unlabelled=True)
    variants = {}

    def trainer_with(images):
        monkeypatch.setattr(trainer_module, "load_images", lambda *a, **k: dataclasses.replace(base, images=images))
        return Trainer(cfg, tmp_path / f"run{len(variants)}")

    tr = trainer_with(base.images)
    chosen = _technique(tr).labelled.numpy()
    assert len(chosen) == 6 and base.labels[chosen].tolist() == [0, 0, 1, 1, 2, 2]
    others = np.setdiff1d(np.arange(len(base.labels)), chosen)
    noisy = base.images.copy()
    noisy[others] = np.random.default_rng(3).integers(0, 256, noisy[others].shape, dtype=np.uint8)
    moved = base.images.copy()
    moved[chosen[0]] = 255 - moved[chosen[0]]

    v0, d0, g0 = _sup_grads(tr, torch.zeros(8, 1, 12, 12))
    variants["other images"] = _sup_grads(trainer_with(noisy), torch.randn(8, 1, 12, 12))  # and another real batch
    variants["a labelled image"] = _sup_grads(trainer_with(moved), torch.zeros(8, 1, 12, 12))

    # the value is lambda * CE(Q_cat(D(x)), y) on the labelled images the run's generator picks
    t = _technique(tr)
    tr.rng.manual_seed(11)
    tr.sample_latent(8)
    i = torch.randint(len(t.y), (8,), generator=tr.rng)
    x = torch.from_numpy(base.images[chosen][i.numpy()]).float() / 127.5 - 1
    want = torch.nn.functional.cross_entropy(tr.D(x, None).q_cat[0], torch.from_numpy(base.labels[chosen][i.numpy()]))
    assert v0 == pytest.approx(float(want.detach()), rel=1e-5)

    assert all(g is None for g in g0)  # G is untouched
    q_keys = [k for k in d0 if k.startswith("q.") or ".q." in k or "q_cat" in k]
    assert q_keys and any(d0[k] is not None and d0[k].abs().sum() > 0 for k in q_keys)
    assert sum(float(v.abs().sum()) for v in d0.values() if v is not None) > 0
    v1, d1, _ = variants["other images"]
    assert v1 == v0 and all(torch.equal(d0[k], d1[k]) for k in d0 if d0[k] is not None)
    v2, d2, _ = variants["a labelled image"]
    assert v2 != v0 and any(not torch.equal(d0[k], d2[k]) for k in d0 if d0[k] is not None)


def _band_of_each_value(trainer, n=300):
    """(code value, band) of ``n`` samples, the code cycling over its values; a sample's band is its brightest
    4-column strip (a perfect classifier for the folder's images)."""
    with torch.no_grad():
        inputs = trainer.spec.sample(n, seed=1)
        inputs["code_cat"][:, 0] = np.arange(n) % 3
        g = trainer.sampling_generator().eval()
        x = g(**{k: torch.from_numpy(v) for k, v in inputs.items()}).numpy()[:, 0]
    return inputs["code_cat"][:, 0], np.stack([x[:, :, 4 * b : 4 * b + 4].mean((1, 2)) for b in range(3)], 1).argmax(1)


@pytest.mark.parametrize("bands", [(0, 1, 2), (2, 0, 1)])
def test_a_short_run_makes_value_k_draw_class_k(tmp_path, bands):
    """60 steps on the band folder: with 5 labels per class, value k of the code draws the band of class k,
    whichever band the labels call class k (plain InfoGAN's order is its own and cannot follow a relabelling)."""
    make_folder(tmp_path / "data", per_class=(20, 20, 20), unlabelled=300, bands=bands)
    cfg = folder_config(tmp_path, "steps=60", "checkpoint_every=1000", "amp=off", "lr_d=1e-3", "net.d_norm=none", per_class=5)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    codes, band = _band_of_each_value(trainer)
    named = float(np.mean(band == np.asarray(bands)[codes]))
    assert named >= 0.9, (bands, named, np.bincount(band, minlength=3))


def test_entropy_gap_prefers_confident_images_spread_over_all_classes():
    from ctrlgen.train.losses import class_entropy_gap

    k = 5
    assert float(class_entropy_gap(torch.zeros(8, k))) == pytest.approx(0.0, abs=1e-6)  # unsure of everything
    assert float(class_entropy_gap(torch.eye(k) * 40)) == pytest.approx(-np.log(k), abs=1e-4)  # sure, all classes used
    one = torch.zeros(k, k)
    one[:, 0] = 40
    assert float(class_entropy_gap(one)) == pytest.approx(0.0, abs=1e-4)  # sure, but all one class: no better than unsure


def test_entropy_term_trains_q_on_the_unlabelled_real_batch(tmp_path):
    """lambda_ent > 0 adds d_ent (logged) to D's loss, and it changes D's training; 0 leaves it out."""
    make_folder(tmp_path / "data", per_class=(6, 6, 6), unlabelled=60)
    runs = {}
    for lam in (0.0, 0.5):
        cfg = folder_config(tmp_path, "steps=3", "amp=off", f"techniques.semi_supervised.lambda_ent={lam}")
        runs[lam] = Trainer(cfg, tmp_path / f"run{lam}")
        runs[lam].run()
    logged = [json.loads(line) for line in (tmp_path / "run0.5" / "metrics.jsonl").read_text().splitlines()]
    assert any("d_ent" in r and r["d_ent"] < 0 for r in logged)
    assert not any("d_ent" in json.loads(line) for line in (tmp_path / "run0.0" / "metrics.jsonl").read_text().splitlines())
    a, b = _weights(runs[0.0]), _weights(runs[0.5])
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("D."))


def test_pseudo_labels_teach_only_confident_calls_on_an_augmented_copy():
    """d_pseudo: Q's confident calls on the real batch (and only those) are the targets for a shifted / mirrored
    copy of the batch, and the gradient reaches Q through the copy, not through the calls."""
    from types import SimpleNamespace

    from ctrlgen.train.techniques.semi_supervised import SemiSupervised

    t = SemiSupervised(shift=2, flip=True, lambda_pseudo=1.0, pseudo_threshold=0.9)
    k, n = 4, 6
    calls = torch.zeros(n, k)
    calls[:3, 2] = 10.0  # images 0-2: class 2, sure; images 3-5: unsure (uniform)
    seen = {}

    def discriminate(x, label):
        seen["x"] = x
        logits = torch.zeros(len(x), k, requires_grad=True)
        seen["logits"] = logits
        return SimpleNamespace(q_cat=[logits])

    real = torch.rand(n, 1, 8, 8) * 2 - 1
    run = SimpleNamespace(rng=torch.Generator().manual_seed(0), autocast=contextlib.nullcontext, device=torch.device("cpu"))
    ctx = SimpleNamespace(run=run, real=real, out_real=SimpleNamespace(q_cat=[calls.requires_grad_()]), discriminate=discriminate)
    loss = t.pseudo_label_loss(ctx)
    assert float(loss.detach()) == pytest.approx(3 / n * np.log(k), rel=1e-5)  # 3 of 6 kept, each CE = log k at zero logits
    assert seen["x"].shape == real.shape and not torch.equal(seen["x"], real)  # an augmented copy
    loss.backward()
    g = seen["logits"].grad
    assert torch.all(g[3:] == 0) and torch.all(g[:3, 2] < 0)  # unsure images teach nothing; sure ones pull toward 2
    assert calls.grad is None  # the calls are targets, not trained through
    t.p["pseudo_threshold"] = 0.99999
    assert float(t.pseudo_label_loss(ctx).detach()) == 0.0


def test_cutout_erases_one_square_to_the_background_and_nothing_else():
    from ctrlgen.train.batches import cutout

    x = torch.rand(64, 1, 12, 10) * 0.5 + 0.25  # no pixel at the background
    gen = torch.Generator().manual_seed(3)
    y = cutout(x, 4, gen)
    erased = y == -1
    assert torch.equal(y[~erased], x[~erased])  # every other pixel untouched
    for img in erased[:, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert 1 <= len(rows) <= 4 and 1 <= len(cols) <= 4  # one square of side 4, clipped at the border
        assert int(img.sum()) == len(rows) * len(cols)  # a full rectangle, not scattered pixels
        assert torch.equal(rows, torch.arange(rows[0], rows[-1] + 1)) and torch.equal(cols, torch.arange(cols[0], cols[-1] + 1))
    assert int(erased.sum(dim=(1, 2, 3)).eq(16).sum()) > 16  # most squares lie wholly inside
    assert len({tuple(img.nonzero()[0].tolist()) for img in erased[:, 0]}) > 8  # at random places
    state = gen.get_state()
    assert cutout(x, 0, gen) is x and torch.equal(gen.get_state(), state)  # off: no change, no draw


def test_pseudo_cutout_changes_only_the_copy_q_is_taught():
    from types import SimpleNamespace

    from ctrlgen.train.techniques.semi_supervised import SemiSupervised

    seen = []

    def discriminate(x, label):
        seen.append(x)
        return SimpleNamespace(q_cat=[torch.zeros(len(x), 3, requires_grad=True)])

    real = torch.rand(32, 1, 8, 8) * 0.5 + 0.25
    calls = torch.zeros(32, 3)
    calls[:, 1] = 10.0
    for size in (0, 3):
        t = SemiSupervised(shift=1, flip=True, lambda_pseudo=1.0, pseudo_cutout=size)
        run = SimpleNamespace(rng=torch.Generator().manual_seed(0), autocast=contextlib.nullcontext, device=torch.device("cpu"))
        t.pseudo_label_loss(SimpleNamespace(run=run, real=real, out_real=SimpleNamespace(q_cat=[calls]), discriminate=discriminate))
    plain, cut = seen
    diff = plain != cut
    assert diff.any() and torch.all(cut[diff] == -1)  # the same shifted copy, with squares erased


def _pseudo_runs(tmp_path, key, values, *settings):
    """Two 3-step runs on a small folder with pseudo-labels possible, ``techniques.semi_supervised.KEY`` at each
    of ``values`` (run directories run<value>), the rest as ``settings``."""
    make_folder(tmp_path / "data", per_class=(6, 6, 6), unlabelled=60)
    runs = {}
    for v in values:
        cfg = folder_config(tmp_path, "steps=3", "amp=off", "techniques.semi_supervised.shift=2",
                            "techniques.semi_supervised.pseudo_threshold=0.3", *settings, f"techniques.semi_supervised.{key}={v}")
        runs[v] = Trainer(cfg, tmp_path / f"run{v}")
        runs[v].run()
    return runs


def _d_differs(a: Trainer, b: Trainer) -> bool:
    wa, wb = _weights(a), _weights(b)
    return any(not torch.equal(wa[k], wb[k]) for k in wa if k.startswith("D."))


def test_pseudo_label_term_is_logged_and_changes_training(tmp_path):
    runs = _pseudo_runs(tmp_path, "lambda_pseudo", (0.0, 1.0))
    logged = [json.loads(line) for line in (tmp_path / "run1.0" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("d_pseudo", 0) > 0 for r in logged)
    assert not any("d_pseudo" in json.loads(line) for line in (tmp_path / "run0.0" / "metrics.jsonl").read_text().splitlines())
    assert _d_differs(runs[0.0], runs[1.0])


def test_pseudo_cutout_changes_training(tmp_path):
    runs = _pseudo_runs(tmp_path, "pseudo_cutout", (0, 4), "techniques.semi_supervised.lambda_pseudo=1.0")
    assert _d_differs(runs[0], runs[4])


def test_q_cat_from_fakes_zero_keeps_q_off_the_fakes_categorical_code_and_g_on_it(tmp_path):
    """At q_cat_from_fakes = 0 D/Q's loss has no categorical term on the fakes (the continuous one stays) while G's
    InfoGAN term is unchanged; trained, D ends elsewhere than at 1."""
    from ctrlgen.train.techniques import StepContext

    runs = {}
    for v in (1.0, 0.0):
        cfg = folder_config(tmp_path, "steps=3", "amp=off", f"techniques.mutual_information.q_cat_from_fakes={v}")
        runs[v] = Trainer(cfg, tmp_path / f"run{v}")
    t = {v: next(x for x in r.techniques if x.name == "mutual_information") for v, r in runs.items()}
    tr = runs[0.0]
    inputs = tr.sample_latent(8)
    fake = tr.G(**inputs)
    ctx = StepContext(tr.run_context, None, None, inputs, fake, tr.D(fake.detach(), None))
    off, on = t[0.0].d_penalty(ctx), t[1.0].d_penalty(ctx)
    assert set(on) == {"d_info_cat", "d_info_cont"} and set(off) == {"d_info_cont"}
    assert torch.equal(off["d_info_cont"], on["d_info_cont"])
    assert torch.equal(t[0.0].g_penalty(ctx)["info_cat"], t[1.0].g_penalty(ctx)["info_cat"])
    for r in runs.values():
        r.run()
    assert _d_differs(runs[0.0], runs[1.0])
    assert not any("d_info_cat" in json.loads(line) for line in (tmp_path / "run0.0" / "metrics.jsonl").read_text().splitlines())


def test_q_cat_from_fakes_late_takes_over_at_its_step(tmp_path):
    """q_cat_from_fakes = 0 until step late_from x total steps, then q_cat_from_fakes_late: Q's categorical term on the
    fakes is absent from D's log before the switch and present from it on (late_weight, as lambda_sup_late's switch)."""
    from types import SimpleNamespace

    from ctrlgen.train.techniques.mutual_information import MutualInformation

    t = MutualInformation(q_cat_from_fakes=0.0, q_cat_from_fakes_late=1.0, late_from=0.5)
    assert [t.q_cat_scale(SimpleNamespace(step=s, total_steps=8)) for s in range(8)] == [0.0] * 4 + [1.0] * 4
    assert MutualInformation(q_cat_from_fakes=0.0).q_cat_scale(SimpleNamespace(step=7, total_steps=8)) == 0.0
    cfg = folder_config(tmp_path, "steps=8", "log_every=1", "techniques.mutual_information.q_cat_from_fakes=0.0",
                        "techniques.mutual_information.q_cat_from_fakes_late=1.0", "techniques.mutual_information.late_from=0.5")
    Trainer(cfg, tmp_path / "run").run()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: "d_info_cat" in r for r in rows if "d_info_cont" in r}
    assert logged and all(v == (step > 4) for step, v in logged.items()), logged  # a row is logged after its step: 1..8


def test_late_weight_takes_over_at_its_step():
    """lambda_sup until step late_from × total steps, lambda_sup_late from that step on; 0 keeps lambda_sup."""
    from types import SimpleNamespace

    from ctrlgen.train.techniques.semi_supervised import SemiSupervised

    t = SemiSupervised(lambda_sup=3.0, lambda_sup_late=10.0, late_from=0.5)
    weights = [t.sup_weight(SimpleNamespace(step=s, total_steps=8)) for s in range(8)]
    assert weights == [3.0] * 4 + [10.0] * 4
    assert SemiSupervised(lambda_sup=3.0).sup_weight(SimpleNamespace(step=7, total_steps=8)) == 3.0
    assert SemiSupervised(lambda_sup=3.0, lambda_sup_late=10.0, late_from=0.0).sup_weight(SimpleNamespace(step=0, total_steps=8)) == 10.0


def test_late_weight_is_the_run_resumed_with_the_heavier_weight(tmp_path):
    """A run with lambda_sup_late is, step for step, the same run trained to late_from with lambda_sup and
    continued from that checkpoint with lambda_sup set to the late value; without the switch it differs."""
    late = ["techniques.semi_supervised.lambda_sup=1.0", "techniques.semi_supervised.shift=2"]
    switched = Trainer(folder_config(tmp_path, "steps=6", *late, "techniques.semi_supervised.lambda_sup_late=5.0",
                                     "techniques.semi_supervised.late_from=0.5"), tmp_path / "a")
    switched.run()
    half = Trainer(folder_config(tmp_path, "steps=6", *late), tmp_path / "b")
    half.run(until=3)
    config = tmp_path / "b" / "config.json"
    d = json.loads(config.read_text())
    d["techniques"]["semi_supervised"]["lambda_sup"] = 5.0
    config.write_text(json.dumps(d))
    continued = Trainer.resume(tmp_path / "b")
    continued.run()
    plain = Trainer(folder_config(tmp_path, "steps=6", *late), tmp_path / "c")
    plain.run()
    a, b, c = _weights(switched), _weights(continued), _weights(plain)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.startswith("D."))


# ---------------------------------------------------------------- resume, checkpoint, export
def _weights(trainer):
    return {**{f"G.{k}": v for k, v in trainer.G.state_dict().items()}, **{f"D.{k}": v for k, v in trainer.D.state_dict().items()}}


def _straight_and_half(cfg, tmp_path) -> Trainer:
    """``cfg`` trained straight through in a/ (returned) and stopped after step 3 in b/ (to resume)."""
    straight = Trainer(cfg, tmp_path / "a")
    straight.run()
    Trainer(cfg, tmp_path / "b").run(until=3)
    return straight


def test_labelled_set_survives_resume_and_resume_is_exact(tmp_path):
    from ctrlgen import checkpoint as ckpt_io

    cfg = folder_config(tmp_path, "steps=6", "techniques.semi_supervised.shift=2", "techniques.semi_supervised.flip=true")
    straight = _straight_and_half(cfg, tmp_path)
    ck = ckpt_io.load(ckpt_io.newest(tmp_path / "b"))
    saved = ck.tensors["tech.semi_supervised.labelled"]
    assert torch.equal(saved, _technique(straight).labelled)
    data = load_image_folder(cfg.data_dir, 12, 1, unlabelled=True)
    assert torch.equal(saved, torch.from_numpy(labelled_set(data.labels, 3, 2, cfg.seed)))
    info = ck.meta["technique_meta"]["semi_supervised"]
    assert (info["labels_per_class"], info["classes"], info["labelled"]) == (2, 3, 6)
    resumed = Trainer.resume(tmp_path / "b")
    resumed.run()
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(CtrlgenError, match="labelled images differ"):
        _technique(resumed).load_state_dict({"labelled": saved.flip(0)})


def _q_calls(trainer):
    t = _technique(trainer)
    with torch.no_grad():
        return trainer.D(to_unit(t.x), None).q_cat[0].argmax(1), t.y


def test_q_warmup_teaches_q_the_labelled_images_before_the_first_step(tmp_path):
    """q_warmup updates of D's trunk and Q head on the labelled images alone, done when the run is built:
    Q then names them (it did not before), the header records it, G is untouched, and it is a function of the seed."""
    cold = Trainer(folder_config(tmp_path, "steps=4"), tmp_path / "cold")
    warm = Trainer(folder_config(tmp_path, "steps=4", "techniques.semi_supervised.q_warmup=60", "techniques.semi_supervised.shift=1"),
                   tmp_path / "warm")
    again = Trainer(folder_config(tmp_path, "steps=4", "techniques.semi_supervised.q_warmup=60", "techniques.semi_supervised.shift=1"),
                    tmp_path / "again")
    a, b, c = ({k: v.clone() for k, v in _weights(t).items()} for t in (cold, warm, again))  # before D runs on anything
    calls, y = _q_calls(warm)
    assert torch.equal(calls, y)
    cold_calls, _ = _q_calls(cold)
    assert not torch.equal(cold_calls, y)
    info = _technique(warm).meta()
    assert info["q_warmup_accuracy"] == 1.0 and 0 <= info["q_warmup_ce"] < np.log(3)  # below chance's cross-entropy
    assert "q_warmup_accuracy" not in _technique(cold).meta()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("G."))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("D."))
    assert all(torch.equal(b[k], c[k]) for k in b)


def test_q_warmup_run_resumes_exactly(tmp_path):
    cfg = folder_config(tmp_path, "steps=6", "techniques.semi_supervised.q_warmup=20", "techniques.semi_supervised.shift=2")
    straight = _straight_and_half(cfg, tmp_path)
    resumed = Trainer.resume(tmp_path / "b")
    resumed.run()
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    import onnx

    run_cli("export", tmp_path / "b", "-o", tmp_path / "m.onnx")
    card = json.loads({p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}["ctrlgen.card"])
    assert card["labelled"]["q_warmup_accuracy"] == _technique(straight).meta()["q_warmup_accuracy"]
    assert 0 <= card["labelled"]["q_warmup_ce"] < np.log(3)


def test_other_seed_other_labelled_set(tmp_path):
    a = Trainer(folder_config(tmp_path, "seed=1", per_class=2), tmp_path / "a")
    b = Trainer(folder_config(tmp_path / "x", "seed=2", per_class=2), tmp_path / "b")
    assert not torch.equal(_technique(a).labelled, _technique(b).labelled)


def test_export_names_the_categorical_values_by_class(tmp_path):
    import onnx

    cfg = folder_config(tmp_path, "steps=2")
    Trainer(cfg, tmp_path / "run").run()
    run_cli("export", tmp_path / "run", "-o", tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    spec = json.loads(props["ctrlgen.spec"])
    assert spec["categorical"] == [{"name": "c", "n": 3, "values": list(CLASSES)}]
    assert LatentSpec.from_json(props["ctrlgen.spec"]).categorical[0].values == CLASSES
    card = json.loads(props["ctrlgen.card"])
    assert card["labelled"]["labelled"] == 6 and card["labelled"]["labels_per_class"] == 2
    assert "q_warmup_accuracy" not in card["labelled"]  # no warm-up, nothing said of one
    info = run_cli("info", tmp_path / "m.onnx").output
    assert "0=circle" in info and "2=stripe" in info
    from ctrlgen.card import markdown

    assert "2 per class × 3 classes = 6" in markdown(card, LatentSpec.from_json(props["ctrlgen.spec"]))


# ---------------------------------------------------------------- spec compatibility
def test_specs_without_value_names_still_load_and_names_are_checked():
    old = {"format": 1, "noise_dim": 4, "output": {"kind": "image", "shape": [1, 28, 28]},
           "categorical": [{"name": "c", "n": 3}]}
    spec = LatentSpec.from_dict(old)
    assert spec.categorical[0].values == () and "values" not in spec.to_dict()["categorical"][0]
    named = LatentSpec.from_dict({**old, "categorical": [{"name": "c", "n": 3, "values": ["a", "b", "c"]}]})
    assert LatentSpec.from_json(named.to_json()) == named
    for bad in (["a", "b"], ["a", "a", "b"], ["a", "", "b"], "abc"):
        with pytest.raises(CtrlgenError):
            LatentSpec.from_dict({**old, "categorical": [{"name": "c", "n": 3, "values": bad}]})
    with pytest.raises(CtrlgenError, match="value names"):
        CategoricalCode("c", 3, ("a", "b"))



def test_named_values_are_accepted_by_name_as_well_as_by_index():
    from ctrlgen.controls import parse_controls

    spec = LatentSpec.from_dict({"format": 1, "noise_dim": 4, "output": {"kind": "image", "shape": [1, 28, 28]},
                                 "categorical": [{"name": "c", "n": 3, "values": ["Shirt", "Dress", "Bag"]}]})
    assert parse_controls(spec, cat=["c=dress"]).cat == {"c": (1,)}
    assert parse_controls(spec, codes="c=Bag").cat == {"c": (2,)}
    assert parse_controls(spec, cat=["c=0"]).cat == {"c": (0,)}
    with pytest.raises(CtrlgenError, match="Shirt, Dress, Bag"):
        parse_controls(spec, cat=["c=Sneaker"])
    unnamed = LatentSpec.from_dict({"format": 1, "noise_dim": 4, "output": {"kind": "image", "shape": [1, 28, 28]},
                                    "categorical": [{"name": "c", "n": 3}]})
    with pytest.raises(CtrlgenError, match=r"not an integer; use 0..2$"):
        parse_controls(unnamed, cat=["c=Dress"])

def test_shipped_infogan_spec_has_no_names_and_loads():
    from pathlib import Path

    from ctrlgen.card import spec_of

    spec = spec_of(Path(__file__).resolve().parents[1] / "models" / "fashion-infogan.onnx")
    assert spec.categorical and spec.categorical[0].values == ()


@needs_fashion
def test_fashion_recipe_names_the_code_by_fashion_class(tmp_path):
    cfg = load_config("fashion-infogan-ss", [*TINY, "steps=1"])
    assert cfg.techniques["semi_supervised"] == {"labels_per_class": 10, "lambda_sup": 3.0, "lambda_sup_late": 10.0, "late_from": 0.66666,
                                               "shift": 2, "flip": True, "lambda_pseudo": 1.0}
    from ctrlgen.data import FASHION_MNIST_LABELS

    spec = cfg.spec(FASHION_MNIST_LABELS)
    assert spec.categorical[0].values[3] == "Dress"


def test_the_benchmark_trains_the_recipe_it_names():
    """benchmarks/semi_supervised.py compares fashion-infogan with and without labels under one small config."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import semi_supervised as bench

    plain = load_config("fashion-infogan", [*bench.SMALL, "steps=3"])
    ss = load_config("fashion-infogan", [*bench.SMALL, "steps=3", "techniques.semi_supervised.labels_per_class=10"])
    assert "semi_supervised" not in plain.techniques and ss.techniques["semi_supervised"] == {"labels_per_class": 10}
    assert plain.net == ss.net and plain.lr_d == ss.lr_d == 1e-3


def test_augmentation_shifts_and_mirrors_and_is_drawn_from_the_generator():
    from ctrlgen.train.batches import shift_flip as augment

    x = torch.full((64, 1, 8, 8), -1.0)
    x[:, :, 3, 2] = 1.0  # one bright pixel left of centre, 2 pixels from the edge
    same = augment(x, 0, False, torch.Generator().manual_seed(0))
    assert torch.equal(same, x)
    a = augment(x, 2, True, torch.Generator().manual_seed(0))
    b = augment(x, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    where = [tuple(torch.nonzero(img[0] == 1.0)[0].tolist()) for img in a]
    assert all((img == 1.0).sum() == 1 for img in a)  # moved, never cut off or duplicated at a shift of 2
    cols = {c for _, c in where}
    assert {r for r, _ in where} <= set(range(1, 6)) and cols <= set(range(0, 8))
    assert any(c >= 5 for c in cols) and any(c <= 2 for c in cols)  # mirrored ones land right of centre
    assert len(set(where)) > 10  # the draws differ per image


def test_augmentation_settings_are_checked():
    with pytest.raises(CtrlgenError, match="shift must be 0..7"):
        load_config("fashion-infogan-ss", ["techniques.semi_supervised.shift=9"])
    cfg = load_config("fashion-infogan-ss")
    assert cfg.techniques["semi_supervised"] == {"labels_per_class": 10, "lambda_sup": 3.0, "lambda_sup_late": 10.0, "late_from": 0.66666,
                                               "shift": 2, "flip": True, "lambda_pseudo": 1.0}
