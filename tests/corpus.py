"""The bad-input corpus: every kind of bad input the CLI can meet, with the line it must answer.

Each ``Case`` builds its bad files in a scratch folder and returns the
``ctrlgen`` arguments; ``tests/test_bad_input.py`` runs every case through the
real CLI and checks a non-zero exit, exactly one line naming ``problem`` and
``fix``, no traceback, and every file that existed before left byte-identical
(nothing new either: no half-written output).  The README's Troubleshooting
table is printed from this list with the messages of a real run:

    .venv/bin/python tests/corpus.py        # needs the tiny models the tests train; see main()
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TINY = ["--set", "net.g_width=8", "--set", "net.d_width=8", "--set", "net.d_fc=32", "--set", "batch_size=16"]


@dataclass
class Env:
    """Where a case builds its inputs: a scratch folder (also the working directory) and the tiny models."""

    tmp: Path
    models: dict[str, Path]  # "cgan", "infogan", "ring8" -> .onnx
    runs: dict[str, Path]  # "ring8" (and "cgan", "infogan") -> run directory

    def file(self, name: str, data: bytes) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def train(self, *args: str, data: str | None = None) -> list[str]:
        out = ["train", "fashion-cgan", "--steps", "1", "--no-progress", "-o", str(self.tmp / "run"), *TINY]
        return out + (["--data", data] if data else []) + list(args)


@dataclass
class Case:
    id: str
    what: str  # the bad input, for people
    build: Callable[[Env], list[str]]  # writes its files, returns the CLI arguments
    problem: str  # a fragment of the line that names the problem
    fix: str  # a fragment of the same line that names the fix
    fashion: bool = False  # needs the Fashion-MNIST models or data
    patch: dict = field(default_factory=dict)  # (module, attribute) -> value while the case runs in-process


# --------------------------------------------------------------------------- builders
def onnx_with(env: Env, name: str, spec: str | None = None, card: str | None = None, inputs: list[str] | None = None) -> str:
    """A copy of the tiny ring8 model with its metadata (or graph inputs) changed."""
    import onnx

    m = onnx.load(str(env.models["ring8"]))
    props = {p.key: p.value for p in m.metadata_props}
    props.update({k: v for k, v in (("ctrlgen.spec", spec), ("ctrlgen.card", card)) if v is not None})
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    if inputs is not None:  # rename the graph's inputs (and their uses), keep the spec
        for old, new in zip([i.name for i in m.graph.input], inputs, strict=False):
            m.graph.input[[i.name for i in m.graph.input].index(old)].name = new
            for node in m.graph.node:
                node.input[:] = [new if x == old else x for x in node.input]
    return env.file(name, m.SerializeToString())


def spec_of(env: Env, **changes) -> str:
    import onnx

    m = onnx.load(str(env.models["ring8"]))
    d = json.loads({p.key: p.value for p in m.metadata_props}["ctrlgen.spec"])
    d.update(changes)
    return json.dumps(d)


def plain_onnx(env: Env, name: str) -> str:
    """A valid ONNX model that ctrlgen did not write: an Identity, no metadata."""
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 2]) for n in ("z", "sample")]
    graph = helper.make_graph([helper.make_node("Identity", ["z"], ["sample"])], "plain", [io[0]], [io[1]])
    return env.file(name, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def checkpoint(env: Env) -> bytes:
    return sorted((env.runs["ring8"] / "checkpoints").glob("step-*.safetensors"))[-1].read_bytes()


def foreign_safetensors(env: Env, name: str) -> str:
    import torch
    from safetensors.torch import save

    return env.file(name, save({"w": torch.zeros(3)}))


def idx(arr: np.ndarray, kind: int = 0x08) -> bytes:
    return bytes([0, 0, kind, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.astype(np.uint8).tobytes()


def idx_folder(env: Env, n_images: int = 4, n_labels: int = 4, magic: bytes | None = None, cut: int = 0, side: int = 28) -> str:
    images = idx(np.zeros((n_images, side, side)))
    if magic is not None:
        images = magic + images[4:]
    env.file("idx/train-images-idx3-ubyte", images[: len(images) - cut])
    env.file("idx/train-labels-idx1-ubyte", idx(np.arange(n_labels) % 2))
    return str(env.tmp / "idx")


def image_folder(env: Env, extra: tuple[str, bytes] | None = None, images: bool = True, empty_class: str = "",
                 classes: tuple[str, ...] = ("cat", "dog")) -> str:
    from PIL import Image

    for cls in classes:
        (env.tmp / "imgs" / cls).mkdir(parents=True, exist_ok=True)
        if images and cls != empty_class:
            Image.new("L", (40, 40), 128).save(env.tmp / "imgs" / cls / "a.png")
    if extra is not None:
        env.file(f"imgs/cat/{extra[0]}", extra[1])
    return str(env.tmp / "imgs")


def recipe(env: Env, text: str) -> list[str]:
    net = "" if "[net]" in text else '[net]\nfamily = "mlp"\n'
    path = env.file("bad.toml", f'data = "ring8"\nconditional = false\n{text}{net}'.encode())
    return ["train", path, "--steps", "1", "--no-progress", "-o", str(env.tmp / "run")]


def dangling(env: Env, name: str) -> str:
    """A symbolic link ``name`` in the scratch folder to ``nowhere``, which does not exist."""
    os.symlink("nowhere", env.tmp / name)
    return str(env.tmp / name)


def existing(env: Env, name: str) -> str:
    return env.file(name, b"precious bytes")


def rnd(n: int) -> bytes:
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8).tobytes()


# --------------------------------------------------------------------------- builders for issue 17 (hardening round two)
_HELD: list = []  # locks a case holds while its command runs (another process writing the folder)


def graph_vs_spec(env: Env, name: str, model: str = "ring8", rename_output: str | None = None, **spec_changes) -> str:
    """A copy of a tiny model whose spec (or output name) disagrees with its graph."""
    import onnx

    m = onnx.load(str(env.models[model]))
    props = {p.key: p.value for p in m.metadata_props}
    d = json.loads(props["ctrlgen.spec"])
    d.update(spec_changes)
    props["ctrlgen.spec"] = json.dumps(d)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    if rename_output is not None:
        old = m.graph.output[0].name
        m.graph.output[0].name = rename_output
        for node in m.graph.node:
            node.output[:] = [rename_output if x == old else x for x in node.output]
    return env.file(name, m.SerializeToString())


def external_data_onnx(env: Env, name: str) -> str:
    """The tiny ring8 model with its first initializer moved to an external file at an absolute path."""
    import onnx
    from onnx import TensorProto

    m = onnx.load(str(env.models["ring8"]))
    t = m.graph.initializer[0]
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    return env.file(name, m.SerializeToString())


def locked(env: Env, folder: Path) -> str:
    from ctrlgen.files import FolderLock

    _HELD.append(FolderLock(folder, "ctrlgen train"))
    return str(folder)


def run_copy(env: Env, config: bytes | None = None, header: dict | None = None) -> str:
    """A copy of the tiny ring8 run with its config.json replaced or a checkpoint header field changed."""
    import shutil

    run = env.tmp / "r"
    shutil.copytree(env.runs["ring8"], run)
    if config is not None:
        (run / "config.json").write_bytes(config)
    if header is not None:
        from safetensors import safe_open
        from safetensors.torch import load_file, save_file

        for p in (run / "checkpoints").glob("*.safetensors"):
            with safe_open(str(p), framework="pt") as f:
                meta = dict(f.metadata())
            meta.update(header)
            save_file(load_file(str(p)), str(p), metadata=meta)
    return str(run)


def png_dir_with_foreign(env: Env) -> list[str]:
    (env.tmp / "photos").mkdir()
    env.file("photos/holiday.jpg", b"precious")
    env.file("photos/inputs.csv", b"file,label\n000000.png,0\n")
    return gen(env, "cgan", "-f", "png-dir", "-n", "10", "--force", out="photos")


def idx_raw(env: Env, images: bytes, labels: bytes | None = None) -> str:
    env.file("idx/train-images-idx3-ubyte", images)
    env.file("idx/train-labels-idx1-ubyte", labels if labels is not None else idx(np.arange(4) % 2))
    return str(env.tmp / "idx")


def gzip_bomb(env: Env) -> str:
    import gzip

    env.file("idx/train-images-idx3-ubyte.gz", gzip.compress(idx(np.zeros((400, 28, 28))), mtime=0))
    env.file("idx/train-labels-idx1-ubyte", idx(np.arange(400) % 2))
    return str(env.tmp / "idx")


def deep(n: int) -> str:
    return "[" * n + "]" * n


def gen(env: Env, model: str, *args: str, out: str = "out.png") -> list[str]:
    return ["generate", str(env.models[model]), "-o", str(env.tmp / out), *args]


# --------------------------------------------------------------------------- the corpus
CASES = [
    # ---- model files
    Case("onnx-random", "an .onnx file of random bytes", lambda e: ["generate", e.file("m.onnx", rnd(3000)), "-o", "o.png"],
         "is not a loadable ONNX model", "re-export it"),
    Case("onnx-truncated", "a truncated .onnx file", lambda e: ["generate", e.file("m.onnx", e.models["ring8"].read_bytes()[:5000])],
         "is not a loadable ONNX model", "re-export it"),
    Case("onnx-empty", "an empty .onnx file", lambda e: ["info", e.file("m.onnx", b"")], "is not a loadable ONNX model", "re-export it"),
    Case("onnx-plain", "a valid ONNX model without ctrlgen metadata", lambda e: ["generate", plain_onnx(e, "m.onnx")],
         "has no 'ctrlgen.spec' metadata", "export it with ctrlgen export"),
    Case("spec-future", "a spec with a format version from the future", lambda e: ["info", onnx_with(e, "m.onnx", spec_of(e, format=99))],
         "spec format 99 is newer than", "upgrade ctrlgen"),
    Case("spec-not-json", "a spec that is not JSON", lambda e: ["info", onnx_with(e, "m.onnx", "{nope")], "spec is not valid JSON", "re-export"),
    Case("spec-malformed", "a spec with a wrong field type", lambda e: ["info", onnx_with(e, "m.onnx", spec_of(e, noise_dim="8"))],
         "noise_dim must be a positive integer", "re-export"),
    Case("spec-infinite", "a spec with an infinite output size", lambda e: ["info", onnx_with(e, "m.onnx", spec_of(e, output={"kind": "points", "shape": [1e999]}))],
         "Infinity is not a number JSON allows", "re-export"),
    Case("card-damaged", "a damaged model card", lambda e: ["info", onnx_with(e, "m.onnx", card="{")], "damaged 'ctrlgen.card'", "re-export"),
    Case("graph-vs-spec", "graph inputs that do not match the spec", lambda e: ["info", onnx_with(e, "m.onnx", inputs=["noise"])],
         "do not match its spec", "re-export it"),
    Case("model-missing", "a model path that does not exist", lambda e: ["generate", "nosuch.onnx"], "not found", "give a path or a shipped model name"),
    Case("model-empty-dir", "a folder that is not a run", lambda e: ["generate", str((e.tmp / "d").mkdir() or e.tmp / "d")],
         "holds no checkpoint", "give a run directory or a checkpoint file"),
    Case("pickle", "a pickle renamed .safetensors", lambda e: ["generate", e.file("m.safetensors", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")],
         "is not a readable checkpoint", "use an earlier one"),
    # ---- checkpoints and runs
    Case("ckpt-random", "a checkpoint of random bytes", lambda e: ["generate", e.file("c.safetensors", rnd(5000))],
         "is not a readable checkpoint", "use an earlier one"),
    Case("ckpt-truncated", "a truncated checkpoint", lambda e: ["export", e.file("c.safetensors", checkpoint(e)[:-100]), "-o", "m.onnx"],
         "is not a readable checkpoint", "use an earlier one"),
    Case("ckpt-foreign", "a safetensors file ctrlgen did not write", lambda e: ["info", foreign_safetensors(e, "c.safetensors")],
         "is not a ctrlgen checkpoint", "give one written by ctrlgen train"),
    Case("run-all-damaged", "a run whose checkpoints are all damaged",
         lambda e: ["generate", str(Path(e.file("r/checkpoints/step-00000004.safetensors", checkpoint(e)[:300])).parents[1])],
         "no loadable checkpoint", "give a run directory or a checkpoint file"),
    Case("resume-not-a-run", "--resume of a folder that is not a run", lambda e: ["train", "--resume", str(e.tmp)],
         "is not a run directory", "give the folder ctrlgen train wrote"),
    Case("resume-checkpoints-folder", "--resume of a run's checkpoints folder instead of the run",
         lambda e: ["train", "--resume", str(e.runs["ring8"] / "checkpoints")],
         "is the checkpoints folder of a run", "give the run directory itself"),
    Case("plot-checkpoints-folder", "plot of a run's checkpoints folder instead of the run",
         lambda e: ["plot", str(e.runs["ring8"] / "checkpoints"), "-o", str(e.tmp / "p.png")],
         "is the checkpoints folder of a run", "give the run directory itself"),
    Case("resume-damaged-config", "--resume of a run with a damaged config.json", lambda e: ["train", "--resume", str(Path(e.file("r/config.json", b"{")).parent)],
         "config.json is damaged", "checkpoint"),
    Case("resume-no-checkpoint", "--resume of a run whose checkpoints are all damaged",
         lambda e: ["train", "--resume", resumable_without_checkpoint(e)], "no loadable checkpoint", "start a new run"),
    # ---- labels and codes
    Case("label-high", "a label out of range", lambda e: gen(e, "cgan", "--label", "10"), "label 10 is out of range", "use 0..9", True),
    Case("label-negative", "a negative label", lambda e: gen(e, "cgan", "--label", "-1"), "label -1 is out of range", "use 0..9", True),
    Case("label-name", "an unknown class name", lambda e: gen(e, "cgan", "--label", "Hat"), "label 'Hat' is unknown", "use 0..9 or one of", True),
    Case("label-odd", "a label that only looks like a number", lambda e: gen(e, "cgan", "--label=--3"), "label '--3' is unknown", "use 0..9", True),
    Case("label-digit", "a label in non-ASCII digits", lambda e: gen(e, "cgan", "--label", "²"), "label '²' is unknown", "use 0..9", True),
    Case("label-unconditional", "a label for an unconditional model", lambda e: gen(e, "ring8", "--label", "3"),
         "not class-conditional", "drop --label"),
    Case("cat-high", "a categorical value out of range", lambda e: gen(e, "infogan", "--cat", "c=10"), "--cat c=10 is out of range", "use 0..9", True),
    Case("cat-text", "a categorical value that is not an integer", lambda e: gen(e, "infogan", "--cat", "c=x"), "is not an integer", "use 0..9", True),
    Case("cat-unknown", "an unknown code name", lambda e: gen(e, "infogan", "--cat", "q=1"), "categorical code 'q' is unknown", "this model has: c", True),
    Case("label-twice", "a label given twice", lambda e: gen(e, "cgan", "--label", "Dress", "--label", "Coat"),
         "--label is given 2 times (Dress and Coat)", "give it once", True),
    Case("out-is-model", "generate m.onnx -o m.onnx --format npz --force (the samples replaced the model being read)",
         lambda e: ["generate", (m := e.file("m.onnx", e.models["ring8"].read_bytes())), "-o", m, "--format", "npz", "--force"],
         "m.onnx is the model this command reads", "choose another output"),
    Case("label-empty", "generate --label '' (it drew random labels)", lambda e: gen(e, "cgan", "--label", ""),
         "--label is given an empty value", "leave --label out", True),
    Case("sweep-fix-swept", "sweep --code u0 --fix u0=0.5 (the fixed value was ignored)",
         lambda e: ["sweep", str(e.models["infogan"]), "--code", "u0", "--fix", "u0=0.5", "-o", str(e.tmp / "s.png")],
         "fixes what the sweep varies (u0)", "drop it", True),
    Case("sweep-fix-empty", "sweep --fix '' (it was ignored)",
         lambda e: ["sweep", str(e.models["infogan"]), "--code", "u0", "--fix", "", "-o", str(e.tmp / "s.png")],
         "--fix is given an empty value", "give NAME=VALUE", True),
    Case("walk-labels-huge", "interpolate with 60,000 labels (one keyframe each, past the --keys limit)",
         lambda e: ["interpolate", str(e.models["cgan"]), "--label", ",".join(["1"] * 60000), "--frames", "4", "-o", str(e.tmp / "w.gif")],
         "a walk through 60,000 keyframes", "give fewer", True),
    Case("set-twice", "train --steps 3 --set steps=2.5 (the --set value went unchecked)",
         lambda e: ["train", "ring8", "--steps", "3", "--set", "steps=2.5", "-o", str(e.tmp / "run")],
         "steps is given twice, by --steps and by --set steps=...", "give it once"),
    Case("walk-label-twice", "interpolate with --label given twice", lambda e: ["interpolate", str(e.models["cgan"]), "--label", "Dress", "--label", "Coat",
                                                                            "-o", str(e.tmp / "w.gif")],
         "--label is given 2 times (Dress and Coat)", "comma-separate the keyframes' labels"),
    Case("walk-label-empty", "interpolate --label with an empty entry (3,,5)", lambda e: ["interpolate", str(e.models["cgan"]), "--label", "3,,5",
                                                                                      "-o", str(e.tmp / "w.gif")],
         "has an empty entry between commas", "one index or class name per keyframe"),
    Case("cat-twice", "a categorical code given twice", lambda e: gen(e, "infogan", "--cat", "c=1", "--cat", "c=7"),
         "code c is given twice (1 and 7)", "give each code once", True),
    Case("cat-no-value", "a code without a value", lambda e: gen(e, "infogan", "--cat", "c"), "must look like NAME=VALUE", "NAME=VALUE", True),
    Case("cont-nan", "a NaN continuous code", lambda e: gen(e, "infogan", "--cont", "u0=nan"), "is not finite", "use a value in [-1, 1]", True),
    Case("cont-inf", "an infinite continuous code", lambda e: gen(e, "infogan", "--cont", "u0=-inf"), "is not finite", "use a value in [-1, 1]", True),
    Case("cont-range", "a continuous code out of range", lambda e: gen(e, "infogan", "--cont", "u0=7"), "outside its range [-1, 1]", "use a value inside it", True),
    Case("cont-text", "a continuous code that is not a number", lambda e: gen(e, "infogan", "--cont", "u0=abc"), "is not a number", "use a value in [-1, 1]", True),
    Case("fix-nan", "sweep --fix with NaN", lambda e: ["sweep", str(e.models["infogan"]), "--code", "u0", "--fix", "u1=nan", "-o", "s.png"],
         "is not finite", "use a value in [-1, 1]", True),
    Case("walk-range", "interpolate --code out of range", lambda e: ["interpolate", str(e.models["infogan"]), "--code", "u0=-1,5", "-o", "w.gif"],
         "outside its range [-1, 1]", "use a value inside it", True),
    Case("truncation", "a negative truncation", lambda e: gen(e, "ring8", "--truncation", "-1"), "truncation must be a positive number", "positive number"),
    Case("truncation-nan", "a NaN truncation", lambda e: gen(e, "ring8", "--truncation", "nan"), "truncation must be a positive number", "positive number"),
    # ---- counts and sizes
    Case("n-zero", "--n 0", lambda e: gen(e, "ring8", "--n", "0"), "--n must be at least 1, got 0", "at least 1"),
    Case("n-negative", "a negative --n", lambda e: gen(e, "ring8", "--n", "-5"), "--n must be at least 1, got -5", "at least 1"),
    Case("n-huge", "an absurdly large --n", lambda e: gen(e, "ring8", "--n", "1000000000000", "-f", "npz", out="o.npz"), "is too large", "split the job"),
    Case("n-text", "--n that is not a number", lambda e: gen(e, "ring8", "--n", "many"), "Invalid value for '--n'", "generate --help'"),
    Case("grid-huge", "a grid too large for one picture", lambda e: gen(e, "ring8", "--n", "20000"), "too large (max 10000)", "use --format npz"),
    Case("nrow-npz", "generate --nrow for npz output (it was ignored)", lambda e: gen(e, "ring8", "--nrow", "5", out="o.npz"),
         "--nrow lays out a grid picture and npz output has none", "drop --nrow"),
    Case("batch-zero", "--batch 0", lambda e: gen(e, "ring8", "--batch", "0"), "--batch must be at least 1", "at least 1"),
    Case("threads-zero", "--threads 0", lambda e: gen(e, "ring8", "--threads", "0"), "threads must be a positive integer", "leave it unset"),
    Case("device", "an unknown --device", lambda e: gen(e, "ring8", "--device", "tpu"), "device 'tpu' is unknown", "use auto, cpu or cuda"),
    Case("sweep-rows", "sweep --rows 0", lambda e: ["sweep", str(e.models["infogan"]), "--code", "u0", "--rows", "0", "-o", "s.png"],
         "rows must be a positive integer", "positive integer", True),
    Case("sweep-huge", "a sweep over the cell limit", lambda e: ["sweep", str(e.models["infogan"]), "--code", "u0", "--rows", "5000", "-o", "s.png"],
         "over the limit of 10000", "use fewer rows or steps", True),
    Case("frames", "interpolate --frames 1", lambda e: ["interpolate", str(e.models["ring8"]), "--frames", "1", "-o", "w.gif"],
         "--frames must be in 2..2000", "2..2000"),
    Case("option-unknown", "an option that does not exist", lambda e: gen(e, "ring8", "--bogus"), "No such option: --bogus", "see 'ctrlgen generate --help'"),
    Case("command-unknown", "a command that does not exist", lambda e: ["generat"], "No such command 'generat'", "See 'ctrlgen --help'"),
    Case("ui-port", "ui --port 0", lambda e: ["ui", "--port", "0"], "--port must be in 1..65535", "1..65535"),
    Case("ui-limit", "ui --max-samples 0", lambda e: ["ui", "--max-samples", "0"], "max-samples must be a positive integer", "positive integer"),
    # ---- outputs
    Case("out-exists", "an existing output", lambda e: gen(e, "ring8", "-o", existing(e, "o.png")), "already exists", "pass --force"),
    Case("out-exists-npz", "an existing .npz output", lambda e: gen(e, "ring8", "-o", existing(e, "o.npz")), "already exists", "pass --force"),
    Case("out-exists-dir", "an existing png-dir output", lambda e: gen(e, "cgan", "-f", "png-dir", "-o", str(Path(existing(e, "pngs/000000.png")).parent)),
         "already exists", "pass --force", True),
    Case("out-exists-onnx", "export onto an existing model", lambda e: ["export", str(e.runs["ring8"]), "-o", existing(e, "m.onnx")],
         "already exists", "pass --force"),
    Case("out-exists-sweep", "sweep onto an existing picture", lambda e: ["sweep", str(e.models["cgan"]), "--labels", "-o", existing(e, "s.png")],
         "already exists", "pass --force", True),
    Case("out-exists-gif", "interpolate onto an existing GIF", lambda e: ["interpolate", str(e.models["ring8"]), "-o", existing(e, "w.gif")],
         "already exists", "pass --force"),
    Case("out-exists-plot", "plot onto an existing picture", lambda e: ["plot", str(e.runs["ring8"]), "-o", existing(e, "p.png")],
         "already exists", "pass --force"),
    Case("out-unwritable", "an output inside a file (not a folder)", lambda e: gen(e, "ring8", "-o", existing(e, "f") + "/o.png"),
         "not a writable folder", "choose another output path"),
    Case("out-suffix", "an output with an unknown suffix", lambda e: gen(e, "ring8", "-o", "o.txt"), "cannot tell the format", "pass --format"),
    Case("out-format-suffix", "--format that contradicts the output's suffix", lambda e: gen(e, "ring8", "-f", "npz"),
         "does not match the .png suffix", "drop --format"),
    Case("export-not-onnx", "export to a name that is not .onnx", lambda e: ["export", str(e.runs["ring8"]), "-o", "m.txt"], "must end in .onnx", "name it m.onnx"),
    Case("plot-not-png", "plot curves to a non-PNG name", lambda e: ["plot", run_copy(e), "-o", "c.jpg"], "must end in .png", "name it c.png"),
    Case("sweep-not-png", "sweep to a non-PNG name", lambda e: ["sweep", str(e.models["cgan"]), "--labels", "-o", "s.gif"], "must end in .png", "name it s.png"),
    Case("out-gif", "interpolate to a non-GIF name", lambda e: ["interpolate", str(e.models["ring8"]), "-o", "w.png"], "must end in .gif", "end in .gif"),
    # ---- recipes
    Case("recipe-unknown-key", "a recipe with an unknown key", lambda e: recipe(e, "learning_rate = 1\n"), "unknown key(s) ['learning_rate']", "valid keys"),
    Case("recipe-type", "a recipe with a wrong type", lambda e: recipe(e, 'lr_g = "fast"\n'), "lr_g must be a number", "must be a number"),
    Case("recipe-net-type", "a wrong type in [net]", lambda e: recipe(e, '[net]\nfamily = "mlp"\ng_width = "wide"\n'), "[net]: g_width must be an integer", "integer"),
    Case("recipe-toml", "a recipe that is not TOML", lambda e: recipe(e, "lr_g = = 1\n"), "is not valid TOML", "fix the file"),
    Case("recipe-technique", "a technique that is not a table", lambda e: recipe(e, "techniques = { ema = 1 }\n"), "techniques.ema must be a table", "techniques.ema.NAME=VALUE"),
    Case("recipe-missing", "a recipe file that does not exist", lambda e: ["train", "nosuch.toml"], "does not exist", "give a recipe name"),
    Case("recipe-name", "an unknown recipe name", lambda e: ["train", "fashion-gan"], "recipe 'fashion-gan' is unknown", "use one of"),
    Case("set-no-value", "--set without a value", lambda e: ["train", "ring8", "--set", "lr_g"], "must look like key=value", "lr_g=1e-4"),
    Case("ensemble-images", "an ensemble of seeds for an image recipe", lambda e: e.train("--set", "ensemble=3"),
         "ensemble > 1 is for the 2D mixtures", "ensemble=1"),
    Case("ensemble-export", "ctrlgen export of an ensemble run (many seeds in one checkpoint)", lambda e: ensemble_run(e),
         "holds an ensemble of 2 seeds", "ensemble=1"),
    Case("set-not-table", "--set under a value that is not a table", lambda e: ["train", "ring8", "--set", "lr_g.x=1"], "lr_g is a value, not a table", "set it as lr_g=VALUE"),
    Case("steps-and-epochs", "train --steps and --epochs together (--steps won silently)",
         lambda e: ["train", "ring8", "--steps", "5", "--epochs", "2", "--no-progress", "-o", str(e.tmp / "r")],
         "both set the run's length", "give one of them"),
    Case("set-negative", "--steps -1", lambda e: ["train", "ring8", "--steps", "-1"], "--steps must be at least 1, got -1", "or --epochs"),
    Case("steps-zero", "train --steps 0 (it trained the recipe's whole length: 0 is the recipe's 'derive from epochs')",
         lambda e: ["train", "ring8", "--steps", "0"], "--steps must be at least 1, got 0", "or --epochs"),
    # ---- data
    Case("data-missing", "--data that does not exist", lambda e: e.train(data=str(e.tmp / "nope 😀")), "nope 😀 does not exist", "pass --data"),
    Case("idx-magic", "IDX files with a wrong magic number", lambda e: e.train(data=idx_folder(e, magic=b"\x12\x34\x08\x03")),
         "bad magic number", "point --data at Fashion-MNIST IDX files"),
    Case("idx-counts", "IDX images and labels of different counts", lambda e: e.train(data=idx_folder(e, 5, 4)),
         "has 5 images but", "use matching files"),
    Case("idx-truncated", "a truncated IDX file", lambda e: e.train(data=idx_folder(e, cut=10)), "truncated or damaged", "copy"),
    Case("idx-gzip", "a damaged gzip IDX file", lambda e: e.train(data=(e.file("idx/train-images-idx3-ubyte.gz", b"\x1f\x8b" + rnd(50)),
                                                                         e.file("idx/train-labels-idx1-ubyte", idx(np.zeros(2))))[0].rsplit("/", 1)[0]),
         "damaged gzip file", "copy it again"),
    Case("idx-size", "IDX images of another size than the recipe's", lambda e: e.train(data=idx_folder(e, side=10)),
         "IDX images are 1x10x10", "set image_size=10"),
    Case("images-non-image", "an image folder holding a non-image", lambda e: e.train(data=image_folder(e, ("notes.txt", b"hi"))),
         "is not an image", "remove it"),
    Case("images-fake", "an image folder holding a file that is not really a PNG", lambda e: e.train(data=image_folder(e, ("x.png", b"no png"))),
         "cannot be read as an image", "remove or replace it"),
    Case("images-empty", "an image folder with empty class folders", lambda e: e.train(data=image_folder(e, images=False)),
         "no images in them", "add images"),
    Case("images-class-empty", "an image folder where one class folder is empty", lambda e: e.train(data=image_folder(e, empty_class="dog")),
         "has no images", "add images to it or remove it"),
    Case("images-only-unlabelled", "a class-conditional run on a folder with only unlabelled/ images",
         lambda e: e.train(data=image_folder(e, classes=("unlabelled",))), "images only in unlabelled/", "one subfolder per class"),
    Case("images-bomb", "an image folder holding a decompression bomb", lambda e: e.train(data=image_folder(e)),
         "too many pixels", "remove or shrink it", patch={("PIL.Image", "MAX_IMAGE_PIXELS"): 100}),
    # ---- issue 17: lost files
    Case("force-foreign", "png-dir --force onto a folder holding files ctrlgen did not write", png_dir_with_foreign,
         "ctrlgen did not write", "choose another output", True),
    Case("web-force-foreign", "export --web DIR --force where DIR holds the site's own index.html (it was replaced)",
         lambda e: ["export", str(e.models["ring8"]), "--web", str(Path(e.file("site/index.html", b"<html>my homepage</html>")).parent), "--force"],
         "holds index.html that ctrlgen did not write", "move them away"),
    Case("out-empty", "an empty output name", lambda e: ["export", str(e.runs["ring8"]), "-o", ""],
         "names a folder, not a file", "give the output a name"),
    Case("out-fifo-force", "generate --force onto a FIFO (replacing it by rename would delete it: /dev/null as root)",
         lambda e: (os.mkfifo(e.tmp / "pipe.png"), gen(e, "ring8", "--force", out="pipe.png"))[1],
         "is a FIFO, not a file", "choose another output"),
    Case("out-dash", "an output named '-' (standard output elsewhere)", lambda e: ["generate", str(e.models["ring8"]), "-o", "-"],
         "ctrlgen does not write to standard output", "give a file name"),
    Case("model-empty", "an empty model name (the current folder, as a path)", lambda e: ["generate", "", "-o", str(e.tmp / "o.png")],
         "the model name is empty", "give a path or a shipped model name"),
    Case("out-dot-force", "generate --force onto the current folder", lambda e: ["generate", str(e.models["ring8"]), "-o", ".", "--force"],
         "names a folder, not a file", "give the output a name"),
    Case("out-file-onto-folder", "grid --force onto a folder holding someone's file",
         lambda e: gen(e, "cgan", "-f", "grid", "--force", out=Path(existing(e, "shots/holiday.jpg")).parent.name),
         "is a folder", "choose another name", True),
    Case("export-eval-md", "export --eval beside someone's NAME.md (the card's markdown would replace it)",
         lambda e: ["export", str(e.runs["ring8"]), "-o", str(Path(existing(e, "m.md")).with_suffix(".onnx")), "--eval"],
         "m.md exists and is not a model card ctrlgen wrote", "move it away or pass --force"),
    Case("force-file", "png-dir --force onto a file", lambda e: gen(e, "cgan", "-f", "png-dir", "-n", "4", "--force", out=Path(existing(e, "pics")).name),
         "is a file, not a folder of PNGs", "choose another output", True),
    Case("train-locked", "train into a run directory another trainer holds", lambda e: ["train", "ring8", "--steps", "1", "--no-progress",
                                                                                        "-o", locked(e, e.tmp / "busy")],
         "is in use by another ctrlgen train", "wait for it to finish"),
    Case("resume-locked", "--resume of a run another trainer is writing", lambda e: ["train", "--resume", locked(e, Path(run_copy(e)))],
         "is in use by another ctrlgen train", "wait for it to finish"),
    Case("resume-shorter", "--resume with --steps below the step the run is at (it rewrote config.json to the shorter length)",
         lambda e: ["train", "--resume", run_copy(e), "--steps", "3", "--no-progress"], "is at step 8, past the 3 steps asked for",
         "give --steps (or --epochs) beyond step 8"),
    Case("resume-out", "--resume RUN with -o OTHER (it trained on in RUN and ignored -o)",
         lambda e: ["train", "--resume", run_copy(e), "--steps", "12", "--no-progress", "-o", str(e.tmp / "other")],
         "--resume continues", "drop -o"),
    Case("out-dangling-link", "train --out onto a symbolic link to a folder that does not exist (it said 'File exists; check the path')",
         lambda e: ["train", "ring8", "--steps", "1", "--no-progress", "-o", dangling(e, "run")],
         "is a symbolic link to nowhere, which does not exist", "remove the link"),
    Case("train-out-file", "train --out onto an existing file", lambda e: ["train", "ring8", "--steps", "1", "-o", existing(e, "notes.txt")],
         "is a file, and a run needs a folder", "choose another --out"),
    Case("train-out-taken", "train --out onto a folder holding a metrics.jsonl (not a run: a new run would append to it)",
         lambda e: ["train", "ring8", "--steps", "1", "--no-progress", "-o", str(Path(existing(e, "notes/metrics.jsonl")).parent)],
         "already has metrics.jsonl, which a new run would write into", "choose an empty or new --out"),
    Case("train-seed-negative", "a negative training seed (the run folder must not be half-made)", lambda e: ["train", "ring8", "--seed", "-1",
                                                                                                              "-o", str(e.tmp / "new")],
         "seed must be in 0..4,294,967,295", "32-bit"),
    # ---- issue 17: corrupt output
    Case("spec-noise-dim", "a spec whose noise_dim disagrees with the graph", lambda e: ["generate", graph_vs_spec(e, "m.onnx", noise_dim=7), "-o", "o.npz"],
         "graph input 'z' has shape", "re-export it"),
    Case("spec-output-size", "a spec whose output size disagrees with the graph",
         lambda e: ["generate", graph_vs_spec(e, "m.onnx", output={"kind": "points", "shape": [3]}), "-o", "o.npz"], "output 'sample'", "re-export it"),
    Case("spec-output-image", "a points graph whose spec says image", lambda e: ["info", graph_vs_spec(e, "m.onnx", output={"kind": "image", "shape": [1, 28, 28]})],
         "output 'sample'", "re-export it"),
    Case("output-renamed", "a graph whose output is not named 'sample'", lambda e: ["generate", graph_vs_spec(e, "m.onnx", rename_output="image"), "-o", "o.npz"],
         "has no output 'sample'", "re-export it"),
    Case("spec-more-labels", "a spec with more labels than the graph has", lambda e: ["generate", graph_vs_spec(e, "m.onnx", "cgan", labels=[f"c{i}" for i in range(40)]),
                                                                                      "-o", "o.npz"],
         "the spec and the graph disagree", "re-export it", True),
    Case("triton-external", "export --triton of a model with external data at an absolute path",
         lambda e: ["export", external_data_onnx(e, "ext.onnx"), "--triton", str(e.tmp / "repo")], "in an external file ('/etc/passwd')", "re-export it"),
    Case("triton-force-foreign", "export --triton --force onto a model folder that also holds someone's version 2",
         lambda e: ["export", str(e.runs["ring8"]), "--triton", str(Path(existing(e, "repo/m/2/model.onnx")).parents[2]), "--triton-name", "m", "--force"],
         "holds 1 file(s) ctrlgen did not write ('2/model.onnx')", "choose another --triton-name"),
    Case("triton-name-long", "export --triton-name of 300 characters (it exported first, then said the repository folder was not writable)",
         lambda e: ["export", str(e.models["ring8"]), "--triton", str(e.tmp / "repo"), "--triton-name", "a" * 300],
         "is not a usable folder name", "at most 128"),
    Case("export-onnx-source", "export model.onnx -o copy.onnx (an exported model given as the source: it read as a damaged checkpoint)",
         lambda e: ["export", str(e.models["ring8"]), "-o", str(e.tmp / "copy.onnx")], "is an exported ONNX model", "use the .onnx as it is"),
    Case("triton-name-from-file", "export --triton of 'my model.onnx' (the entry's name comes from the file's stem)",
         lambda e: ["export", e.file("my model.onnx", e.models["ring8"].read_bytes()), "--triton", str(e.tmp / "repo")],
         "model name 'my model' (from the source: no --triton-name given) is not a usable folder name", "give --triton-name"),
    Case("tol-nan", "export --tol nan (would switch the parity check off)", lambda e: ["export", str(e.runs["ring8"]), "-o", str(e.tmp / "m.onnx"), "--tol", "nan"],
         "--tol must be a finite number", "finite"),
    # ---- issue 17: unbounded resources
    Case("threads-huge", "--threads far beyond the machine", lambda e: gen(e, "ring8", "--threads", "1000000"), "more than this machine can use", "leave it unset"),
    Case("truncation-tiny", "a truncation near 0 (endless resampling)", lambda e: gen(e, "ring8", "--truncation", "1e-12"), "is too small", "at least 0.05"),
    Case("truncation-tiny-sweep", "sweep with a truncation near 0", lambda e: ["sweep", str(e.models["ring8"]), "--labels", "-o", str(e.tmp / "s.png"),
                                                                              "--truncation", "0.0001"], "is too small", "at least 0.05"),
    Case("info-dev-zero", "info /dev/zero", lambda e: ["info", "/dev/zero"], "special file", "give a regular file"),
    Case("generate-fifo", "a FIFO given as the model", lambda e: (os.mkfifo(e.tmp / "m.onnx"), ["generate", str(e.tmp / "m.onnx")])[1],
         "special file", "give a regular file"),
    Case("ui-fifo", "ui with a FIFO given as the model (it waited forever for a writer)",
         lambda e: (os.mkfifo(e.tmp / "m.onnx"), ["ui", str(e.tmp / "m.onnx"), "--port", "7999"])[1], "special file", "give a regular file"),
    Case("export-dev-zero", "a device given as the checkpoint", lambda e: ["export", "/dev/zero", "-o", str(e.tmp / "m.onnx")], "special file", "regular file"),
    Case("keys-huge", "interpolate --keys 10^9", lambda e: ["interpolate", str(e.models["ring8"]), "--keys", "1000000000", "-o", str(e.tmp / "w.gif")],
         "--keys must be in 1..1,000", "1..1,000"),
    Case("walk-still", "interpolate --keys 1 with nothing else to walk between (a still picture, not a walk)",
         lambda e: ["interpolate", str(e.models["cgan"]), "--keys", "1", "-o", str(e.tmp / "w.gif")],
         "a walk through 1 keyframe stands still", "ask for 2 or more keyframes"),
    Case("evaluator-md", "train-evaluator -o e.onnx beside your own e.md (it was replaced by the evaluator's card)",
         lambda e: evaluator_beside(e, existing(e, "e.md")),
         "e.md exists and is not a model card ctrlgen wrote", "pass --force"),
    Case("evaluator-limit-negative", "train-evaluator --limit -5 (it trained on all images but the last 5)",
         lambda e: ["train-evaluator", "--limit", "-5", "-o", str(e.tmp / "ev.onnx")], "--limit must be >= 0", "0 = all images"),
    Case("evaluator-limit-tiny", "train-evaluator --limit 1 (a traceback from BatchNorm on one image)",
         lambda e: ["train-evaluator", "--limit", "1", "-o", str(e.tmp / "ev.onnx")], "--limit must be 0 (all images) or at least one batch", "at least one batch (128)"),
    Case("evaluator-epochs-huge", "train-evaluator --epochs 10^5", lambda e: ["train-evaluator", "--epochs", "100000", "-o", str(e.tmp / "ev.onnx")],
         "epochs must be in 1..1,000", "1..1,000"),
    Case("batch-huge", "generate --batch 10^12", lambda e: gen(e, "ring8", "--batch", "1000000000000"), "--batch must be in 1..65,536", "1..65,536"),
    Case("eval-n-huge", "eval --n 10^12", lambda e: ["eval", str(e.models["ring8"]), "--n", "1000000000000"], "--n must be in 1..1,000,000", "1..1,000,000"),
    Case("idx-dims-huge", "an IDX header whose sizes overflow 64 bits", lambda e: e.train(data=idx_raw(e, bytes([0, 0, 8, 3]) + b"\xff\xff\xff\xff" * 3 + b"\0" * 100)),
         "truncated or damaged", "copy it again"),
    Case("idx-ndim", "an IDX header claiming 200 dimensions", lambda e: e.train(data=idx_raw(e, bytes([0, 0, 8, 200]) + b"\0" * 900)),
         "200 dimensions", "copy it again"),
    Case("idx-label-huge", "IDX labels far beyond any class count", lambda e: e.train(data=idx_raw(e, idx(np.zeros((4, 28, 28))),
                                                                                                    bytes([0, 0, 0x0C, 1, 0, 0, 0, 4]) + (2**31 - 1).to_bytes(4, "big") * 4)),
         "outside 0..999", "class indices"),
    Case("idx-label-negative", "negative IDX labels", lambda e: e.train(data=idx_raw(e, idx(np.zeros((4, 28, 28))), bytes([0, 0, 0x09, 1, 0, 0, 0, 4]) + b"\xff" * 4)),
         "outside 0..999", "class indices"),
    Case("gzip-bomb", "a gzip IDX file that expands past the limit", lambda e: e.train(data=gzip_bomb(e)), "expands past", "give the real file",
         patch={("ctrlgen.limits", "MAX_IDX_BYTES"): 100_000}),
    Case("recipe-noise-dim", "a recipe with noise_dim = 10^9", lambda e: recipe(e, "[latent]\nnoise_dim = 1000000000\n"), "latent.noise_dim must be in 1..16,384", "16,384"),
    Case("recipe-batch", "a recipe with batch_size = 10^9", lambda e: recipe(e, "batch_size = 1000000000\n"), "batch_size must be in 1..65,536", "65,536"),
    Case("recipe-width", "a recipe with a width of 10^7", lambda e: recipe(e, '[net]\nfamily = "mlp"\ng_width = 10000000\n'), "net.g_width must be in", "16,384"),
    Case("recipe-too-big", "networks too big for this machine's RAM", lambda e: ["train", "ring8", "--set", "net.g_width=16384", "--set", "net.depth=64"],
         "more than half this machine's RAM", "lower net.g_width"),
    Case("recipe-codes", "a recipe with a categorical code of 10^9 values",
         lambda e: recipe(e, '[[latent.categorical]]\nname = "c"\nn = 1000000000\n'), "n must be in 2..10,000", "10,000"),
    Case("spec-huge-noise", "a spec asking for noise_dim = 10^9", lambda e: ["info", onnx_with(e, "m.onnx", spec_of(e, noise_dim=10**9))],
         "noise_dim must be in 1..16,384", "re-export"),
    Case("spec-many-labels", "a spec with 10^5 labels", lambda e: ["info", onnx_with(e, "m.onnx", spec_of(e, labels=[str(i) for i in range(100_000)]))],
         "more than the limit of 1,000", "re-export"),
    # ---- issue 17: untrusted text
    Case("label-markup", "a label name that is rich markup, in an error", lambda e: ["generate", graph_vs_spec(e, "m.onnx", "cgan", labels=["[/bold]", "\x1b[31mred"] + [f"l{i}" for i in range(8)]),
                                                                              "--label", "nope"],
         "one of: [/bold], \\x1b[31mred", "use 0..9", True),
    # ---- issue 17: tampered state
    Case("config-types", "a run's config.json with a wrong type", lambda e: ["train", "--resume", run_copy(e, config=json.dumps({"recipe": "ring8", "data": "ring8", "steps": "many"}).encode())],
         "steps must be an integer", "must be an integer"),
    Case("config-nan", "a run's config.json with NaN", lambda e: ["train", "--resume", run_copy(e, config=b'{"recipe": "ring8", "lr_g": NaN}')],
         "NaN is not a number JSON allows", "start a new run"),
    Case("config-deep", "a run's config.json nested 100000 deep", lambda e: ["train", "--resume", run_copy(e, config=deep(100_000).encode())],
         "is damaged", "start a new run"),
    Case("config-bytes", "a run's config.json of non-UTF-8 bytes", lambda e: ["train", "--resume", run_copy(e, config=b'{"recipe": "\xff\xfe"}')],
         "is damaged", "start a new run"),
    Case("config-list", "a run's config.json that is a list", lambda e: ["train", "--resume", run_copy(e, config=b"[1, 2]")], "not a table of settings", "start a new run"),
    Case("header-step", "a checkpoint header whose step is text", lambda e: ["export", run_copy(e, header={"step": '"many"'}), "-o", str(e.tmp / "m.onnx")],
         "step must be an integer >= 0", "use an earlier checkpoint"),
    Case("header-wall-nan", "a checkpoint header with wall_time NaN", lambda e: ["train", "--resume", run_copy(e, header={"wall_time": "NaN"})],
         "NaN is not a number JSON allows", "use an earlier checkpoint"),
    Case("header-deep", "a checkpoint header nested 100000 deep", lambda e: ["export", run_copy(e, header={"net": deep(100_000)}), "-o", str(e.tmp / "m.onnx")],
         "damaged header", "use an earlier checkpoint"),
    Case("header-net-huge", "a checkpoint header whose network is huge", lambda e: ["export", run_copy(e, header={"net": json.dumps({"family": "mlp", "g_width": 10**7})}),
                                                                                     "-o", str(e.tmp / "m.onnx")],
         "net.g_width must be in", "16,384"),
    Case("header-lr-text", "a checkpoint header whose learning rate is text", lambda e: ["train", "--resume", run_copy(e, header={"opt_g.param_groups": json.dumps(
        [{"lr": "fast", "betas": [0.5, 0.999], "eps": 1e-8, "weight_decay": 0, "params": [0]}])}), "--steps", "12"],
         "not a finite number >= 0", "use an earlier checkpoint"),
    Case("recipe-nan", "a recipe with lr_g = nan", lambda e: recipe(e, "lr_g = nan\n"), "lr_g must be > 0", "> 0"),
    Case("recipe-date", "a recipe with a TOML date (seed = 1979-05-27; it ended in a traceback)", lambda e: recipe(e, "seed = 1979-05-27\n"),
         "seed = 1979-05-27 is a TOML date or time", "give a number"),
    Case("recipe-inf", "a recipe with lr_g = inf", lambda e: recipe(e, "lr_g = inf\n"), "lr_g must be a finite number", "finite"),
    Case("technique-nan", "--set of a technique's late weight to NaN (a check written as x < 0 let it through)",
         lambda e: e.train("--set", "techniques.mode_seeking.weight_late=nan"), "techniques.mode_seeking.weight_late must be a finite number", "give a number"),
    Case("unrolled-steps-huge", "--set techniques.unrolled.steps=10^9 (the look-ahead filled the memory)",
         lambda e: ["train", "ring8", "--steps", "1", "--set", "techniques.unrolled.steps=1000000000"], "techniques.unrolled.steps must be in 1..100", "1..100"),
    Case("egan-g-steps-huge", "--set egan.g_steps=10^9 (a step never ended)",
         lambda e: ["train", "ring8-egan", "--steps", "1", "--set", "egan.g_steps=1000000000"], "egan.g_steps must be in 1..100", "1..100"),
    Case("replay-size-huge", "--set techniques.experience_replay.size=10^12 (a traceback from the allocator)",
         lambda e: ["train", "ring8", "--steps", "1", "--set", "techniques.experience_replay.size=1000000000000"],
         "techniques.experience_replay.size 1,000,000,000,000 needs about", "use at most"),
    Case("q-warmup-huge", "--set techniques.semi_supervised.q_warmup=10^9 (the run sat in its warm-up before step 1)",
         lambda e: ["train", "fashion-infogan-ss", "--steps", "1", "--set", "techniques.semi_supervised.q_warmup=1000000000"],
         "q_warmup is the number of updates", "0..100,000", fashion=True),
    Case("r1-gamma-negative", "--set techniques.r1.gamma=-1 (it trained, rewarding steep gradients)",
         lambda e: ["train", "ring8", "--steps", "1", "--set", "techniques.r1.gamma=-1"], "techniques.r1.gamma must be > 0, got -1",
         "remove its table"),
    Case("recipe-bytes", "a recipe of non-UTF-8 bytes", lambda e: ["train", e.file("b.toml", b"lr_g = 1\n\xff\xfe = 2\n")], "is not UTF-8 text", "save it as UTF-8"),
    Case("recipe-deep", "a recipe nested 100000 deep", lambda e: recipe(e, f"x = {deep(100_000)}\n"), "nests too deeply", "fix the file"),
    Case("recipe-deep-table", "a recipe of 200 nested tables", lambda e: recipe(e, "[" + ".".join(["a"] * 200) + "]\n"), "nests deeper than 64", "fix the file"),
    Case("set-deep", "--set with a value nested 100000 deep", lambda e: ["train", "ring8", "--set", f"lr_g={deep(100_000)}"], "lr_g must be a number", "must be a number"),
    Case("recipe-seed-type", "a recipe with seed = 1.5", lambda e: recipe(e, "seed = 1.5\n"), "seed must be an integer", "integer"),
    # ---- issue 17: silent rewriting of input
    Case("seed-negative", "generate --seed -1 (was masked)", lambda e: gen(e, "ring8", "--seed", "-1"), "seed must be in 0..4,294,967,295", "32-bit"),
    Case("seed-huge", "generate --seed 2^32 (was masked)", lambda e: gen(e, "ring8", "--seed", str(2**32)), "seed must be in 0..4,294,967,295", "32-bit"),
    Case("seed-sweep", "sweep --seed 2^40", lambda e: ["sweep", str(e.models["ring8"]), "--labels", "--seed", str(2**40), "-o", str(e.tmp / "s.png")],
         "seed must be in 0..4,294,967,295", "32-bit"),
    Case("seed-walk", "interpolate --seed -5", lambda e: ["interpolate", str(e.models["ring8"]), "--seed", "-5", "-o", str(e.tmp / "w.gif")],
         "seed must be in 0..4,294,967,295", "32-bit"),
    Case("train-seed-huge", "train --seed 2^33", lambda e: ["train", "ring8", "--seed", str(2**33)], "seed must be in 0..4,294,967,295", "32-bit"),
    Case("sweep-steps-huge", "sweep --steps 10^8", lambda e: ["sweep", str(e.models["cgan"]), "--labels", "--steps", "100000000", "-o", str(e.tmp / "s.png")],
         "--steps 100,000,000 is over the limit", "use fewer", True),
    Case("grid-pixels", "a grid picture of billions of pixels", lambda e: gen(e, "cgan", "-n", "10000", "--scale", "16"), "over the limit of 200,000,000 px",
         "use a smaller --scale", True),
    Case("gif-pixels", "interpolate --walks 2000 --scale 16 (frames of 400M px ended in Pillow's decompression-bomb traceback)",
         lambda e: ["interpolate", str(e.models["cgan"]), "--walks", "2000", "--frames", "2", "--scale", "16", "-o", str(e.tmp / "w.gif")],
         "over the limit of 80,000,000 px a frame", "use fewer walks or frames", True),
    Case("ui-host", "ui --host that is not an address", lambda e: ["ui", "--host", "a b/c"], "is not an address or host name", "use 127.0.0.1"),
    Case("ui-host-foreign", "ui --host that is another machine's address", lambda e: ["ui", "--host", "192.0.2.7"], "is not an address of this machine", "use 127.0.0.1"),
]


def evaluator_beside(env: Env, md: str) -> list[str]:
    """train-evaluator writing NAME.onnx where ``md`` (NAME.md) already is; --data is never read (refused before)."""
    return ["train-evaluator", "-o", str(Path(md).with_suffix(".onnx")), "--limit", "16", "--epochs", "1", "--data", str(env.tmp / "nowhere")]


def resumable_without_checkpoint(env: Env) -> str:
    """A real run's config.json with only a damaged checkpoint beside it."""
    run = env.tmp / "r"
    env.file("r/config.json", (env.runs["ring8"] / "config.json").read_bytes())
    env.file("r/checkpoints/step-00000002.safetensors", checkpoint(env)[:-50])
    return str(run)


def ensemble_run(env: Env) -> list[str]:
    """A 2-step ring8 run that trained 2 seeds as one ensemble, and the export of it."""
    from ctrlgen.train.config import TrainConfig, apply_overrides, read_recipe
    from ctrlgen.train.trainer import Trainer

    d = apply_overrides(read_recipe("ring8"), ["steps=2", "ensemble=2", "batch_size=8", "net.g_width=8", "net.d_width=8",
                                               "progress=false", "sample_every=0", "monitor_every=0"])
    Trainer(TrainConfig.from_dict(d), env.tmp / "ens").run()
    return ["export", str(env.tmp / "ens"), "-o", str(env.tmp / "ens.onnx")]


def main() -> None:  # pragma: no cover - prints the README table
    import sys
    import tempfile

    from typer.testing import CliRunner

    from ctrlgen.serve.cli import app

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if root is None:
        sys.exit("usage: python tests/corpus.py DIR  (DIR holds cgan.onnx, infogan.onnx, ring8.onnx and runs/ring8)")
    models = {k: root / f"{k}.onnx" for k in ("cgan", "infogan", "ring8")}
    print("| bad input | message (`Error: ...`) | fix |\n|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            env = Env(Path(tmp), models, {"ring8": root / "runs" / "ring8"})
            args = case.build(env)
            import importlib

            saved = {(m, a): getattr(importlib.import_module(m), a) for m, a in case.patch}
            for (m, a), value in case.patch.items():
                setattr(importlib.import_module(m), a, value)
            out = CliRunner().invoke(app, [str(a) for a in args]).output
            for (m, a), value in saved.items():
                setattr(importlib.import_module(m), a, value)
            out = out.strip().removeprefix("Error: ").replace(str(env.tmp) + "/", "")
            out = out.replace(str(root) + "/", "").replace("|", "\\|")
            print(f"| {case.what} | {out} | {case.fix} |")


if __name__ == "__main__":
    main()
