"""ctrlgen: controllable generation without mode collapse.

Importing ``ctrlgen`` is cheap (no torch, no gradio); the pieces live in
``ctrlgen.spec`` (the latent contract), ``ctrlgen.runtime`` (ONNX Runtime and
checkpoint generators), ``ctrlgen.export``, ``ctrlgen.train`` and ``ctrlgen.serve``.
"""

__version__ = "0.1.0"
