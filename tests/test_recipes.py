"""Recipes: families and presets (extends), the [latent] table, technique-owned lambdas,
the old flat config shape, and ``ctrlgen train cgan --data DIR`` on a folder of images."""

import dataclasses
import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image

from conftest import TINY_CONV, assert_one_line_error, run_cli
from ctrlgen import checkpoint as ckpt_io
from ctrlgen.errors import CtrlgenError
from ctrlgen.runtime import Runtime
from ctrlgen.train.config import (
    TrainConfig,
    apply_overrides,
    load_config,
    read_recipe,
    recipe_names,
    upgrade,
    with_data_folder,
)
from ctrlgen.train.recipe import merge
from ctrlgen.train.trainer import Trainer

FAMILIES = ("cgan", "infogan", "gan2d")


def one_line_error(fn, *args, match: str) -> str:
    with pytest.raises(CtrlgenError, match=match) as e:
        fn(*args)
    assert "\n" not in str(e.value)
    return str(e.value)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def make_folder(root: Path, sizes=((32, 32),), modes=("RGB",), per_class: int = 8) -> Path:
    """root/{circle,square}/*.png: random images, cycling through the given sizes and modes."""
    rng = np.random.default_rng(0)
    for c in ("circle", "square"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            w, h = sizes[i % len(sizes)]
            mode = modes[i % len(modes)]
            arr = rng.integers(0, 256, (h, w, 3) if mode == "RGB" else (h, w), dtype=np.uint8)
            Image.fromarray(arr, mode).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def shapes(tmp_path) -> Path:
    return make_folder(tmp_path / "shapes")


# ------------------------------------------------------------------ families, presets, extends
def test_a_number_in_a_set_key_indexes_an_array_of_tables():
    d = {"latent": {"categorical": [{"name": "c", "n": 10}, {"name": "k", "n": 4}]}, "egan": {"mutations": ["lsgan"]}}
    out = apply_overrides(d, ["latent.categorical.1.n=3", "latent.categorical.0.name=shape"])
    assert out["latent"]["categorical"] == [{"name": "shape", "n": 10}, {"name": "k", "n": 3}]
    assert d["latent"]["categorical"][1]["n"] == 4  # the recipe's own data is not changed
    for item, fragment in [("latent.categorical.2.n=3", "'2' is not an index of that list \\(its indices are 0..1\\)"),
                           ("latent.categorical.-1.n=3", "'-1' is not an index"),
                           ("latent.categorical.n=3", "'n' is not an index"),
                           ("egan.mutations.0.x=1", "mutations is a value, not a table")]:
        with pytest.raises(CtrlgenError, match=fragment):
            apply_overrides(d, [item])


def test_every_shipped_preset_extends_a_family_and_families_name_their_data():
    raw = {n: tomllib.loads(resources.files("ctrlgen.train").joinpath("recipes", f"{n}.toml").read_text()) for n in recipe_names()}
    assert set(FAMILIES) <= set(raw)
    for name, d in raw.items():
        assert ("extends" in d) == (name not in FAMILIES), name
        assert "data" in read_recipe(name)
    assert {load_config(n).data for n in ("cgan", "infogan")} == {"fashion-mnist"} and load_config("gan2d").data == "ring8"
    assert load_config("ring8-egan").techniques == load_config("ring8").techniques  # two levels: ring8-egan -> ring8 -> gan2d


def test_merge_tables_key_by_key_the_preset_wins_and_arrays_are_replaced():
    base = {"lr_g": 1.0, "net": {"g_width": 64, "d_width": 64}, "techniques": {"ema": {"decay": 0.9}, "r1": {"gamma": 1.0}},
            "latent": {"continuous": [{"name": "a"}, {"name": "b"}]}}
    got = merge(base, {"lr_g": 2.0, "net": {"g_width": 8}, "techniques": {"ema": {"decay": 0.5}}, "latent": {"continuous": [{"name": "z"}]}})
    assert got == {"lr_g": 2.0, "net": {"g_width": 8, "d_width": 64}, "techniques": {"ema": {"decay": 0.5}, "r1": {"gamma": 1.0}},
                   "latent": {"continuous": [{"name": "z"}]}}
    assert base["net"]["g_width"] == 64  # the base is not changed


def test_a_preset_file_extends_a_shipped_recipe_and_another_file(tmp_path):
    write(tmp_path / "base.toml", 'extends = "ring8"\nsteps = 7\n[net]\ng_width = 32\n[techniques.r1]\ngamma = 0.5\n')
    child = write(tmp_path / "child.toml", 'extends = "base.toml"\nlr_g = 1e-4\n[net]\nd_width = 16\n')
    cfg = load_config(child)
    ring8 = load_config("ring8")
    assert cfg.recipe == "child" and cfg.steps == 7 and cfg.lr_g == 1e-4 and cfg.lr_d == ring8.lr_d
    assert (cfg.net.g_width, cfg.net.d_width, cfg.net.depth) == (32, 16, ring8.net.depth)
    assert cfg.techniques == {"r1": {"gamma": 0.5}, "ema": ring8.techniques["ema"]}
    assert "extends" not in cfg.to_dict()


def test_cycles_and_unknown_bases_are_one_line_errors(tmp_path):
    a = write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    msg = one_line_error(read_recipe, a, match="cycle")
    assert "a.toml" in msg and "b.toml" in msg and "remove one of the extends" in msg
    one_line_error(read_recipe, write(tmp_path / "me.toml", 'extends = "me.toml"\n'), match="cycle")
    msg = one_line_error(read_recipe, write(tmp_path / "u.toml", 'extends = "dcgan-xl"\n'), match="extends 'dcgan-xl', which is unknown")
    assert "cgan" in msg and "infogan" in msg
    one_line_error(read_recipe, write(tmp_path / "m.toml", 'extends = "missing.toml"\n'), match="extends 'missing.toml', which is unknown")
    one_line_error(read_recipe, write(tmp_path / "n.toml", "extends = 3\n"), match="extends must be a recipe name")


# ------------------------------------------------------------------ [latent]
LATENT = """extends = "infogan"
[latent]
noise_dim = 16
noise = "uniform"
[[latent.categorical]]
name = "digit"
n = 4
[[latent.continuous]]
name = "width"
low = -2
high = 3.5
"""


def test_the_latent_table_names_codes_and_ranges_in_the_specs_json_shape(tmp_path):
    cfg = load_config(write(tmp_path / "mine.toml", LATENT))
    spec = cfg.spec(())
    assert [(c.name, c.n) for c in spec.categorical] == [("digit", 4)]
    assert [(c.name, c.low, c.high) for c in spec.continuous] == [("width", -2.0, 3.5)]  # the preset's array replaced the family's
    assert (spec.noise_dim, spec.noise) == (16, "uniform") and spec.input_names == ("z", "code_cat", "code_cont")
    recipe_side, spec_side = cfg.to_dict()["latent"], spec.to_dict()
    assert recipe_side == {k: spec_side[k] for k in recipe_side}  # same field names, same values
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # config.json round trip
    assert load_config("cgan", ["latent.noise_dim=8"]).spec(("a", "b")).noise_dim == 8


@pytest.mark.parametrize("body, fragment", [
    ("[[latent.categorical]]\nname = \"c\"\nn = 1\n", "needs n >= 2"),
    ("[[latent.continuous]]\nname = \"w\"\nlow = 1.0\nhigh = 1.0\n", "needs finite low < high"),
    ("[[latent.continuous]]\nname = \"w\"\nlow = \"small\"\n", "low must be a number"),
    ("[[latent.continuous]]\nname = \"a b\"\n", "name 'a b' is invalid"),
    ("[[latent.continuous]]\nlow = 0.0\n", "must be a table with name, low, high"),
    ("[[latent.categorical]]\nname = \"c\"\n", "must be a table with name, n"),
    ("[[latent.continuous]]\nname = \"w\"\nmin = 0.0\n", "unknown key(s) ['min']"),
    ("[[latent.categorical]]\nname = \"w\"\nn = 3\n[[latent.continuous]]\nname = \"w\"\n", "used twice"),
    ("[latent]\nnoise = \"cauchy\"\n", "latent.noise 'cauchy' is unknown"),
    ("[latent]\nnoise_dim = 0\n", "latent.noise_dim must be an integer >= 1"),
    ("[latent]\ncontinuous = 2\n", "continuous must be an array of tables"),
    ("[latent]\nsize = 2\n", "unknown key(s) ['size']"),
    ("latent = 3\n", "latent must be a table"),
    ("[techniques.mutual_information]\nlambda_cont = -1.0\n", "lambda_cont must be >= 0"),
])
def test_bad_latent_tables_are_one_line_errors(tmp_path, body, fragment):
    one_line_error(load_config, write(tmp_path / "bad.toml", 'extends = "infogan"\n' + body), match=re.escape(fragment))


def test_mutual_information_without_codes_is_refused():
    one_line_error(load_config, "cgan", ["techniques.mutual_information.lambda_cat=2.0"], match="needs InfoGAN codes")


# ------------------------------------------------------------------ the old shape
OLD_INFOGAN = {  # a config.json / checkpoint header written before [latent] and technique-owned lambdas
    "recipe": "fashion-infogan", "data": "fashion-mnist", "conditional": False, "noise_dim": 62, "noise": "normal",
    "categorical": [10], "continuous": 2, "lambda_cat": 1.0, "lambda_cont": 0.1, "loss": "nonsaturating", "epochs": 6.0,
    "batch_size": 64, "lr_g": 1e-3, "lr_d": 2e-4, "beta1": 0.5, "beta2": 0.999, "log_every": 50, "sample_every": 500,
    "checkpoint_every": 937, "keep_checkpoints": 10, "techniques": {},
    "net": {"family": "conv", "g_width": 64, "g_fc": 512, "d_width": 64, "d_fc": 1024, "d_norm": "batch", "q_hidden": 128},
}


def test_an_old_shape_config_converts_to_the_preset_it_was():
    cfg = TrainConfig.from_dict(OLD_INFOGAN)
    # the preset as it was then: the infogan family on Fashion-MNIST (the preset has since gained FC 1024, EMA, ...)
    assert cfg == dataclasses.replace(load_config("infogan", ["keep_checkpoints=10"]), recipe="fashion-infogan")
    assert [c.name for c in cfg.latent.categorical] == ["c"] and [c.name for c in cfg.latent.continuous] == ["u0", "u1"]
    assert cfg.techniques == {"mutual_information": {"lambda_cat": 1.0, "lambda_cont": 0.1}}
    old_cgan = {"recipe": "fashion-cgan", "data": "fashion-mnist", "noise_dim": 62, "categorical": [], "continuous": 0,
                "lambda_cat": 1.0, "lambda_cont": 1.0, "techniques": {"ema": {"decay": 0.999}}}
    cgan = TrainConfig.from_dict(old_cgan)
    assert cgan.techniques == {"ema": {"decay": 0.999}} and not cgan.infogan  # lambdas without codes never did anything
    two = upgrade({"categorical": [10, 4], "continuous": 1})["latent"]
    assert [c["name"] for c in two["categorical"]] == ["c0", "c1"] and two["continuous"] == [{"name": "u0", "low": -1.0, "high": 1.0}]
    assert load_config("gan2d", ["noise_dim=16"]).latent.noise_dim == 16  # the old flat key still overrides (benchmarks use it)
    one_line_error(TrainConfig.from_dict, {**OLD_INFOGAN, "continuous": "two"}, match="continuous \\(old shape\\) must be an integer")
    one_line_error(TrainConfig.from_dict, {**OLD_INFOGAN, "categorical": 10}, match="categorical \\(old shape\\) must be a list")


def _old_shape(d: dict) -> dict:
    d = dict(d)
    lat = d.pop("latent")
    mi = d["techniques"].pop("mutual_information", {})
    d.update(noise_dim=lat["noise_dim"], noise=lat["noise"], categorical=[c["n"] for c in lat["categorical"]],
             continuous=len(lat["continuous"]), lambda_cat=mi.get("lambda_cat", 1.0), lambda_cont=mi.get("lambda_cont", 1.0))
    return d


def tiny_infogan(folder: Path, *overrides: str) -> TrainConfig:
    return load_config("infogan", [*TINY_CONV, "net.g_fc=16", "image_size=8", "channels=3", "data=image-folder",
                                   f"data_dir={json.dumps(str(folder))}", "monitor_every=0", *overrides])


def test_an_old_shape_run_resumes_exactly_and_its_checkpoint_exports(tmp_path, shapes):
    whole = Trainer(tiny_infogan(shapes, "steps=6"), tmp_path / "whole")
    whole.run()
    part = Trainer(tiny_infogan(shapes, "steps=6"), tmp_path / "part")
    part.run(until=3)
    cfg_path = tmp_path / "part" / "config.json"
    old = _old_shape(json.loads(cfg_path.read_text()))
    assert "latent" not in old and old["categorical"] == [10] and old["lambda_cont"] == 0.1
    cfg_path.write_text(json.dumps(old))
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.step == 3
    resumed.run()
    a, b = ({k: v for k, v in t.state_tensors().items() if not k.startswith("rng.")} for t in (whole, resumed))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # a checkpoint whose header holds the old shape exports, and its card lists the lambdas as the technique's
    ck = ckpt_io.load(ckpt_io.newest(tmp_path / "part"))
    old_ckpt = tmp_path / "old.safetensors"
    ckpt_io.save(old_ckpt, ck.tensors, {**ck.meta, "config": _old_shape(ck.meta["config"])})
    run_cli("export", old_ckpt, "-o", tmp_path / "m.onnx")
    card = Runtime.from_file(tmp_path / "m.onnx").card
    assert card["techniques"]["mutual_information"] == {"lambda_cat": 1.0, "lambda_cont": 0.1}
    assert [c.name for c in Runtime.from_file(tmp_path / "m.onnx").spec.continuous] == ["u0", "u1"]
    # an old config that cannot be read any more says so in one line
    cfg_path.write_text(json.dumps({**old, "continuous": "two"}))
    assert_one_line_error(run_cli("train", "--resume", tmp_path / "part", ok=False), "continuous (old shape) must be an integer")


def test_epochs_given_on_resume_set_the_length_over_the_steps_the_run_started_with(tmp_path, shapes):
    """A run started with a number of steps and resumed with --epochs trains to that many epochs (the run's steps used
    to win, and the resume stopped where it was); --steps and --epochs together are refused."""
    run = tmp_path / "run"
    first = Trainer(tiny_infogan(shapes, "steps=2"), run)
    first.run()  # its lock on the folder ends with run()
    per_epoch = first.batches.per_epoch
    out = run_cli("train", "--resume", run, "--epochs", "3").output
    assert f"done at step {3 * per_epoch}/{3 * per_epoch}" in out and 3 * per_epoch > 2
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["steps"], cfg["epochs"]) == (0, 3.0)
    before = (run / "config.json").read_bytes()  # both lengths at once: refused (--steps used to win silently)
    assert_one_line_error(run_cli("train", "--resume", run, "--epochs", "9", "--steps", str(3 * per_epoch + 1), ok=False),
                          "both set the run's length; give one of them")
    assert (run / "config.json").read_bytes() == before
    out = run_cli("train", "--resume", run, "--steps", str(3 * per_epoch + 1)).output
    assert f"done at step {3 * per_epoch + 1}/{3 * per_epoch + 1}" in out
    # a 2D mixture has no epochs: said in one line, and no run folder is left behind
    assert_one_line_error(run_cli("train", "ring8", "--epochs", "2", "-o", tmp_path / "r8", ok=False), "2D mixtures have no epochs")
    assert not (tmp_path / "r8").exists()


# ------------------------------------------------------------------ lambdas are the technique's
def test_the_lambdas_weigh_the_information_terms_of_the_loss(tmp_path, shapes):
    def first_d_step(*lams: str):
        trainer = Trainer(tiny_infogan(shapes, "steps=1", "amp=off", *lams), tmp_path / str(len(lams)))
        return trainer.d_step(), torch.cat([p.detach().flatten() for p in trainer.D.parameters()])

    (base, w_base), (scaled, w_scaled), (off, _) = (
        first_d_step(),  # the family's 1.0 and 0.1
        first_d_step("techniques.mutual_information.lambda_cat=2.0", "techniques.mutual_information.lambda_cont=0.5"),
        first_d_step("techniques.mutual_information.lambda_cont=0.0"),
    )
    assert base["d_info_cat"].item() > 0 and base["d_info_cont"].item() > 0
    assert scaled["d_info_cat"].item() == pytest.approx(2.0 * base["d_info_cat"].item(), rel=1e-5)
    assert scaled["d_info_cont"].item() == pytest.approx(5.0 * base["d_info_cont"].item(), rel=1e-5)
    assert off["d_info_cont"].item() == 0.0 and off["d_info_cat"].item() == pytest.approx(base["d_info_cat"].item(), rel=1e-5)
    assert base["d_adv"].item() == pytest.approx(scaled["d_adv"].item(), rel=1e-6)  # same batch, same start
    assert not torch.equal(w_base, w_scaled)  # a different loss took D somewhere else


# ------------------------------------------------------------------ --data DIR
def test_train_cgan_on_a_folder_picks_its_shape_and_the_card_names_it(tmp_path, shapes):
    run = tmp_path / "run"
    result = run_cli("train", "cgan", "--data", shapes, "--set", "steps=2", "--set", "net.g_width=8", "--set", "net.d_width=8",
                     "--set", "net.g_fc=16", "--set", "net.d_fc=16", "--set", "batch_size=4", "--set", "monitor_every=0",
                     "--no-progress", "-o", run)
    assert "Training cgan for 2 steps" in result.output
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["recipe"], cfg["data"], cfg["channels"], cfg["image_size"]) == ("cgan", "image-folder", 3, 32)
    meta = ckpt_io.load(ckpt_io.newest(run)).meta
    assert meta["data"] == {"name": "shapes", "source": str(shapes), "n": 16}
    assert meta["spec"]["labels"] == ["circle", "square"] and meta["spec"]["output"]["shape"] == [3, 32, 32]
    run_cli("export", run, "-o", tmp_path / "m.onnx")
    card = Runtime.from_file(tmp_path / "m.onnx").card
    assert card["recipe"] == "cgan" and card["data"]["name"] == "shapes"


def test_images_that_disagree_name_the_set_to_give(tmp_path):
    sizes = make_folder(tmp_path / "sizes", sizes=((32, 32), (64, 48)))
    assert_one_line_error(run_cli("train", "cgan", "--data", sizes, "-o", tmp_path / "r", ok=False), "give --set image_size=N")
    modes = make_folder(tmp_path / "modes", modes=("RGB", "L"))
    assert_one_line_error(run_cli("train", "cgan", "--data", modes, "-o", tmp_path / "r", ok=False), "give --set channels=3")
    odd = make_folder(tmp_path / "odd", sizes=((100, 100),), per_class=2)
    assert_one_line_error(run_cli("train", "cgan", "--data", odd, "-o", tmp_path / "r", ok=False), "give --set image_size=96")
    assert_one_line_error(run_cli("train", "ring8", "--data", odd, "-o", tmp_path / "r", ok=False), "needs an image recipe")
    single = make_folder(tmp_path / "single", per_class=2)
    for f in (single / "square").iterdir():
        f.unlink()
    (single / "square").rmdir()
    assert_one_line_error(run_cli("train", "cgan", "--data", single, "-o", tmp_path / "r", ok=False), "or train infogan")
    assert with_data_folder(read_recipe("infogan"), str(single))["image_size"] == 32  # no labels needed
    # what the user sets is kept and not probed; the rest still comes from the images
    d = with_data_folder(apply_overrides(read_recipe("cgan"), ["image_size=16"]), str(sizes), ["image_size=16"])
    assert (d["data"], d["channels"], d["image_size"]) == ("image-folder", 3, 16)
    gray = make_folder(tmp_path / "gray", modes=("L",), sizes=((28, 28),), per_class=2)
    d = with_data_folder(read_recipe("infogan"), str(gray))
    assert (d["channels"], d["image_size"], d["data_dir"]) == (1, 28, str(gray))


def test_fashion_infogan_ss_is_fashion_infogan_without_the_catgan_term_plus_its_own_tables():
    """fashion-infogan-ss extends fashion-infogan, turns its CatGAN term off (``catgan = false``) and adds two keys
    to the base's mutual_information table (the late schedule of Q's term on G's samples), keeping the base's."""
    base, ss = (dataclasses.asdict(load_config(n)) for n in ("fashion-infogan", "fashion-infogan-ss"))
    own = {"recipe", "epochs", "techniques"}
    assert {k: v for k, v in base.items() if k not in own} == {k: v for k, v in ss.items() if k not in own}
    assert "catgan" in base["techniques"] and ss["epochs"] == 6
    shared = {k: v for k, v in base["techniques"].items() if k not in ("catgan", "mutual_information")}
    assert {k: v for k, v in ss["techniques"].items() if k not in ("semi_supervised", "mutual_information")} == shared
    late = {"q_cat_from_fakes_late": 0.01, "late_from": 0.66666}
    assert ss["techniques"]["mutual_information"] == {**base["techniques"]["mutual_information"], **late}
    assert ss["techniques"]["semi_supervised"]["late_from"] == late["late_from"]  # both switch at the start of epoch 5


def test_a_technique_set_to_false_is_removed_and_true_gives_its_defaults(tmp_path):
    preset = tmp_path / "no-ema.toml"
    preset.write_text('extends = "fashion-cgan"\n\n[techniques]\nema = false\ndiffaugment = true\n')
    cfg = load_config(str(preset))
    assert "ema" not in cfg.techniques and cfg.techniques["diffaugment"] == {}
    assert cfg.techniques["mode_seeking"] == {"weight": 0.5}  # the rest of the base's tables stay
    assert "mode_seeking" not in load_config("fashion-cgan", ["techniques.mode_seeking=false"]).techniques
    assert load_config("cgan", ["techniques.diffaugment=true"]).techniques == {"diffaugment": {}}
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # the saved config.json has no switches left in it
    one_line_error(load_config, "fashion-cgan", ["techniques.ema=false", "techniques.ema.decay=0.9"],
                   match="ema is a value, not a table")
    # any other value says what is accepted: a table, true or false
    one_line_error(load_config, "fashion-cgan", ["techniques.ema=maybe"], match="true .its defaults. or false .off.")
