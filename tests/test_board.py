"""TensorBoard logging (train/board.py): the event file holds the losses, the monitored metrics and the sample grids;
without the package the run fails before training with the line naming the fix."""

import sys

import pytest
import torch

from conftest import needs_fashion, tiny_config
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.board import INSTALL
from ctrlgen.train.config import load_config
from ctrlgen.train.trainer import Trainer


def read_events(run_dir):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_a_run_writes_losses_monitored_metrics_and_sample_grids(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        Trainer(tiny_config("ring8", "steps=8", "monitor_every=4", "monitor_samples=200", "tensorboard=true"), tmp_path).run()
    finally:
        torch.set_num_threads(threads)
    acc = read_events(tmp_path)
    tags = acc.Tags()
    assert {"train/d_adv", "train/g_adv", "train/d_acc", "monitor/modes", "monitor/high_quality"} <= set(tags["scalars"]), tags
    assert [s for s, _ in scalars(acc, "train/d_adv")] == [2, 4, 6, 8]  # log_every=2
    assert [s for s, _ in scalars(acc, "monitor/modes")] == [4, 8]
    import json

    logged = [json.loads(s) for s in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    monitor = [r for r in logged if r.get("event") == "monitor"]
    assert [v for _, v in scalars(acc, "monitor/modes")] == [r["modes"] for r in monitor]
    images = acc.Images("samples")
    assert [im.step for im in images] == [4, 8] and images[0].width > 0 and images[0].height > 0
    assert images[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"


@needs_fashion
def test_image_runs_write_intra_class_diversity_recall_and_the_real_level(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    Trainer(tiny_config("fashion-cgan", "steps=4", "monitor_every=4", "monitor_samples=300", "tensorboard=true"), tmp_path).run()
    acc = read_events(tmp_path)
    tags = set(acc.Tags()["scalars"])
    assert {"monitor/intra_diversity", "monitor/recall", "monitor/fd", "real/intra_diversity", "real/recall"} <= tags, tags
    (real_recall,) = scalars(acc, "real/recall")
    assert real_recall[0] == 4 and 0.3 < real_recall[1] <= 1.0  # real images recall real images
    assert [im.step for im in acc.Images("samples")] == [4]


def test_without_the_package_the_run_fails_before_training_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # what a missing package looks like to import
    with pytest.raises(CtrlgenError, match="install it with: pip install 'ctrlgen\\[tensorboard\\]'"):
        load_config("ring8", ["tensorboard=true"])
    load_config("ring8", ["tensorboard=false"])  # off: nothing asked of the package
    from typer.testing import CliRunner

    from ctrlgen.serve.cli import app

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "ring8", "--steps", "2", "--no-progress", "-o", str(out), "--set", "tensorboard=true"])
    lines = res.output.strip().splitlines()
    assert res.exit_code != 0 and len(lines) == 1 and INSTALL in lines[0], res.output
    assert not (out / "metrics.jsonl").exists() and not (out / "tensorboard").exists()
