"""Training configuration: a frozen dataclass, TOML recipes, command-line overrides.

A recipe is a TOML file under ``train/recipes/`` whose keys are the fields of
``TrainConfig`` (with a ``[net]`` table for ``NetConfig`` and a
``[techniques.NAME]`` table per stabilizer).  Unknown keys and wrong types
are rejected with the list of valid names.  Every field can be overridden on
the command line as ``--set key=value`` (``net.g_width=128``,
``techniques.ema.decay=0.999``).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from ctrlgen.data import FASHION_MNIST_LABELS, MIXTURES
from ctrlgen.errors import CtrlgenError
from ctrlgen.nets import NetConfig
from ctrlgen.spec import CategoricalCode, ContinuousCode, LatentSpec

DATASETS = ("fashion-mnist", "image-folder", *MIXTURES)
DEVICES = ("auto", "cpu", "cuda")
AMPS = ("auto", "off", "bf16", "fp16")
RUN_FIELDS = {"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "device", "amp", "progress",
              "monitor_every", "monitor_samples", "best_metric", "on_collapse", "nonfinite_limit", "compile"}
"""Fields that may change on --resume; the rest define the run and must stay."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs; saved as the run's config.json."""

    recipe: str = "custom"  # a name for the run and the model card
    # ---- data
    data: str = "fashion-mnist"  # fashion-mnist | image-folder | ring8 | grid25
    data_dir: str = ""  # IDX folder or class-subfolder folder ("" = the Debian Fashion-MNIST path)
    image_size: int = 28  # images are resized to this (image folders) or checked against it (IDX)
    channels: int = 1  # 1 = grayscale, 3 = RGB
    # ---- latent layout (becomes the LatentSpec)
    conditional: bool = True  # condition G and D on the class label
    noise_dim: int = 64  # size of z
    noise: str = "normal"  # normal | uniform
    categorical: tuple[int, ...] = ()  # InfoGAN: values of each categorical code, e.g. [10]
    continuous: int = 0  # InfoGAN: number of continuous codes, uniform in [-1, 1]
    lambda_cat: float = 1.0  # InfoGAN: weight of the categorical mutual-information term
    lambda_cont: float = 1.0  # InfoGAN: weight of the continuous term (Gaussian NLL with unit variance)
    # ---- networks
    net: NetConfig = field(default_factory=NetConfig)
    # ---- optimization
    loss: str = "nonsaturating"  # name in the loss registry (ctrlgen.train.losses)
    steps: int = 0  # G updates; 0 = derive from epochs
    epochs: float = 5.0  # passes over the data (image data) when steps = 0
    batch_size: int = 64
    lr_g: float = 2e-4  # separate learning rates: TTUR when they differ
    lr_d: float = 2e-4
    beta1: float = 0.5  # Adam betas (DCGAN's 0.5 for beta1)
    beta2: float = 0.999
    n_critic: int = 1  # D updates per G update
    techniques: dict[str, dict[str, Any]] = field(default_factory=dict)  # stabilizers by name, with parameters
    mode: str = "standard"  # standard (one G) | egan (a population of G's evolved with several losses: train/egan.py)
    egan: dict[str, Any] = field(default_factory=dict)  # E-GAN settings (mode = "egan"): population, mutations, gamma, ...
    ensemble: int = 1  # 2D mixtures: train this many seeds at once as one vmapped ensemble (ctrlgen.ensemble); batch_size is per seed
    # ---- run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    compile: str = "auto"  # torch.compile of G and D: auto (on CUDA only) | off | on (train/accel.py)
    amp: str = "auto"  # mixed precision: auto (bf16 on CUDA; on CPUs with bf16 instructions for image models; else off) | off | bf16 | fp16
    log_every: int = 50  # steps between metrics.jsonl lines
    sample_every: int = 500  # steps between fixed-z sample grids (0 = never)
    checkpoint_every: int = 1000  # steps between checkpoints (also at the end and on Ctrl-C)
    keep_checkpoints: int = 3  # newest periodic checkpoints kept
    progress: bool = True  # show a progress bar
    # ---- monitoring (ctrlgen.train.monitor): cheap metrics, best checkpoint, collapse detector
    monitor_every: int = 500  # steps between checks (0 = off)
    monitor_samples: int = 2000  # samples per check
    best_metric: str = "auto"  # keeps checkpoints/best.safetensors: a cheap metric name, auto (fd / reverse_kl) or none
    on_collapse: str = "warn"  # warn | rollback (restore the last healthy state, new seed, halved lrs) | stop
    nonfinite_limit: int = 5  # NaN/inf steps undone (train/nonfinite.py) before training stops

    def __post_init__(self) -> None:
        from ctrlgen.train.accel import check_compile
        from ctrlgen.train.techniques import resolve_net

        # Techniques that are network options (packing, spectral_norm, ...) set net.* fields.
        object.__setattr__(self, "net", resolve_net(self))
        if self.data not in DATASETS:
            raise CtrlgenError(f"data {self.data!r} is unknown; use one of {', '.join(DATASETS)}")
        if self.device not in DEVICES:
            raise CtrlgenError(f"device {self.device!r} is unknown; use one of {', '.join(DEVICES)}")
        if self.amp not in AMPS:
            raise CtrlgenError(f"amp {self.amp!r} is unknown; use one of {', '.join(AMPS)}")
        check_compile(self.compile)
        if self.data == "image-folder" and not self.data_dir:
            raise CtrlgenError("data=image-folder needs data_dir (a folder with one subfolder per class)")
        positive = ("noise_dim", "batch_size", "n_critic", "log_every", "checkpoint_every", "keep_checkpoints", "image_size", "nonfinite_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise CtrlgenError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "sample_every", "continuous", "monitor_every"):
            if getattr(self, name) < 0:
                raise CtrlgenError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "epochs"):
            if not getattr(self, name) > 0:
                raise CtrlgenError(f"{name} must be > 0, got {getattr(self, name)}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise CtrlgenError("beta1 and beta2 must be in [0, 1)")
        if self.channels not in (1, 3):
            raise CtrlgenError(f"channels must be 1 or 3, got {self.channels}")
        if any(n < 2 for n in self.categorical):
            raise CtrlgenError(f"each categorical code needs >= 2 values, got {list(self.categorical)}")
        if self.batch_size % self.net.pack:
            raise CtrlgenError(f"batch_size {self.batch_size} must be a multiple of net.pack={self.net.pack}")
        if self.points and self.net.family != "mlp":
            raise CtrlgenError(f"data={self.data} makes 2D points; set net.family = \"mlp\"")
        if not self.points and self.net.family != "conv":
            raise CtrlgenError(f"data={self.data} makes images; set net.family = \"conv\"")
        if self.infogan and self.net.pack > 1:
            raise CtrlgenError("InfoGAN's Q head reads one sample at a time; packing (net.pack > 1) makes no sense with it")
        if self.ensemble < 1:
            raise CtrlgenError(f"ensemble must be >= 1 (the number of seeds trained at once), got {self.ensemble}")
        if self.ensemble > 1:
            if not self.points:
                raise CtrlgenError("ensemble > 1 is for the 2D mixtures (many seeds of tiny MLPs); train image models with ensemble=1")
            if self.mode == "egan" and self.egan.get("population", 1) != 1:
                raise CtrlgenError("an ensemble selects one E-GAN survivor per seed; use egan.population = 1 or ensemble=1")
            if self.net.d_norm == "spectral":
                raise CtrlgenError("spectral norm cannot run as an ensemble (vmap cannot batch its power iteration); use ensemble=1")
        # Names of losses, techniques and monitored metrics are checked where their registries live.
        from ctrlgen.train.egan import check_egan
        from ctrlgen.train.losses import get_loss
        from ctrlgen.train.monitor import check_monitoring
        from ctrlgen.train.techniques import check_techniques

        check_monitoring(self)
        check_egan(self)

        get_loss(self.loss)
        check_techniques(self)

    @property
    def points(self) -> bool:
        return self.data in MIXTURES

    @property
    def infogan(self) -> bool:
        return bool(self.categorical) or self.continuous > 0

    # ------------------------------------------------------------------ spec
    def spec(self, class_names: tuple[str, ...]) -> LatentSpec:
        return LatentSpec(
            noise_dim=self.noise_dim,
            noise=self.noise,
            output_kind="points" if self.points else "image",
            output_shape=(2,) if self.points else (self.channels, self.image_size, self.image_size),
            labels=tuple(class_names) if self.conditional else (),
            categorical=tuple(CategoricalCode(f"c{i}" if len(self.categorical) > 1 else "c", n) for i, n in enumerate(self.categorical)),
            continuous=tuple(ContinuousCode(f"u{i}", -1.0, 1.0) for i in range(self.continuous)),
            extra={"mixture": self.data} if self.points else {"data": self.data},
        )

    def default_class_names(self) -> tuple[str, ...]:
        if self.data == "fashion-mnist":
            return FASHION_MNIST_LABELS
        return ()

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["categorical"] = list(self.categorical)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        return _build(cls, d, where)

    def replace(self, **changes: Any) -> TrainConfig:
        d = self.to_dict()
        d.update(changes)
        return TrainConfig.from_dict(d)


# ---------------------------------------------------------------------- typed building
def _check_type(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise CtrlgenError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CtrlgenError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CtrlgenError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise CtrlgenError(f"{where}: {key} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise CtrlgenError(f"{where}: {key} must be a list, got {value!r}")
        return tuple(_check_type(v, typing.get_args(tp)[0], key, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise CtrlgenError(f"{where}: {key} must be a table, got {value!r}")
        inner = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        for k, v in value.items():
            if typing.get_origin(inner) is dict and not isinstance(v, dict):
                raise CtrlgenError(f"{where}: {key}.{k} must be a table of parameters (e.g. {key}.{k}.NAME=VALUE), got {v!r}")
        return {str(k): (dict(v) if isinstance(v, dict) else v) for k, v in value.items()}
    return value


def _build(cls: type, d: dict[str, Any], where: str):
    if not isinstance(d, dict):
        raise CtrlgenError(f"{where}: expected a table of settings")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise CtrlgenError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
    kwargs = {}
    for k, v in d.items():
        if hints[k] is NetConfig:
            kwargs[k] = v if isinstance(v, NetConfig) else _build(NetConfig, v, f"{where} [net]")
        else:
            kwargs[k] = _check_type(v, hints[k], k, where)
    return cls(**kwargs)


# ---------------------------------------------------------------------- recipes
def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ctrlgen.train").joinpath("recipes").iterdir() if p.name.endswith(".toml"))


def read_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe by name (``fashion-cgan``) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise CtrlgenError(f"recipe file {path} does not exist; give a recipe name ({', '.join(recipe_names())}) or a TOML path")
        text, where = path.read_text(), str(path)
    else:
        res = resources.files("ctrlgen.train").joinpath("recipes", f"{name_or_path}.toml")
        if not res.is_file():
            raise CtrlgenError(f"recipe {name_or_path!r} is unknown; use one of: {', '.join(recipe_names())} (or a TOML path)")
        text, where = res.read_text(), f"recipe {name_or_path}"
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CtrlgenError(f"{where} is not valid TOML ({e}); fix the file") from None
    d.setdefault("recipe", path.stem if path.suffix == ".toml" else name_or_path)
    return d


def parse_override(item: str) -> tuple[list[str], Any]:
    """``key.sub=value`` -> (["key", "sub"], value); the value is read as TOML, else as a bare string."""
    if "=" not in item:
        raise CtrlgenError(f"override {item!r} must look like key=value (e.g. lr_g=1e-4 or net.g_width=128)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise CtrlgenError(f"override {item!r} has an empty key; use key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    d = json.loads(json.dumps(d))  # deep copy of plain data
    for item in overrides:
        keys, value = parse_override(item)
        node = d
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise CtrlgenError(f"override {item!r}: {k} is a value, not a table; set it as {k}=VALUE")
            node = nxt
        node[keys[-1]] = value
    return d


def load_config(recipe: str, overrides: list[str] = ()) -> TrainConfig:
    d = apply_overrides(read_recipe(recipe), list(overrides))
    return TrainConfig.from_dict(d, where=f"recipe {d.get('recipe', recipe)}")
