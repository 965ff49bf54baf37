"""A short version of benchmarks/load_ui.py: concurrent gradio_client clients on the served shipped models."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from test_ui_api import GRADIO_PANDAS

pytestmark = GRADIO_PANDAS
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "load_ui.py"


def load_script():
    spec = importlib.util.spec_from_file_location("load_ui", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["load_ui"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_concurrent_clients_are_all_served_and_over_limit_ones_refused(tmp_path):
    from ui_server import serving

    from ctrlgen.models import models_dir
    from ctrlgen.serve.app import Limits

    load = load_script()
    reqs = load.make_requests(40, over=6, max_samples=64)
    models = [models_dir() / "fashion-cgan.onnx", models_dir() / "ring8.onnx"]
    with serving(models, Limits(max_samples=64, concurrency=2, queue_size=64)) as (_, url):
        outcomes, wall = load.run_load(url, reqs, clients=8, download_dir=str(tmp_path))
    assert len(outcomes) == 40
    bad = [o for o in outcomes if not o.ok]
    assert not bad, bad[:3]
    refused = [o for o in outcomes if o.kind.startswith("over")]
    assert len(refused) == 6 and all("over the limit of 64" in o.note for o in refused)
    assert "| all | 40 | 40 |" in load.table(outcomes, wall)
