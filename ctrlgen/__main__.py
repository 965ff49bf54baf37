"""``python -m ctrlgen`` is the ``ctrlgen`` command."""

from ctrlgen.serve.cli import main

main()
