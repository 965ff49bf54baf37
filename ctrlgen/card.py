"""A model's card: built from the checkpoint header, read from and recorded into an exported file.

``build_card(meta, weights)`` makes the card of an export from the header that
training wrote into the checkpoint (``Trainer.meta()``); ``read_metadata``
reads the ``metadata_props`` (spec and card) of an ONNX file.

``record(onnx_path, report)`` writes the evaluation into the ``ctrlgen.card``
metadata of an exported generator (``card["metrics"]``: value and real-data
reference per metric; ``card["evaluation"]``: sample count, seed, evaluator
hash and accuracy, date) and rewrites the file atomically; nothing else in
the file changes.  ``markdown(card, spec)`` renders the card for people
(``models/NAME.md``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import write_bytes, write_text
from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec
from ctrlgen.text import md_cell, md_code


def build_card(meta: dict[str, Any], weights: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model card: how the model was made, from the checkpoint's header (``Trainer.meta()``).

    The header holds everything the card shows, so reading it needs no training code.  Checkpoints
    written before the header listed the active techniques (``meta["techniques"]``) fall back to the
    techniques their config names (without those a loss switches on by itself)."""
    cfg = meta.get("config", {})
    card: dict[str, Any] = {
        "name": cfg.get("recipe", "custom"),
        "recipe": cfg.get("recipe", "custom"),
        "loss": cfg.get("loss"),
        "techniques": meta["techniques"] if "techniques" in meta else cfg.get("techniques"),
        "steps": meta.get("step"),
        "seed": cfg.get("seed"),
        "batch_size": cfg.get("batch_size"),
        "data": meta.get("data"),
        "device": meta.get("device"),
        "wall_time_s": meta.get("wall_time"),
        "weights": weights,
        "params": meta.get("params"),
        "versions": meta.get("versions"),
        "config": cfg,
        "exported": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "metrics": {},
    }
    labelled = (meta.get("technique_meta") or {}).get("semi_supervised")
    if labelled:  # semi-supervised InfoGAN: how many labelled images the run saw
        card["labelled"] = {k: labelled.get(k) for k in ("labels_per_class", "classes", "labelled", "indices_sha256")}
        card["labelled"].update({k: labelled[k] for k in ("q_warmup_ce", "q_warmup_accuracy") if k in labelled})  # q_warmup's
    card.update(extra or {})
    return card


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file, read without building a session (a FIFO or device is refused: it hung)."""
    import onnx

    from ctrlgen.limits import MAX_MODEL_BYTES, check_regular_file

    check_regular_file(path, "a model", MAX_MODEL_BYTES)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise CtrlgenError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export or download it again") from None
    return {p.key: p.value for p in model.metadata_props}


def record(path: str | os.PathLike, report, measured_on: str | None = None) -> dict[str, Any]:
    """Put ``report``'s metrics into the card of the ONNX file at ``path``; return the new card.

    ``measured_on``: what the report measured when it is not the file itself (the checkpoint it was
    exported from, e.g. to include the Q head's consistency in a G-only file); it names the command."""
    import onnx

    path = Path(path)
    if path.suffix != ".onnx":
        raise CtrlgenError(f"{path} is not an .onnx file; cards live in exported models (ctrlgen export RUN -o m.onnx --eval)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
        raise CtrlgenError(f"{path} is not a readable ONNX file ({type(e).__name__}); re-export it") from None
    props = {p.key: p for p in model.metadata_props}
    if CARD_KEY not in props:
        raise CtrlgenError(f"{path} has no '{CARD_KEY}' metadata; export it with ctrlgen export first")
    card = json.loads(props[CARD_KEY].value)
    d = report.as_dict()
    card["metrics"] = d["metrics"]
    card["evaluation"] = {
        "n": d["n"],
        "seed": d["seed"],
        "evaluator": d["evaluator"],
        "command": f"ctrlgen eval {measured_on or path.name} --n {d['n']} --seed {d['seed']}",
        "measured": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notes": d["notes"],
    }
    props[CARD_KEY].value = json.dumps(card, sort_keys=True)
    write_bytes(os.path.realpath(path), model.SerializeToString())  # through a link: the file it names is updated, the link stays
    return card


def spec_of(path: str | os.PathLike) -> LatentSpec:
    return LatentSpec.from_json(read_metadata(path)[SPEC_KEY])


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.4g}" if abs(x) < 1000 else f"{x:,.0f}"
    return str(x)


def _network(cfg: dict[str, Any]) -> str | None:
    """The network settings, toolkit options among them (spectral norm, packing, minibatch features, VBN)."""
    net = cfg.get("net")
    if not net:
        return None
    keep = ("family", "g_width", "g_fc", "d_width", "d_fc", "depth", "d_norm", "pack", "minibatch", "g_vbn")
    return ", ".join(f"{k} {net[k]}" for k in keep if k in net and (net[k] or k in ("g_fc",)))


def _optimizer(cfg: dict[str, Any]) -> str | None:
    if "lr_g" not in cfg:
        return None
    mode = f", mode {cfg['mode']}" if cfg.get("mode", "standard") not in ("standard", None) else ""
    return (f"Adam lr_g {cfg['lr_g']:g}, lr_d {cfg.get('lr_d', 0):g}, betas ({cfg.get('beta1')}, {cfg.get('beta2')}), "
            f"n_critic {cfg.get('n_critic', 1)}, amp {cfg.get('amp', 'auto')}{mode}")


def _labelled(d: Any) -> str | None:
    """Semi-supervision's labelled set for people: ``10 per class × 10 classes = 100``."""
    if not isinstance(d, dict):
        return None
    return (f"{d.get('labels_per_class')} per class × {d.get('classes')} classes = {d.get('labelled')} "
            "(semi-supervised InfoGAN; the other images unlabelled)")


def markdown(card: dict[str, Any], spec: LatentSpec) -> str:
    """The card for people (NAME.md).  Every value comes from the model file, so each cell is literal text
    (``md_cell``; commands and JSON as code spans): a class called ``<img src=x onerror=...>`` stays those
    characters, never HTML, and a ``|`` inside a value does not split its table row."""
    name = card.get("name", "model")
    lines = [f"# {md_cell(name)}", ""]
    rows = [
        ("recipe", card.get("recipe")),
        ("reproduce", md_code(f"ctrlgen train {card.get('recipe')} --seed {card.get('seed')}") if card.get("recipe") not in (None, "custom") else None),
        ("loss", card.get("loss")),
        ("techniques", md_code(json.dumps(card.get("techniques"))) if card.get("techniques") else "none"),
        ("network", _network(card.get("config") or {})),
        ("optimizer", _optimizer(card.get("config") or {})),
        ("steps", card.get("steps")),
        ("seed", card.get("seed")),
        ("batch size", card.get("batch_size")),
        ("data", md_code(json.dumps(card.get("data"))) if card.get("data") else None),
        ("labelled images", _labelled(card.get("labelled"))),
        ("device", card.get("device")),
        ("wall time", f"{card['wall_time_s']:.0f} s" if isinstance(card.get("wall_time_s"), (int, float)) else None),
        ("weights", card.get("weights")),
        ("weights storage", card.get("weights_storage")),
        ("parameters", md_code(json.dumps(card.get("params"))) if card.get("params") else None),
        ("exported", card.get("exported")),
    ]
    lines += ["| field | value |", "|---|---|"]
    code = {"reproduce", "techniques", "data", "parameters"}  # already code spans (or "none")
    lines += [f"| {k} | {v if k in code else md_cell(v)} |" for k, v in rows if v is not None]
    lines += ["", "## Latent spec", "", "| input | value |", "|---|---|"]
    lines += [f"| {md_cell(k)} | {md_cell(v)} |" for k, v in spec.describe()]
    metrics = card.get("metrics") or {}
    ev = card.get("evaluation") or {}
    if metrics:
        lines += ["", "## Metrics measured at export", ""]
        if ev:
            lines.append(f"{md_code(ev.get('command'))} ({md_cell(ev.get('n'))} samples, measured {md_cell(ev.get('measured'))}).")
            if ev.get("evaluator"):
                e = ev["evaluator"]
                lines.append(f"Evaluator {md_code(Path(str(e['path'])).name)} (sha256 {md_code(str(e['sha256'])[:12] + '…')}, test accuracy "
                             f"{100 * e['test_accuracy']:.2f}%); real reference: {md_cell(e['reference'])}.")
            lines.append("")
        lines += ["| metric | value | real data | better |", "|---|---|---|---|"]
        from ctrlgen.metrics.registry import ORDER

        rank = {name: i for i, name in enumerate(ORDER)}  # the report's order (the file stores keys sorted)
        for k, m in sorted(metrics.items(), key=lambda kv: rank.get(kv[0], len(rank))):
            if isinstance(m, dict):
                better = "higher" if m.get("higher_is_better") else "lower"
                lines.append(f"| {md_cell(k)} | {md_cell(_fmt(m.get('value')))} | {md_cell(_fmt(m.get('real')))} | {better} |")
        for note in ev.get("notes") or []:
            lines.append(f"\nNote: {md_cell(note)}")
    return "\n".join(lines) + "\n"


def is_card_markdown(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a model card this module wrote (``# NAME``, a blank line, ``| field | value |``)."""
    try:
        with open(path, encoding="utf-8") as f:
            head = [f.readline() for _ in range(3)]
    except (OSError, UnicodeDecodeError):
        return False
    return head[0].startswith("# ") and head[1] == "\n" and head[2].rstrip("\n") == "| field | value |"


def check_markdown_path(onnx_path: str | os.PathLike, force: bool = False, fix: str = "move it away or pass --force to replace it",
                        ours: Callable[[Path], bool] = is_card_markdown) -> Path:
    """The card's NAME.md beside ``onnx_path``; refuse (before any work) to replace a file there that is not
    a card ctrlgen wrote (``ours`` tells), unless ``force`` (never a folder)."""
    out = Path(onnx_path).with_suffix(".md")
    if out.is_dir():
        raise CtrlgenError(f"{out} is a folder, and the model card would be written there; move it away")
    if os.path.lexists(out) and not force and not ours(out):
        raise CtrlgenError(f"{out} exists and is not a model card ctrlgen wrote, and the card would be written there; {fix}")
    return out


def write_markdown(onnx_path: str | os.PathLike, card: dict[str, Any], force: bool = False) -> Path:
    out = check_markdown_path(onnx_path, force)
    write_text(out, markdown(card, spec_of(onnx_path)))
    return out
