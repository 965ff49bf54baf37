"""``python -m ctrlgen.train ARGS`` is ``ctrlgen train ARGS``: the entry point for torchrun.

``torchrun --nproc_per_node N -m ctrlgen.train RECIPE -o RUN_DIR`` starts N
ranks of one distributed run; under torchrun with more than one rank,
``--distributed`` is implied (train/distributed.py).
"""

import sys

from ctrlgen.serve.cli import main
from ctrlgen.train.distributed import launched_by_torchrun

args = ["train", *sys.argv[1:]]
if launched_by_torchrun() and "--distributed" not in args:
    args.append("--distributed")
sys.argv = [sys.argv[0], *args]
main()
