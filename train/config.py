"""Training configuration: a frozen dataclass built from a recipe and command-line overrides.

A recipe (``ctrlgen.train.recipe``: TOML files, ``extends``, ``--set``) gives a table whose
keys are the fields of ``TrainConfig``: a ``[net]`` table for ``NetConfig``, a ``[latent]``
table in the shape of the LatentSpec's JSON (``noise_dim``, ``noise``, ``[[latent.categorical]]``
with ``name`` and ``n``, ``[[latent.continuous]]`` with ``name``, ``low`` and ``high``), and a
``[techniques.NAME]`` table of parameters per technique.  Unknown keys and wrong types are
rejected with the list of valid names.  Every field can be overridden on the command line as
``--set key=value`` (``net.g_width=128``, ``latent.noise_dim=32``, ``techniques.ema.decay=0.999``).

Configs written before the ``[latent]`` table (flat ``noise_dim``, ``noise``, ``categorical = [10]``,
``continuous = 2``, ``lambda_cat``, ``lambda_cont``) still load: ``from_dict`` converts them
(see ``upgrade``), so old runs resume and old checkpoints export.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from ctrlgen import limits
from ctrlgen.data import FASHION_MNIST_LABELS, MIXTURES
from ctrlgen.errors import CtrlgenError
from ctrlgen.nets import NetConfig
from ctrlgen.runtime import DEVICES
from ctrlgen.spec import NOISE_KINDS, CategoricalCode, ContinuousCode, LatentSpec
from ctrlgen.train.recipe import apply_overrides, parse_override, read_recipe, recipe_names, with_data_folder

__all__ = ["LatentConfig", "TrainConfig", "apply_overrides", "load_config", "parse_override", "read_recipe", "recipe_names",
           "upgrade", "with_data_folder"]

DATASETS = ("fashion-mnist", "image-folder", *MIXTURES)
AMPS = ("auto", "off", "bf16", "fp16")
RUN_FIELDS = {"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints", "device", "amp", "progress",
              "monitor_every", "monitor_samples", "best_metric", "on_collapse", "nonfinite_limit", "compile",
              "tensorboard", "lr_decay", "lr_decay_start", "lr_g_late", "lr_d_late"}
"""Fields that may change on --resume; the rest define the run and must stay."""


@dataclass(frozen=True)
class LatentConfig:
    """The recipe's ``[latent]`` table: the parts of the LatentSpec a recipe chooses, with the field
    names of the spec's JSON.  Labels come from the data; the output shape from data, channels, image_size."""

    noise_dim: int = 64  # size of z
    noise: str = "normal"  # normal | uniform
    categorical: tuple[CategoricalCode, ...] = ()  # InfoGAN: [[latent.categorical]] name, n (values 0..n-1)
    continuous: tuple[ContinuousCode, ...] = ()  # InfoGAN: [[latent.continuous]] name, low, high (uniform in [low, high])

    def __post_init__(self) -> None:
        if isinstance(self.noise_dim, bool) or not isinstance(self.noise_dim, int) or self.noise_dim < 1:
            raise CtrlgenError(f"latent.noise_dim must be an integer >= 1, got {self.noise_dim!r}")
        if self.noise not in NOISE_KINDS:
            raise CtrlgenError(f"latent.noise {self.noise!r} is unknown; use one of {', '.join(NOISE_KINDS)}")
        names = [c.name for c in (*self.categorical, *self.continuous)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise CtrlgenError(f"latent code name(s) {dup} are used twice; give every [[latent.categorical]] and [[latent.continuous]] its own name")

    def to_dict(self) -> dict[str, Any]:
        return {
            "noise_dim": self.noise_dim,
            "noise": self.noise,
            "categorical": [{"name": c.name, "n": c.n} for c in self.categorical],
            "continuous": [{"name": c.name, "low": c.low, "high": c.high} for c in self.continuous],
        }

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> LatentConfig:
        where = f"{where} [latent]"
        if not isinstance(d, dict):
            raise CtrlgenError(f"{where}: latent must be a table (noise_dim, noise, categorical, continuous), got {d!r}")
        unknown = sorted(set(d) - {"noise_dim", "noise", "categorical", "continuous"})
        if unknown:
            raise CtrlgenError(f"{where}: unknown key(s) {unknown}; valid keys: categorical, continuous, noise, noise_dim")
        kw: dict[str, Any] = {}
        if "noise_dim" in d:
            kw["noise_dim"] = _check_type(d["noise_dim"], int, "noise_dim", where)
        if "noise" in d:
            kw["noise"] = _check_type(d["noise"], str, "noise", where)
        kw["categorical"] = tuple(_code(CategoricalCode, c, f"{where} categorical[{i}]", {"name": str, "n": int}, 'name = "c", n = 10')
                                  for i, c in enumerate(_codes(d, "categorical", where)))
        kw["continuous"] = tuple(_code(ContinuousCode, c, f"{where} continuous[{i}]", {"name": str, "low": float, "high": float},
                                       'name = "width", low = -1.0, high = 1.0')
                                 for i, c in enumerate(_codes(d, "continuous", where)))
        try:
            return cls(**kw)
        except CtrlgenError as e:
            raise CtrlgenError(f"{where}: {e}") from None


def _codes(d: dict[str, Any], key: str, where: str) -> list[Any]:
    value = d.get(key, [])
    if not isinstance(value, (list, tuple)):
        raise CtrlgenError(f"{where}: {key} must be an array of tables ([[latent.{key}]] entries), got {value!r}")
    return list(value)


def _code(kind: type, c: Any, where: str, types: dict[str, type], example: str):
    """One code from its table (name required, the rest as the spec's JSON has them), checked by the spec's own class."""
    if not isinstance(c, dict) or "name" not in c or ("n" in types and "n" not in c):
        raise CtrlgenError(f"{where} must be a table with {', '.join(types)} (e.g. {{{example}}}), got {c!r}")
    unknown = sorted(set(c) - set(types))
    if unknown:
        raise CtrlgenError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(types)}")
    try:
        return kind(**{k: _check_type(v, types[k], k, where) for k, v in c.items()})
    except CtrlgenError as e:
        raise CtrlgenError(f"{where}: {e}") from None


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
    conditional: bool = True  # condition G and D on the class label (the spec's labels come from the data)
    latent: LatentConfig = field(default_factory=LatentConfig)  # [latent]: noise and InfoGAN codes, as in the spec's JSON
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
    lr_decay: str = "none"  # none | linear: both learning rates fall linearly to 0 over the run's last (1 - lr_decay_start)
    lr_decay_start: float = 0.5  # the share of the run's G steps after which the linear decay starts
    lr_g_late: float = 0.0  # under lr_decay: G's rate from lr_decay_start on, falling from here to 0 (0 = lr_g)
    lr_d_late: float = 0.0  # the same for D (0 = lr_d)
    techniques: dict[str, dict[str, Any]] = field(default_factory=dict)  # stabilizers by name, with parameters
    mode: str = "standard"  # standard (one G) | egan (a population of G's evolved with several losses: train/egan.py)
    egan: dict[str, Any] = field(default_factory=dict)  # E-GAN settings (mode = "egan"): population, mutations, gamma, ...
    ensemble: int = 1  # 2D mixtures: train this many seeds at once as one vmapped ensemble (train/ensemble.py); batch_size is per seed
    # ---- run
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    compile: str = "auto"  # torch.compile of G and D: auto (eager: measured faster on CUDA, train/accel.py) | off | on
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
    tensorboard: bool = False  # also write losses, monitored metrics and sample grids to RUN/tensorboard/ (train/board.py)

    def __post_init__(self) -> None:
        from ctrlgen.train.accel import check_compile
        from ctrlgen.train.techniques import resolve_net

        # Techniques that are network options (packing, spectral_norm, ...) set net.* fields.
        object.__setattr__(self, "net", resolve_net(self))
        if self.data not in DATASETS:
            raise CtrlgenError(f"data {self.data!r} is unknown; use one of {', '.join(DATASETS)} (a folder of images: --data DIR)")
        if self.device not in DEVICES:
            raise CtrlgenError(f"device {self.device!r} is unknown; use one of {', '.join(DEVICES)}")
        if self.amp not in AMPS:
            raise CtrlgenError(f"amp {self.amp!r} is unknown; use one of {', '.join(AMPS)}")
        check_compile(self.compile)
        if self.data == "image-folder" and not self.data_dir:
            raise CtrlgenError("data=image-folder needs data_dir (a folder with one subfolder per class)")
        positive = ("batch_size", "n_critic", "log_every", "checkpoint_every", "keep_checkpoints", "image_size", "nonfinite_limit")
        for name in positive:
            if getattr(self, name) < 1:
                raise CtrlgenError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("steps", "sample_every", "monitor_every"):
            if getattr(self, name) < 0:
                raise CtrlgenError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("lr_g", "lr_d", "epochs"):
            if not getattr(self, name) > 0:
                raise CtrlgenError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lr_decay not in ("none", "linear"):
            raise CtrlgenError(f"lr_decay {self.lr_decay!r} is unknown; use none or linear")
        if not 0 <= self.lr_decay_start < 1:
            raise CtrlgenError(f"lr_decay_start must be in [0, 1) (a share of the run's steps), got {self.lr_decay_start}")
        for name in ("lr_g_late", "lr_d_late"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise CtrlgenError(f"{name} must be a finite number >= 0 (0 keeps the rate the run starts with), got {getattr(self, name)}")
            if getattr(self, name) and self.lr_decay == "none":
                raise CtrlgenError(f"{name} sets a rate for the decay, but lr_decay is none; add lr_decay = \"linear\" or drop {name}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise CtrlgenError("beta1 and beta2 must be in [0, 1)")
        if self.channels not in (1, 3):
            raise CtrlgenError(f"channels must be 1 or 3, got {self.channels}")
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
        limits.check_recipe(self)  # sizes and counts a recipe may ask for (ctrlgen/limits.py): one line, not a MemoryError
        check_model_size(self)

    @property
    def points(self) -> bool:
        return self.data in MIXTURES

    @property
    def infogan(self) -> bool:
        return bool(self.latent.categorical or self.latent.continuous)

    @property
    def noise_dim(self) -> int:
        return self.latent.noise_dim

    # ------------------------------------------------------------------ spec
    def spec(self, class_names: tuple[str, ...]) -> LatentSpec:
        from ctrlgen.train.techniques import resolve_spec

        return resolve_spec(self, self._spec(class_names), class_names)  # semi-supervision names the categorical values

    def _spec(self, class_names: tuple[str, ...]) -> LatentSpec:
        return LatentSpec(
            noise_dim=self.latent.noise_dim,
            noise=self.latent.noise,
            output_kind="points" if self.points else "image",
            output_shape=(2,) if self.points else (self.channels, self.image_size, self.image_size),
            labels=tuple(class_names) if self.conditional else (),
            categorical=self.latent.categorical,
            continuous=self.latent.continuous,
            extra={"mixture": self.data} if self.points else {"data": self.data},
        )

    def default_class_names(self) -> tuple[str, ...]:
        if self.data == "fashion-mnist":
            return FASHION_MNIST_LABELS
        return ()

    # ------------------------------------------------------------------ (de)serialization
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["latent"] = self.latent.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config") -> TrainConfig:
        """From a recipe, a run's config.json or a checkpoint header; the old flat shape is converted (``upgrade``)."""
        return _build(cls, switches(upgrade(d, where), where), where)

    def replace(self, **changes: Any) -> TrainConfig:
        d = self.to_dict()
        d.update(changes)
        return TrainConfig.from_dict(d)


# ---------------------------------------------------------------------- size (bounds themselves: ctrlgen/limits.py)

def check_model_size(cfg: TrainConfig) -> None:
    """G and D built on the meta device (no memory): their weights, gradients and Adam moments must fit in
    half this machine's RAM (or the GPU's)."""
    import torch

    from ctrlgen.nets import Discriminator, Generator

    names = cfg.default_class_names() or tuple(f"c{i}" for i in range(10))
    try:
        spec = cfg.spec(names if cfg.conditional else ())
        with torch.device("meta"):
            n = sum(p.numel() for m in (Generator(spec, cfg.net), Discriminator(spec, cfg.net, q_head=cfg.infogan)) for p in m.parameters())
    except Exception:  # noqa: BLE001 - a layer that cannot be built on the meta device (VBN's reference batch): not sized here
        return
    limits.check_parameters(n, "the networks", 4 * cfg.ensemble, "lower net.g_width / net.d_width / latent.noise_dim")


# ---------------------------------------------------------------------- typed building
def _short(value: Any) -> str:
    """A value for a one-line message: its repr, cut."""
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def _check_type(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise CtrlgenError(f"{where}: {key} must be true or false, got {_short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CtrlgenError(f"{where}: {key} must be an integer, got {_short(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CtrlgenError(f"{where}: {key} must be a number, got {_short(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise CtrlgenError(f"{where}: {key} must be a string, got {_short(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise CtrlgenError(f"{where}: {key} must be a list, got {_short(value)}")
        return tuple(_check_type(v, typing.get_args(tp)[0], key, where) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise CtrlgenError(f"{where}: {key} must be a table, got {_short(value)}")
        inner = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        for k, v in value.items():
            if typing.get_origin(inner) is dict and not isinstance(v, dict):
                raise CtrlgenError(f"{where}: {key}.{k} must be a table of parameters (e.g. {key}.{k}.NAME=VALUE), got {_short(v)}")
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
        elif hints[k] is LatentConfig:
            kwargs[k] = v if isinstance(v, LatentConfig) else LatentConfig.from_dict(v, where)
        else:
            kwargs[k] = _check_type(v, hints[k], k, where)
    return cls(**kwargs)


# ---------------------------------------------------------------------- the old shape
LEGACY_LATENT = ("noise_dim", "noise", "categorical", "continuous")
LEGACY_LAMBDAS = ("lambda_cat", "lambda_cont")


def upgrade(d: Any, where: str = "config") -> Any:
    """A config in the shape before ``[latent]`` and technique-owned parameters, in today's shape.

    Flat ``noise_dim`` / ``noise`` go into ``latent``; ``categorical = [10, 4]`` becomes codes ``c0``, ``c1``
    (``c`` when there is one) and ``continuous = 2`` codes ``u0``, ``u1`` in [-1, 1], the names ctrlgen
    gave them; ``lambda_cat`` / ``lambda_cont`` become ``techniques.mutual_information`` parameters (and
    are dropped when the config has no codes: they never did anything there).  A flat key given next to
    a ``[latent]`` table (``--set noise_dim=16`` on a recipe) overrides the field it names.
    """
    if not isinstance(d, dict) or not any(k in d for k in (*LEGACY_LATENT, *LEGACY_LAMBDAS)):
        return d
    d = dict(d)
    latent = d.get("latent", {})
    if not isinstance(latent, dict):
        return d  # reported by LatentConfig.from_dict
    latent = dict(latent)
    for k in ("noise_dim", "noise"):
        if k in d:
            latent[k] = d.pop(k)
    if "categorical" in d:
        cats = d.pop("categorical")
        if not isinstance(cats, (list, tuple)) or any(isinstance(n, bool) or not isinstance(n, int) for n in cats):
            raise CtrlgenError(f"{where}: categorical (old shape) must be a list of integers such as [10], got {cats!r}; "
                               'or declare [[latent.categorical]] name = "c", n = 10')
        latent["categorical"] = [{"name": "c" if len(cats) == 1 else f"c{i}", "n": n} for i, n in enumerate(cats)]
    if "continuous" in d:
        n = d.pop("continuous")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise CtrlgenError(f"{where}: continuous (old shape) must be an integer >= 0, got {n!r}; "
                               'or declare [[latent.continuous]] name = "u0", low = -1.0, high = 1.0')
        latent["continuous"] = [{"name": f"u{i}", "low": -1.0, "high": 1.0} for i in range(n)]
    d["latent"] = latent
    lambdas = {k: d.pop(k) for k in LEGACY_LAMBDAS if k in d}
    if lambdas and (latent.get("categorical") or latent.get("continuous")):
        techniques = d.get("techniques", {})
        if isinstance(techniques, dict):
            mi = techniques.get("mutual_information", {})
            d["techniques"] = {**techniques, "mutual_information": {**(mi if isinstance(mi, dict) else {}), **lambdas}}
    return d


def switches(d: Any, where: str) -> Any:
    """``techniques.NAME = false`` removes the technique (a preset turning off its base's table, or ``--set
    techniques.ema=false``); ``= true`` is the table with its defaults (``--set techniques.diffaugment=true``);
    any other value than a table or a switch is one line naming the three forms."""
    techniques = d.get("techniques") if isinstance(d, dict) else None
    if not isinstance(techniques, dict):
        return d
    for k, v in techniques.items():
        if not isinstance(v, (dict, bool)):
            raise CtrlgenError(f"{where}: techniques.{k} must be a table of parameters (e.g. techniques.{k}.NAME=VALUE), "
                               f"true (its defaults) or false (off), got {_short(v)}")
    if not any(isinstance(v, bool) for v in techniques.values()):
        return d
    kept = {k: ({} if v is True else v) for k, v in techniques.items() if v is not False}
    return {**d, "techniques": kept}


def load_config(recipe: str, overrides: list[str] = ()) -> TrainConfig:
    """A recipe (name or TOML path, its ``extends`` merged) with ``--set`` overrides, validated."""
    d = apply_overrides(read_recipe(recipe), list(overrides))
    return TrainConfig.from_dict(d, where=f"recipe {d.get('recipe', recipe)}")
