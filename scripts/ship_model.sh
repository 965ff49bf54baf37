#!/usr/bin/env bash
# Turn a finished run into a shipped model: models/NAME.onnx with its measured card
# (models/NAME.md) and the README's sample picture docs/img/models/NAME.png.
#
#   scripts/ship_model.sh NAME RUN_DIR_OR_CHECKPOINT
#
# How the models in models/ were made (seed 0, this CPU; see each card for steps and wall time):
#   .venv/bin/ctrlgen train fashion-cgan    -o runs/fashion-cgan    && scripts/ship_model.sh fashion-cgan    runs/fashion-cgan
#   scripts/ship_model.sh fashion-cgan-int8 runs/fashion-cgan                        # the same run, int8 (3.4-5.5x faster)
#   .venv/bin/ctrlgen train fashion-infogan -o runs/fashion-infogan && scripts/ship_model.sh fashion-infogan runs/fashion-infogan
#   .venv/bin/ctrlgen train fashion-infogan-ss -o runs/fashion-infogan-ss && scripts/ship_model.sh fashion-infogan-ss runs/fashion-infogan-ss
#   .venv/bin/ctrlgen train ring8           -o runs/ring8           && scripts/ship_model.sh ring8           runs/ring8
#   .venv/bin/ctrlgen train grid25          -o runs/grid25          && scripts/ship_model.sh grid25          runs/grid25
# A run directory exports its newest checkpoint; pass checkpoints/best.safetensors (kept by
# the training monitor) or any step-*.safetensors to choose another.
# SHIP_TO=DIR puts NAME.onnx and NAME.md into DIR instead of models/ and stops there (no picture): a
# candidate made elsewhere (scripts/gpu_sweep.py on a GPU machine) and copied into models/ later.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ne 2 ]; then
  echo "usage: scripts/ship_model.sh NAME RUN_DIR_OR_CHECKPOINT" >&2
  exit 2
fi
name=$1
src=$2
ctrlgen=.venv/bin/ctrlgen

# Export beside the old file first, then replace: a failed export or eval leaves models/ as it was.
tmp=$(mktemp -d models/.ship-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# fp32 export; over the 20 MB budget of models/ (G's FC 1024 layer: 26.6 MB) its big weights are stored as fp16.
export_in_budget() {
  "$ctrlgen" export "$src" -o "$tmp/$name.onnx"
  if [ "$(stat -c %s "$tmp/$name.onnx")" -gt 20000000 ]; then .venv/bin/python scripts/store_fp16.py "$tmp/$name.onnx"; fi
}
case "$name" in
  *infogan*)
    # G alone (with --q-head D's trunk comes along, over the 20 MB budget).  The card's metrics are
    # measured on the checkpoint, whose Q head gives the continuous-code consistency; its samples are
    # the file's (the export checks ONNX Runtime against torch).
    export_in_budget
    .venv/bin/python -c '
import sys
from ctrlgen.card import record, write_markdown
from ctrlgen.metrics.report import evaluate
from ctrlgen.serve.eval_cli import print_report
report = evaluate(sys.argv[1])
print_report(report)
print("Recorded the metrics in the card; wrote", write_markdown(sys.argv[2], record(sys.argv[2], report, measured_on=sys.argv[1])))
' "$src" "$tmp/$name.onnx"
    ;;
  *-int8)
    # The quantized export (README "Faster generation"): refused unless the evaluator says quality is kept.
    "$ctrlgen" export "$src" -o "$tmp/$name.onnx" --precision int8
    "$ctrlgen" eval "$tmp/$name.onnx" --write-card
    ;;
  *)
    export_in_budget
    "$ctrlgen" eval "$tmp/$name.onnx" --write-card
    ;;
esac
sed -i "s#$tmp/#models/#g" "$tmp/$name.md"
dest=${SHIP_TO:-models}
mkdir -p "$dest"
mv -f "$tmp/$name.onnx" "$dest/$name.onnx"
mv -f "$tmp/$name.md" "$dest/$name.md"
if [ "$dest" != models ]; then
  echo "wrote $dest/$name.onnx and $dest/$name.md (copy both into models/ to ship them)"
  exit 0
fi

mkdir -p docs/img/models
case "$name" in
  fashion-cgan|fashion-cgan-int8) "$ctrlgen" generate "$name" --label all --n 100 --seed 0 -o "docs/img/models/$name.png" --force ;;
  fashion-infogan*) "$ctrlgen" sweep "$name" --cat c --rows 8 --seed 0 -o "docs/img/models/$name.png" --force ;;
  *) "$ctrlgen" generate "$name" --n 2500 --seed 0 -o "docs/img/models/$name.png" --force ;;
esac
"$ctrlgen" info "$name" | head -n 5
echo "shipped models/$name.onnx ($(du -h "models/$name.onnx" | cut -f1)), card models/$name.md, picture docs/img/models/$name.png"
