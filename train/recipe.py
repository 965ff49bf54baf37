"""Recipes as plain data: TOML files, ``extends``, ``--set`` overrides and ``--data DIR``.

A recipe names a model family (``cgan``, ``infogan``, ``gan2d``) with its data
as a field; a preset (``fashion-cgan``, ``ring8``, ...) is a thin file that
starts with ``extends = "BASE"`` and overrides what differs.  The merge rule:
tables merge key by key, recursively, and the preset wins; any other value
(a number, a string, an array, an array of tables such as
``[[latent.continuous]]``) is replaced whole.  A preset turns off a technique
its base sets with ``NAME = false`` in its ``[techniques]`` table (and ``--set
techniques.NAME=false`` does the same).  ``BASE`` is a shipped recipe name or a
TOML path (relative to the preset's folder).

Everything here works on plain dicts; ``ctrlgen.train.config`` turns the
result into a validated ``TrainConfig``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import tomllib

from ctrlgen.data import MIXTURES, image_classes, is_idx_folder, probe_image_folder
from ctrlgen.errors import CtrlgenError


def recipe_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ctrlgen.train").joinpath("recipes").iterdir() if p.name.endswith(".toml"))


def _read_one(name_or_path: str, folder: Path | None) -> tuple[dict[str, Any], str, Path | None]:
    """One TOML file, unmerged: (table, where, its folder for relative bases)."""
    path = Path(name_or_path)
    if folder is not None and path.suffix == ".toml" and not path.is_absolute():
        path = folder / path
    if path.suffix == ".toml" or path.exists():
        if not path.exists() or path.is_dir():
            raise CtrlgenError(f"recipe file {path} does not exist; give a recipe name ({', '.join(recipe_names())}) or a TOML path")
        from ctrlgen.limits import MAX_SMALL_FILE, read_limited

        raw, where, home = read_limited(path, "a recipe", MAX_SMALL_FILE), str(path), path.parent
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CtrlgenError(f"{where} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    else:
        res = resources.files("ctrlgen.train").joinpath("recipes", f"{name_or_path}.toml")
        if not res.is_file():
            raise CtrlgenError(f"recipe {name_or_path!r} is unknown; use one of: {', '.join(recipe_names())} (or a TOML path)")
        text, where, home = res.read_text(), f"recipe {name_or_path}", None
    from ctrlgen.limits import MAX_JSON_DEPTH, json_depth

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CtrlgenError(f"{where} is not valid TOML ({e}); fix the file") from None
    except RecursionError:
        raise CtrlgenError(f"{where} nests too deeply to read; fix the file") from None
    if json_depth(table) > MAX_JSON_DEPTH:
        raise CtrlgenError(f"{where} nests deeper than {MAX_JSON_DEPTH} levels; fix the file")
    if (found := _date_in(table)) is not None:
        key, value = found
        raise CtrlgenError(f"{where}: {key} = {value} is a TOML date or time, which no setting takes; "
                           "give a number, a \"quoted\" string, true/false or a table")
    return table, where, home


def _date_in(node: Any, key: str = "") -> tuple[str, Any] | None:
    """The first TOML date, time or date-time in ``node`` and its dotted key (None where there is none)."""
    import datetime

    if isinstance(node, (datetime.date, datetime.time)):  # datetime.datetime is a date
        return key, node.isoformat()
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        if (found := _date_in(v, f"{key}.{k}" if key else str(k))) is not None:
            return found
    return None


def merge(base: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    """``preset`` over ``base``: tables merge key by key (recursively), the preset wins; other values are replaced."""
    out = dict(base)
    for k, v in preset.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_recipe(name_or_path: str) -> dict[str, Any]:
    """A recipe by name (``fashion-cgan``) or by path to a TOML file, with its ``extends`` chain merged in."""
    chain: list[str] = []
    layers: list[dict[str, Any]] = []
    name, folder = name_or_path, None
    while True:
        d, where, folder = _read_one(name, folder)
        key = str(Path(where).resolve()) if folder is not None else where
        if key in chain:
            names = " -> ".join([*(c.removeprefix("recipe ") for c in chain), key.removeprefix("recipe ")])
            raise CtrlgenError(f"recipes extend each other in a cycle ({names}); remove one of the extends")
        chain.append(key)
        base = d.pop("extends", None)
        layers.append(d)
        if base is None:
            break
        if not isinstance(base, str) or not base:
            raise CtrlgenError(f"{where}: extends must be a recipe name or a TOML path, got {base!r}")
        if Path(base).suffix == ".toml":
            known = (folder / base if folder is not None and not Path(base).is_absolute() else Path(base)).is_file()
        else:
            known = resources.files("ctrlgen.train").joinpath("recipes", f"{base}.toml").is_file()
        if not known:
            raise CtrlgenError(f"{where} extends {base!r}, which is unknown; use one of: {', '.join(recipe_names())} (or a TOML path)")
        name = base
    out: dict[str, Any] = {}
    for layer in reversed(layers):
        out = merge(out, layer)
    out.setdefault("recipe", Path(name_or_path).stem if Path(name_or_path).suffix == ".toml" else name_or_path)
    return out


# ---------------------------------------------------------------------- --set key=value
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
    except (tomllib.TOMLDecodeError, RecursionError):
        value = raw.strip()
    return key.split("."), value


def _index(node: list, k: str, item: str) -> int:
    """``k`` as an index of the array of tables ``node`` (``latent.categorical.0.n=4``), or a one-line error."""
    if not (k.isascii() and k.isdigit() and int(k) < len(node)):
        there = {0: "it is empty", 1: "its only index is 0"}.get(len(node), f"its indices are 0..{len(node) - 1}")
        raise CtrlgenError(f"override {item!r}: {k!r} is not an index of that list ({there})")
    return int(k)


def apply_overrides(d: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``d`` with each ``--set`` item applied; a part of the key that is a number indexes an array of tables."""
    d = json.loads(json.dumps(d))  # deep copy of plain data
    for item in overrides:
        keys, value = parse_override(item)
        node = d
        for k in keys[:-1]:
            nxt = node[_index(node, k, item)] if isinstance(node, list) else node.setdefault(k, {})
            if not isinstance(nxt, (dict, list)) or (isinstance(nxt, list) and not all(isinstance(x, dict) for x in nxt)):
                raise CtrlgenError(f"override {item!r}: {k} is a value, not a table; set it as {k}=VALUE")
            node = nxt
        node[_index(node, keys[-1], item) if isinstance(node, list) else keys[-1]] = value
    return d


# ---------------------------------------------------------------------- --data DIR
def with_data_folder(d: dict[str, Any], folder: str, overrides: list[str] = ()) -> dict[str, Any]:
    """The recipe ``d`` trained on ``folder`` (``--data DIR``).

    A folder of class subfolders makes ``data = "image-folder"``, and its images choose
    ``channels`` and ``image_size`` unless ``overrides`` (the ``--set`` items) set them; images
    that disagree (sizes, grayscale and colour) give one line naming the ``--set`` to add.
    A folder of IDX files keeps the recipe's data and shape (they are checked when loaded).
    """
    if d.get("data") in MIXTURES:
        raise CtrlgenError(f"recipe {d.get('recipe')} trains on the 2D mixture {d['data']}; --data DIR needs an image recipe (cgan or infogan)")
    d = {**d, "data_dir": folder}
    path = Path(folder)
    if not path.is_dir() or is_idx_folder(path):
        return d  # a missing folder or IDX files: load_images says what is wrong when the run starts
    given = {".".join(parse_override(item)[0]) for item in overrides}
    d["data"] = "image-folder"
    n_classes = len(image_classes(path))
    if d.get("conditional", True) and n_classes == 0:
        raise CtrlgenError(f"{folder} has images only in unlabelled/, but recipe {d.get('recipe')} is class-conditional and needs a label "
                           "on every image; put them in one subfolder per class, or train infogan")
    if d.get("conditional", True) and n_classes < 2:
        raise CtrlgenError(f"{folder} has one class subfolder but recipe {d.get('recipe')} is class-conditional; "
                           "add a subfolder per class, or train infogan (or --set conditional=false)")
    channels, size = probe_image_folder(path, need_channels="channels" not in given, need_size="image_size" not in given)
    if channels is not None:
        d["channels"] = channels
    if size is not None:
        d["image_size"] = size
    return d
