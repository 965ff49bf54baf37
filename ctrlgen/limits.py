"""Bounds on every number a user or a file can set, in one place.

A flag (``--threads``, ``--seed``, ``--keys``), a recipe field (``batch_size``,
``latent.noise_dim``, ``net.g_width``) or a field of a file (an IDX header, a
model's spec, a gzip stream) is checked here before anything is allocated, so
a hostile or mistyped value is one line naming the limit, never a hang, a
segfault or a MemoryError.  Limits that depend on the machine (threads, RAM)
are read from it and the message says so.
"""

from __future__ import annotations

import math
import os
import stat
import zlib
from pathlib import Path
from typing import Any

from ctrlgen.errors import CtrlgenError

SEED_MAX = 2**32 - 1
"""Seeds are 32-bit (numpy's SeedSequence and torch's generators take them whole): larger ones are refused, not masked."""

MIN_TRUNCATION = 0.05
"""Below this, resampling |z| > t for normal noise takes thousands of rounds (P(|z| < 0.05) = 4%)."""

MAX_TRUNCATION = 1e6
MAX_CLASSES = 1000
MAX_LABEL_CHARS = 200
MAX_CODES = 64
MAX_CODE_VALUES = 10_000
MAX_NOISE_DIM = 16_384
MAX_IMAGE_SIDE = 1024
MAX_POINT_DIMS = 4096
MAX_WIDTH = 16_384
MAX_DEPTH = 64
MAX_BATCH = 65_536
MAX_STEPS = 10**9
MAX_EPOCHS = 1e6
MAX_ENSEMBLE = 4096
MAX_KEYS = 1000
MAX_JSON_DEPTH = 64
MAX_PICTURE_PIXELS = 200_000_000  # one PNG: about 600 MB of RGB in memory while it is encoded
MAX_FRAME_PIXELS = 80_000_000  # one GIF frame: Pillow refuses frames over 89M px as decompression bombs
MAX_GIF_PIXELS = 500_000_000  # all frames of a GIF, held as RGB while it is encoded: about 1.5 GB
MAX_MODEL_BYTES = 2 * 1024**3  # protobuf cannot hold more in one file
MAX_IDX_BYTES = 4 * 1024**3
MAX_SMALL_FILE = 64 * 1024**2  # config.json, recipes, metrics.jsonl


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def max_threads() -> int:
    return max(8, 4 * cpu_count())


def ram_bytes() -> int:
    """Physical memory of this machine (8 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 1024**3


def is_int(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int, why: str = "") -> int:
    """``value`` as an int in [low, high]; else one line naming the range (and ``why`` it has that bound)."""
    if not is_int(value):
        raise CtrlgenError(f"{name} must be an integer in {low:,}..{high:,}, got {value!r}")
    if not low <= value <= high:
        raise CtrlgenError(f"{name} must be in {low:,}..{high:,}{' (' + why + ')' if why else ''}, got {value:,}")
    return int(value)


def check_number(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """A finite number in [low, high] ((low, high] with ``low_open``); NaN and inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CtrlgenError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise CtrlgenError(f"{name} must be a finite number, got {value!r}")
    if v < low or v > high or (low_open and v == low):
        lo = "(" if low_open else "["
        raise CtrlgenError(f"{name} must be in {lo}{low:g}, {high:g}], got {v:g}")
    return v


def check_seed(value: Any, name: str = "seed") -> int:
    return check_int(name, value, 0, SEED_MAX, "seeds are 32-bit; a larger one would be masked")


def check_threads(threads: Any) -> int | None:
    if threads is None:
        return None
    if not is_int(threads) or threads < 1:
        raise CtrlgenError(f"threads must be a positive integer, got {threads!r}; leave it unset to use all cores")
    top = max_threads()
    if threads > top:
        raise CtrlgenError(f"threads {threads:,} is more than this machine can use (max {top}: 4 x its {cpu_count()} cores); "
                           "leave it unset to use all cores")
    return int(threads)


def check_truncation(t: Any) -> float | None:
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t)):
        raise CtrlgenError(f"truncation must be a positive number, got {t}")
    if t < MIN_TRUNCATION:
        raise CtrlgenError(f"truncation {t:g} is too small (min {MIN_TRUNCATION}: resampling |z| below it would take "
                           "thousands of rounds); use a value of at least 0.05")
    if t > MAX_TRUNCATION:
        raise CtrlgenError(f"truncation {t:g} is too large (max {MAX_TRUNCATION:g}); leave it unset for no truncation")
    return float(t)


def check_batch_memory(name: str, batch: int, per_sample: int, copies: int = 64) -> None:
    """Refuse a batch whose float32 activations (about ``copies`` x the sample) cannot fit in this machine's RAM."""
    need = batch * per_sample * 4 * copies
    have = ram_bytes() // 2
    if need > have:
        fit = max(1, have // max(1, per_sample * 4 * copies))
        raise CtrlgenError(f"{name} {batch:,} needs about {need / 1e9:.1f} GB for samples of {per_sample:,} values, more than half "
                           f"this machine's RAM ({ram_bytes() / 1e9:.1f} GB); use at most {fit:,}")


NET_BOUNDS = {
    "g_width": (1, MAX_WIDTH), "d_width": (1, MAX_WIDTH), "g_fc": (0, MAX_WIDTH), "d_fc": (1, MAX_WIDTH),
    "depth": (1, MAX_DEPTH), "label_embed": (0, MAX_WIDTH), "g_vbn": (0, MAX_BATCH), "pack": (1, 64),
    "mbd_kernels": (1, 4096), "mbd_dim": (1, 4096), "q_hidden": (1, MAX_WIDTH),
}


def check_net(net: Any, where: str = "net") -> None:
    """Every size of a network config (a recipe's [net], a checkpoint header's) in its range."""
    for name, (low, high) in NET_BOUNDS.items():
        if hasattr(net, name):
            check_int(f"{where}.{name}", getattr(net, name), low, high)


def check_parameters(n: int, what: str, copies: int = 1, fix: str = "use smaller networks") -> None:
    """``n`` float32 parameters (``copies`` x: weights, gradients, Adam moments) must fit in half this machine's RAM."""
    need, have = n * 4 * copies, ram_bytes() // 2
    if need > have:
        raise CtrlgenError(f"{what} have {n:,} parameters ({need / 1e9:.1f} GB), more than half this machine's RAM "
                           f"({ram_bytes() / 1e9:.1f} GB); {fix}")


# ---------------------------------------------------------------------- files
def size(n: int) -> str:
    """Bytes for people: 2.15 GB, 64.0 MB, 100 kB, 12 bytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_regular_file(path: str | os.PathLike, what: str, max_bytes: int) -> int:
    """The size of ``path`` if it is a regular file of at most ``max_bytes`` (told by ``stat``, never by
    reading: /dev/zero, FIFOs and sockets are refused by their type)."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as e:
        raise CtrlgenError(f"cannot read {path} ({e.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise CtrlgenError(f"{path} is a folder, not {what}; give a file")
    if not stat.S_ISREG(st.st_mode):
        raise CtrlgenError(f"{path} is a special file (a device, pipe or socket), not {what}; give a regular file")
    if st.st_size > max_bytes:
        raise CtrlgenError(f"{path} is {size(st.st_size)}, over the limit of {size(max_bytes)} for {what}; "
                           "give a smaller file")
    return st.st_size


def read_limited(path: str | os.PathLike, what: str, max_bytes: int) -> bytes:
    check_regular_file(path, what, max_bytes)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise CtrlgenError(f"cannot read {path} ({e.strerror}); check the path") from None
    if len(data) > max_bytes:  # grew while being read
        raise CtrlgenError(f"{path} is over the limit of {size(max_bytes)} for {what}; give a smaller file")
    return data


def gunzip_limited(raw: bytes, path: str | os.PathLike, max_bytes: int) -> bytes:
    """Decompress a gzip stream, refusing one that expands past ``max_bytes`` (a gzip bomb) before it does."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out, total, rest = [], 0, raw
    try:
        while rest:
            chunk = d.decompress(rest, 1 << 24)
            total += len(chunk)
            if total > max_bytes:
                raise CtrlgenError(f"{path} expands past {size(max_bytes)} when decompressed (a gzip bomb?); "
                                   "give the real file")
            out.append(chunk)
            rest = d.unconsumed_tail
            if d.eof:
                break
    except zlib.error as e:
        raise CtrlgenError(f"{path} is a damaged gzip file ({e}); download or copy it again") from None
    if not d.eof:
        raise CtrlgenError(f"{path} is a damaged gzip file (cut short); download or copy it again")
    return b"".join(out)


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deeply ``value`` nests lists and dicts (iterative: a deep one cannot blow the stack); over ``limit`` stops early."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list, tuple)):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            todo.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def json_problem(text: str | bytes) -> tuple[Any, str]:
    """(value, "") for JSON text, or (None, what is wrong): invalid text, non-UTF-8 bytes, NaN/Infinity, deep nesting."""
    import json

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a number JSON allows")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        return None, f"not valid JSON (nested too deeply to read, over {MAX_JSON_DEPTH} levels)"
    except (ValueError, UnicodeDecodeError) as e:
        reason = str(e).split(": line ")[0] if type(e).__name__ == "JSONDecodeError" else str(e)
        return None, f"not valid JSON ({type(e).__name__}: {reason[:80]})"
    if json_depth(value) > MAX_JSON_DEPTH:
        return None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    return value, ""


def loads_json(text: str | bytes, what: str, fix: str) -> Any:
    """JSON from a file, or one line: ``WHAT is PROBLEM; FIX``."""
    value, problem = json_problem(text)
    if problem:
        raise CtrlgenError(f"{what} is {problem}; {fix}")
    return value


# ---------------------------------------------------------------------- specs (LatentSpec.from_dict calls this)

def check_spec_sizes(d: dict[str, Any]) -> None:
    """Bounds on what a spec from a file may ask for (ctrlgen/py), before anything is built from it."""
    def count(key: str, most: int) -> list:
        v = d.get(key, [])
        if not isinstance(v, list):
            raise CtrlgenError(f"{key} must be a list, got {type(v).__name__}")
        if len(v) > most:
            raise CtrlgenError(f"{len(v):,} {key} is more than the limit of {most:,}")
        return v

    if is_int(d.get("noise_dim")):
        check_int("noise_dim", d["noise_dim"], 1, MAX_NOISE_DIM)
    for name in count("labels", MAX_CLASSES):
        if not isinstance(name, str) or not name or len(name) > MAX_LABEL_CHARS:
            raise CtrlgenError(f"label names must be non-empty strings of at most {MAX_LABEL_CHARS} characters, got {str(name)[:40]!r}")
    cats = count("categorical", MAX_CODES)
    conts = count("continuous", MAX_CODES)
    for c in [*cats, *conts]:
        if not isinstance(c, dict):
            raise CtrlgenError(f"each code must be an object with a name, got {type(c).__name__}")
    for c in cats:
        if is_int(c.get("n")):
            check_int("categorical code n", c["n"], 2, MAX_CODE_VALUES)
    out = d.get("output")
    if not isinstance(out, dict):
        raise CtrlgenError("output must be an object with kind and shape")
    shape = out.get("shape")
    if isinstance(shape, list) and all(is_int(s) for s in shape):
        top = MAX_POINT_DIMS if out.get("kind") == "points" else MAX_IMAGE_SIDE
        for s in shape:
            check_int("output size", s, 1, top)
    extra = d.get("extra", {})
    if not isinstance(extra, dict):
        raise CtrlgenError("extra must be an object")
    import json

    try:  # what is accepted must write back as the JSON it came from (the spec round-trips through the file)
        json.dumps(extra, allow_nan=False)
    except (ValueError, TypeError) as e:
        raise CtrlgenError(f"extra must hold only JSON values, no NaN or Infinity ({str(e)[:60]})") from None


# ---------------------------------------------------------------------- recipes (train/config.py calls these)
_INT_BOUNDS = {
    "batch_size": (1, MAX_BATCH), "image_size": (1, MAX_IMAGE_SIDE), "steps": (0, MAX_STEPS),
    "n_critic": (1, 1000), "log_every": (1, MAX_STEPS), "sample_every": (0, MAX_STEPS),
    "checkpoint_every": (1, MAX_STEPS), "keep_checkpoints": (1, 10_000), "monitor_every": (0, MAX_STEPS),
    "monitor_samples": (10, 1_000_000), "nonfinite_limit": (1, 1_000_000), "ensemble": (1, MAX_ENSEMBLE),
}



def check_recipe(cfg: Any) -> None:
    """Every number a recipe sets, in its range: finite learning rates, 32-bit seeds, sizes this machine can hold."""
    check_seed(cfg.seed)
    for name in ("lr_g", "lr_d"):
        check_number(name, getattr(cfg, name), 0.0, math.inf, low_open=True)  # finite: inf is refused
    check_number("epochs", cfg.epochs, 0.0, MAX_EPOCHS, low_open=True)
    for name in ("beta1", "beta2"):
        check_number(name, getattr(cfg, name), 0.0, 0.999999)
    for name, (low, high) in _INT_BOUNDS.items():
        check_int(name, getattr(cfg, name), low, high)
    check_net(cfg.net)
    check_int("latent.noise_dim", cfg.latent.noise_dim, 1, MAX_NOISE_DIM)
    codes = len(cfg.latent.categorical) + len(cfg.latent.continuous)
    check_int("the number of latent codes", codes, 0, MAX_CODES)
    for c in cfg.latent.categorical:
        check_int(f"latent code {c.name}: n", c.n, 2, MAX_CODE_VALUES)
    pixels = 2 if cfg.points else cfg.channels * cfg.image_size**2
    check_batch_memory("batch_size", cfg.batch_size * cfg.ensemble, pixels)
