"""Render the GPU benchmarks' JSON (benchmarks/train.py and generate.py with --device cuda) as markdown.

    python benchmarks/gpu_report.py TRAIN_JSON GENERATE_JSON -o gpu.md [--docs]

``--docs`` also writes docs/results/gpu.md, but only when the JSON holds GPU measurements: a run on a
machine without CUDA writes its "skipped" note to ``-o`` and leaves docs/ alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "results" / "gpu.md"


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return {"skipped": f"{path.name} missing or unreadable ({type(e).__name__})"}


def train_section(t: dict) -> list[str]:
    if "skipped" in t or not t.get("batches"):
        return [f"Training: not measured ({t.get('skipped', 'no results')})."]
    lines = [f"Training step speed (`benchmarks/train.py --device cuda`): fashion-cgan, one D and one G update per step, "
             f"on {t['device']} (torch {t['torch']}, CUDA {t['cuda']}); medians of interleaved repeats after warm-up.", ""]
    for label, table in t["batches"].items():
        b, rows = table["batch"], table["rows"]
        lines += [f"| step (batch {label}) | steps/s | ms/step | samples/s | vs reference | warm-up s |", "|---|---:|---:|---:|---:|---:|"]
        for name, r in rows.items():
            lines.append(f"| {name} | {r['steps_per_s']:,.1f} | {r['ms_per_step']:.2f} | {b * r['steps_per_s']:,.0f} | "
                         f"{r['vs_reference']:.2f}x | {r['warmup_s']:.1f} |")
        best = max((n for n in rows if n.startswith("cgan")), key=lambda n: rows[n]["steps_per_s"], default=None)
        if best:
            lines += ["", f"Fastest ctrlgen path at batch {label}: {best}, {rows[best]['vs_reference']:.2f}x the reference "
                      f"(target 5x).", ""]
    if t.get("syncs_per_step"):
        lines.append("Host syncs inside one step: " + ", ".join(f"{k}: {v}" for k, v in t["syncs_per_step"].items()) + ".")
    lines += [f"Note: {n}" for n in t.get("notes", [])]
    return lines


def generate_section(g: dict) -> list[str]:
    if "skipped" in g or not g.get("results"):
        return [f"Generation: not measured ({g.get('skipped', 'no results')})."]
    rows = {k: v for k, v in g["results"].items() if v}
    batches = sorted({int(b) for v in rows.values() for b in v})
    lines = [f"Generation speed (`benchmarks/generate.py --device cuda`): {g['model']} on {g['device']} (torch {g['torch']}, "
             f"onnxruntime {g['onnxruntime']}); samples/s, device-resident inputs and outputs, medians after warm-up.", "",
             "| path | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---:|" * len(batches)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[str(b)]:,.0f}" if str(b) in row else "–" for b in batches) + " |")
    lines += [""] + [f"Note: {n}" for n in g.get("notes", [])]
    return lines


def render(train: dict, gen: dict) -> str:
    device = train.get("device") or gen.get("device") or "no CUDA device"
    out = [f"# GPU results ({device})", "", "Written by `scripts/gpu_check.sh` (benchmarks/gpu_report.py); the tests it ran are in its pytest.log.", ""]
    return "\n".join([*out, *train_section(train), "", *generate_section(gen), ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path)
    ap.add_argument("generate", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--docs", action="store_true", help=f"Also write {DOCS.relative_to(ROOT)} when there are GPU numbers.")
    args = ap.parse_args()
    train, gen = load(args.train), load(args.generate)
    text = render(train, gen)
    args.out.write_text(text)
    measured = bool(train.get("batches") or gen.get("results"))
    if args.docs and measured:
        DOCS.write_text(text)
        print(f"wrote {args.out} and {DOCS}")
    else:
        print(f"wrote {args.out}" + ("" if measured else " (no GPU numbers: docs/ left alone)"))


if __name__ == "__main__":
    main()
