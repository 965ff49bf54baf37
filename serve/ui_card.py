"""What the UI says about a model: a one-line description for the model picker and the card as tables.

Everything here comes from a model file, so it is untrusted text: ``card_markdown``
escapes every cell (``md_text``) so that a label called ``<img src=x>`` or a
recipe called ``[link](http://...)`` shows as those characters, never as
markup, an image or a link.  Local paths in the card (the data folder, the
evaluator) are not shown.  ``describe_file`` reads an .onnx file's metadata
only (no inference session), so listing the models loads none of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ctrlgen.errors import CtrlgenError
from ctrlgen.text import md_text  # noqa: F401  (app.py imports it from here)


def describe_spec(spec: Any, card: dict | None = None) -> str:
    """One line: what the model makes and what you can set, e.g. "10 classes · image 28×28"."""
    card = card or {}
    parts = []
    if spec.output_kind == "points":
        modes = (spec.extra.get("mixture") or {}).get("modes") if isinstance(spec.extra.get("mixture"), dict) else None
        parts.append(f"2D points{f' ({modes} modes)' if modes else ''}")
    else:
        parts.append(f"image {'×'.join(map(str, spec.output_shape[1:]))}" + (" RGB" if spec.output_shape[0] == 3 else ""))
    if spec.conditional:
        parts.append(f"{spec.n_classes} classes")
    codes = [f"{c.name} ({c.n} values)" for c in spec.categorical] + [c.name for c in spec.continuous]
    if codes:
        parts.append("codes " + ", ".join(codes))
    if card.get("precision") == "int8":
        parts.append("int8")
    data = card.get("data")
    if isinstance(data, dict) and data.get("name"):
        parts.insert(0, str(data["name"]))
    return " · ".join(parts)


def file_spec(path: Path) -> tuple[Any, dict] | None:
    """(spec, card) of an .onnx file from its metadata, without an inference session; None for other files."""
    from ctrlgen.spec import CARD_KEY, SPEC_KEY, LatentSpec

    if Path(path).suffix != ".onnx":
        return None
    try:
        from ctrlgen.card import read_metadata

        meta = read_metadata(path)
        spec = LatentSpec.from_json(meta[SPEC_KEY])
        card = json.loads(meta.get(CARD_KEY) or "{}")
        return spec, card if isinstance(card, dict) else {}
    except (CtrlgenError, KeyError, ValueError, TypeError):
        return None


def _techniques(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(k + (f" ({', '.join(f'{a} {b}' for a, b in v.items())})" if isinstance(v, dict) and v else "") for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def _number(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "–" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _data(value: Any) -> str:
    """The training data without its local path: name and size (or the toy mixture's parameters)."""
    if not isinstance(value, dict):
        return str(value)
    shown = {k: v for k, v in value.items() if k not in ("source", "path", "root", "dir")}
    name = shown.pop("name", "data")
    rest = ", ".join(f"{k} {_number(v)}" for k, v in shown.items())
    return f"{name} ({rest})" if rest else str(name)


def card_rows(name: str, file_name: str, backend: str, spec: Any, card: dict) -> dict[str, list[tuple[str, ...]]]:
    """The card in sections of rows (plain text): model, latent spec, training, precision, metrics."""
    model = [("name", name), ("file", file_name), ("runs on", backend), ("about", describe_spec(spec, card))]
    precision = card.get("precision", "fp32")
    model.append(("precision", "int8 (quantized: weights and activations in 8 bits)" if precision == "int8" else str(precision)))
    training = []
    for key, label, fmt in (("recipe", "recipe", str), ("loss", "loss", str), ("techniques", "techniques", _techniques),
                            ("steps", "steps", _number), ("seed", "seed", _number), ("batch_size", "batch size", _number),
                            ("data", "data", _data), ("device", "trained on", str), ("wall_time_s", "training time", None),
                            ("weights", "weights", str)):
        v = card.get(key)
        if v is None:
            continue
        text = f"{float(v) / 60:.0f} min" if key == "wall_time_s" and isinstance(v, (int, float)) else (fmt or str)(v)
        training.append((label, text))
    if isinstance(card.get("export_parity_max_abs_diff"), (int, float)):
        training.append(("export parity", f"max |ONNX − torch| = {card['export_parity_max_abs_diff']:.2g}"))
    quant = []
    if precision == "int8":
        q = card.get("quantization")
        if isinstance(q, dict):
            quant += [(k, str(v)) for k, v in q.items() if isinstance(v, (str, int, float))]
        for key, label in (("int8_vs_fp32_max_abs_diff", "int8 vs fp32, max |diff|"), ("int8_vs_fp32_mean_abs_diff", "int8 vs fp32, mean |diff|")):
            if isinstance(card.get(key), (int, float)):
                quant.append((label, f"{card[key]:.3g}"))
        qc = card.get("quality_check")
        if isinstance(qc, dict) and isinstance(qc.get("fp32"), dict) and isinstance(qc.get("reduced"), dict):
            for metric, v in qc["fp32"].items():
                quant.append((f"{metric}: fp32 → int8", f"{_number(v)} → {_number(qc['reduced'].get(metric))}"))
    metrics = []
    for metric, m in (card["metrics"] if isinstance(card.get("metrics"), dict) else {}).items():  # a card is the file's data
        if isinstance(m, dict):
            better = {True: "higher", False: "lower"}.get(m.get("higher_is_better"), "")
            metrics.append((metric, _number(m.get("value")), _number(m.get("real")), better))
        else:
            metrics.append((metric, _number(m), "–", ""))
    return {"model": model, "latent spec": [(k, v) for k, v in spec.describe()], "training": training,
            "int8": quant, "metrics": metrics}


def card_markdown(sections: dict[str, list[tuple[str, ...]]]) -> str:
    """The card's sections as Markdown tables; every cell is escaped text."""
    heads = {"metrics": ("metric", "value", "real data", "better")}
    out = []
    for title, rows in sections.items():
        if not rows:
            continue
        head = heads.get(title, ("field", "value"))
        out += [f"#### {md_text(title)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)
