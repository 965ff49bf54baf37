"""Issue 17, hardening round two: what the one-line corpus (tests/corpus.py) cannot express.

Races and signals run real ``python -m ctrlgen`` processes; the rest runs in-process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import assert_one_line_error, needs_fashion, run_cli
from ctrlgen.errors import CtrlgenError


def ctrlgen(*args, cwd: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ctrlgen", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------- lost files
def test_an_output_that_appears_during_the_job_is_kept(tmp_path):
    from ctrlgen.files import check_output, write_bytes

    out = check_output(tmp_path / "o.png", force=False)
    out.write_bytes(b"the user's file")  # created after the check, before the publish
    with pytest.raises(CtrlgenError, match="appeared while this job ran"):
        write_bytes(out, b"ours")
    assert out.read_bytes() == b"the user's file"
    assert listing(tmp_path) == ["o.png"]  # no temporary file left either


def test_force_replaces_an_existing_output(tmp_path):
    from ctrlgen.files import check_output, write_bytes

    (tmp_path / "o.png").write_bytes(b"old")
    write_bytes(check_output(tmp_path / "o.png", force=True), b"new")
    assert (tmp_path / "o.png").read_bytes() == b"new"


def test_internal_files_still_replace_their_previous_version(tmp_path):
    from ctrlgen.files import write_text

    write_text(tmp_path / "config.json", "1")
    write_text(tmp_path / "config.json", "2")
    assert (tmp_path / "config.json").read_text() == "2"


def test_a_folder_that_appears_during_the_job_is_kept(tmp_path):
    from ctrlgen.files import rename_no_replace

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "a").write_text("ours")
    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "b").write_text("theirs")
    with pytest.raises(CtrlgenError, match="appeared while this job ran"):
        rename_no_replace(tmp_path / "new", tmp_path / "target")
    assert (tmp_path / "target" / "b").read_text() == "theirs"


@needs_fashion
def test_png_dir_force_never_deletes_foreign_files(tmp_path, tiny_models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_cli("generate", tiny_models["cgan"], "-n", "10", "-f", "png-dir", "-o", "photos")
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    before = {p.name: p.read_bytes() for p in (tmp_path / "photos").iterdir()}
    r = run_cli("generate", tiny_models["cgan"], "-n", "10", "--seed", "1", "-f", "png-dir", "-o", "photos", "--force", ok=False)
    assert_one_line_error(r, "ctrlgen did not write ('holiday.jpg')")
    assert {p.name: p.read_bytes() for p in (tmp_path / "photos").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]  # no temporary folder left


@needs_fashion
def test_png_dir_force_replaces_a_folder_ctrlgen_wrote(tmp_path, tiny_models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_cli("generate", tiny_models["cgan"], "-n", "20", "-f", "png-dir", "-o", "photos")
    run_cli("generate", tiny_models["cgan"], "-n", "10", "-f", "png-dir", "-o", "photos", "--force")
    assert len(list((tmp_path / "photos").glob("*.png"))) == 10  # the old 20 are gone: they were ctrlgen's
    assert [p.name for p in tmp_path.iterdir()] == ["photos"]


@pytest.mark.slow
def test_two_generates_to_one_output_exactly_one_wins(tmp_path, tiny_models):
    procs = [ctrlgen("generate", tiny_models["ring8"], "-n", "300000", "--seed", str(s), "-o", "same.npz", cwd=tmp_path) for s in (1, 2)]
    results = [(p.wait(120), p.stderr.read()) for p in procs]
    codes = sorted(c for c, _ in results)
    assert codes == [0, 2], results
    loser = next(err for c, err in results if c == 2)
    assert len(loser.strip().splitlines()) == 1 and ("appeared while this job ran" in loser or "already exists" in loser), loser
    assert listing(tmp_path) == ["same.npz"]
    with np.load(tmp_path / "same.npz") as z:
        assert z["sample"].shape == (300000, 2)


@pytest.mark.slow
def test_sigterm_during_generate_leaves_no_parts(tmp_path, tiny_models):
    p = ctrlgen("generate", tiny_models["ring8"], "-n", "50000000", "--batch", "4096", "-o", "big.npz", cwd=tmp_path)
    deadline = time.time() + 60
    while time.time() < deadline and not any(x.name.endswith(".tmp") for x in tmp_path.iterdir()):
        time.sleep(0.05)
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    code = p.wait(60)
    assert code == 143, p.stderr.read()
    assert listing(tmp_path) == []


def test_folder_lock_refuses_a_second_writer_and_leaves_no_trace(tmp_path):
    from ctrlgen.files import FolderLock

    lock = FolderLock(tmp_path / "run", "ctrlgen train")
    with pytest.raises(CtrlgenError, match=f"in use by another ctrlgen train \\(pid {os.getpid()}\\)"):
        FolderLock(tmp_path / "run", "ctrlgen train")
    lock.release()
    assert listing(tmp_path / "run") == []
    FolderLock(tmp_path / "run", "ctrlgen train").release()


def test_a_resumed_trainer_holds_its_folder_until_closed_or_run(tmp_path, tiny_runs):
    import shutil

    from ctrlgen.train.trainer import Trainer

    run = tmp_path / "r"
    shutil.copytree(tiny_runs["ring8"], run)
    with Trainer.resume(run) as t:
        with pytest.raises(CtrlgenError, match="in use by another ctrlgen train"):
            Trainer.resume(run)  # nothing else writes the folder between loading and training
    again = Trainer.resume(run)  # the with block let go
    again.close()
    again.close()  # twice is harmless
    assert not (run / ".lock").exists()
    Trainer.resume(run).run(until=t.step)  # run() lets go at its end too
    Trainer.resume(run).close()


def test_train_into_a_locked_run_directory_is_one_line(tmp_path, tiny_runs):
    import shutil

    from ctrlgen.files import FolderLock

    run = tmp_path / "r"
    shutil.copytree(tiny_runs["ring8"], run)
    locks = [FolderLock(run, "ctrlgen train"), FolderLock(tmp_path / "fresh", "ctrlgen train")]
    try:
        before = listing(tmp_path)
        assert_one_line_error(run_cli("train", "--resume", run, "--steps", "12", ok=False), "is in use by another ctrlgen train")
        r = run_cli("train", "ring8", "--steps", "1", "--no-progress", "-o", tmp_path / "fresh", ok=False)
        assert_one_line_error(r, "wait for it to finish")
        assert listing(tmp_path) == before
    finally:
        for lock in locks:
            lock.release()
    assert not (run / ".lock").exists()


@pytest.mark.slow
def test_sigterm_during_train_saves_a_checkpoint(tmp_path):
    args = ["train", "ring8", "--steps", "100000", "--no-progress", "-o", "r", "--set", "net.g_width=16", "--set", "net.d_width=16",
            "--set", "log_every=5", "--set", "sample_every=0", "--set", "monitor_every=0"]
    p = ctrlgen(*args, cwd=tmp_path)
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
        time.sleep(0.1)
    p.send_signal(signal.SIGTERM)
    out = p.stdout.read()
    assert p.wait(60) == 0, p.stderr.read()
    assert "interrupted at step" in out and "Continue with" in out
    ckpts = list((tmp_path / "r" / "checkpoints").glob("step-*.safetensors"))
    assert ckpts and int(ckpts[-1].stem.split("-")[1]) > 0
    assert not (tmp_path / "r" / ".lock").exists()


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path, monkeypatch):
    from conftest import tiny_config
    from ctrlgen.train.trainer import Trainer

    def boom(self):
        raise CtrlgenError("the first step failed; fix it")

    monkeypatch.setattr(Trainer, "train_step", boom)
    with pytest.raises(CtrlgenError):
        Trainer(tiny_config("ring8", "steps=2"), tmp_path / "r").run()
    assert not (tmp_path / "r").exists()
    monkeypatch.undo()
    Trainer(tiny_config("ring8", "steps=2"), tmp_path / "r").run()  # and a rerun is not told the folder holds a run
    assert (tmp_path / "r" / "config.json").exists()


def test_a_full_disk_while_training_is_one_line_and_keeps_the_checkpoints(tmp_path, monkeypatch):
    """safetensors reports a full disk as its own error, not an OSError: it was a traceback.  Now one line that
    says how to continue, and the checkpoints written before stay."""
    import safetensors.torch
    from safetensors import SafetensorError

    real, calls = safetensors.torch.save_file, []

    def fills_up(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        return real(*args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "save_file", fills_up)
    run = tmp_path / "r"
    result = run_cli("train", "ring8", "--steps", 50, "--set", "checkpoint_every=10", "--set", "monitor_every=0",
                     "--no-progress", "-o", run, ok=False)
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert result.exit_code == 2 and lines[0].startswith("Training ring8") and len(lines) == 2, result.output
    assert lines[1] == (f"Error: no space left on the device at step 30; the run keeps its checkpoints: free some space, "
                        f"then continue with ctrlgen train --resume {run}")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000010.safetensors", "step-00000020.safetensors"]
    monkeypatch.undo()
    run_cli("train", "--resume", run, "--no-progress")


@pytest.mark.parametrize("args, where", [
    (("generate", "{ring8}", "-o", "{new}/a/g.png"), "ctrlgen.files.publish"),
    (("generate", "{ring8}", "-o", "{new}/a/g.npz"), "ctrlgen.writers.publish"),
    (("generate", "{cgan}", "-o", "{new}/a/pngs", "--format", "png-dir", "-n", "4", "--label", "random"), "ctrlgen.writers.publish"),
    (("export", "{ring8}", "--web", "{new}/a/site"), "ctrlgen.files.publish"),
    (("export", "{ring8}", "--triton", "{new}/a/repo"), "ctrlgen.triton.publish"),
])
def test_a_failed_write_leaves_no_folders_it_made(tmp_path, tiny_models, monkeypatch, args, where):
    """A write that fails (here: a full disk when the output is put in place) removes the folders it made for
    the output, not only its temporary files: no empty new/a/ (or a web page folder holding model.onnx alone)."""
    import errno

    import ctrlgen.triton  # noqa: F401  imported before the patch: each binds the real publish (a module first
    import ctrlgen.webpage  # noqa: F401  imported while ctrlgen.files.publish is patched would keep the patch)
    import ctrlgen.writers  # noqa: F401

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(where, full)
    new = tmp_path / "new"
    result = run_cli(*(a.format(ring8=tiny_models["ring8"], cgan=tiny_models["cgan"], new=new) for a in args), ok=False)
    assert_one_line_error(result, "no space left on the device")
    assert not new.exists(), sorted(str(p) for p in new.rglob("*"))


def test_the_corpus_covers_issue_17():
    from corpus import CASES

    ids = {c.id for c in CASES}
    want = {"force-foreign", "train-locked", "resume-locked", "spec-noise-dim", "spec-output-size", "output-renamed", "spec-more-labels",
            "triton-external", "threads-huge", "truncation-tiny", "info-dev-zero", "keys-huge", "idx-dims-huge", "idx-label-huge",
            "gzip-bomb", "recipe-noise-dim", "recipe-batch", "recipe-width", "label-markup", "config-types", "config-nan", "config-deep",
            "config-bytes", "header-step", "recipe-bytes", "recipe-deep", "seed-negative", "seed-huge", "tol-nan", "recipe-inf", "ui-host"}
    assert want <= ids, want - ids


# --------------------------------------------------------------------------- untrusted text
def evil_model(path: Path, source: Path) -> Path:
    import json

    import onnx

    m = onnx.load(str(source))
    props = {p.key: p.value for p in m.metadata_props}
    spec, card = json.loads(props["ctrlgen.spec"]), json.loads(props["ctrlgen.card"])
    spec["labels"] = ["[/bold]", "[link=http://evil.example]x[/link]", "\x1b[31mred\x1b[0m", "\u202eevil", "\x07bell"] + [f"l{i}" for i in range(5)]
    card.update(name="[/bold]\x1b]0;title\x07", recipe="[bold red]loud", metrics={"[/x]": 1})
    del m.metadata_props[:]
    m.metadata_props.add(key="ctrlgen.spec", value=json.dumps(spec))
    m.metadata_props.add(key="ctrlgen.card", value=json.dumps(card))
    onnx.save(m, str(path))
    return path


@needs_fashion
def test_names_from_a_file_are_shown_as_text_never_markup_or_escapes(tmp_path, tiny_models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = evil_model(tmp_path / "evil.onnx", tiny_models["cgan"])
    r = run_cli("info", model)
    assert "[/bold]" in r.output and "[link=http://evil.example]x[/link]" in r.output and "[bold red]loud" in r.output
    assert "\x1b" not in r.output and "\x07" not in r.output and "\u202e" not in r.output
    assert "\\x1b[31mred" in r.output
    r = run_cli("generate", model, "-n", "10", "-o", "x.png")
    assert "\x1b" not in r.output and "\x07" not in r.output
    r = run_cli("generate", model, "-n", "10", "-f", "png-dir", "-o", "pngs")
    csv = (tmp_path / "pngs" / "inputs.csv").read_text()
    assert "\x1b" not in csv and "\x07" not in csv and len(csv.splitlines()) == 11


def test_text_helpers():
    from ctrlgen.text import file_part, markup, plain

    assert plain("a\x1b[2Jb\r\n") == "a\\x1b[2Jb\\r\\n"
    assert plain("T-shirt/top ÄÖ 中") == "T-shirt/top ÄÖ 中"
    assert markup("[/bold]") == "\\[/bold]"
    assert file_part("../../etc/passwd") == "etc-passwd" and file_part("\x1b") == "model" and not file_part(".hidden").startswith(".")


# --------------------------------------------------------------------------- exposure
def test_ui_bind_address_says_when_the_network_can_reach_it(monkeypatch):
    from ctrlgen.serve import explore_cli
    from ctrlgen.serve.explore_cli import bind_address

    with pytest.raises(CtrlgenError, match="is not an address of this machine"):  # TEST-NET-1: never this machine's
        bind_address("192.0.2.7", 7860)
    # The wording of the warning, whatever addresses this machine has (IPv6 may be off on it).
    monkeypatch.setattr(explore_cli, "_check_bindable", lambda bare, host: None)
    assert bind_address("127.0.0.1", 7860) == ("127.0.0.1", "")
    assert bind_address("::1", 7860) == ("[::1]", "")  # gradio takes IPv6 literals in brackets
    assert bind_address("[::1]", 7860) == ("[::1]", "")
    assert bind_address("localhost", 7860) == ("localhost", "")
    bind, warning = bind_address("0.0.0.0", 7860)
    assert bind == "0.0.0.0" and "0.0.0.0:7860" in warning and "every network interface" in warning and "\n" not in warning
    bind, warning = bind_address("::", 8000)
    assert bind == "[::]" and "[::]:8000" in warning
    assert "192.168.1.5:7860" in bind_address("192.168.1.5", 7860)[1]
    with pytest.raises(CtrlgenError, match="not an address"):
        bind_address("a b", 7860)


def test_no_replace_publish_without_renameat2_or_hard_links(tmp_path, monkeypatch):
    """The fallbacks: a hard link where renameat2 is missing; check-then-rename where hard links are too."""
    import errno

    import ctrlgen.files as files

    monkeypatch.setattr(files, "_renameat2_noreplace", lambda src, dst: False)
    (tmp_path / "a").write_text("ours")
    (tmp_path / "b").write_text("theirs")
    with pytest.raises(CtrlgenError, match="appeared while this job ran"):
        files.rename_no_replace(tmp_path / "a", tmp_path / "b")
    files.rename_no_replace(tmp_path / "a", tmp_path / "c")
    assert (tmp_path / "c").read_text() == "ours" and not (tmp_path / "a").exists()

    def no_links(src, dst):
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(files.os, "link", no_links)
    with pytest.raises(CtrlgenError, match="appeared while this job ran"):
        files.rename_no_replace(tmp_path / "c", tmp_path / "b")
    files.rename_no_replace(tmp_path / "c", tmp_path / "d")
    assert (tmp_path / "b").read_text() == "theirs" and (tmp_path / "d").read_text() == "ours"


@pytest.mark.parametrize("args, fragment", [
    (["export", "MODEL", "--triton", "REPO", "--triton-instances", "1000000000"], "--triton-instances must be in 1..64"),
    (["export", "MODEL", "--triton", "REPO", "--max-batch-size", "100000000000"], "--max-batch-size must be in 1..65,536"),
    (["ui", "--max-samples", "1000000000000"], "--max-samples must be in 1..65,536"),
    (["ui", "--concurrency", "100000"], "--concurrency must be in 1..256"),
    (["train", "/dev/zero"], "is a special file"),
])
def test_more_bounds_are_one_line(tmp_path, tiny_models, args, fragment):
    args = [str(tiny_models["ring8"]) if a == "MODEL" else str(tmp_path / "repo") if a == "REPO" else a for a in args]
    assert_one_line_error(run_cli(*args, ok=False), fragment)
    assert not (tmp_path / "repo").exists()


# --------------------------------------------------------------------------- tampered state
def test_tampered_metrics_lines_neither_break_plot_nor_resume(tmp_path, tiny_runs):
    import shutil
    import warnings

    run = tmp_path / "r"
    shutil.copytree(tiny_runs["ring8"], run)
    bad = (b'{"step": 1, "d_adv": "x"}\n{"step": 2, "$\\\\frac{": 1}\n[1, 2]\n\xff\xfe\n{"step": "x"}\n{"event": 5, "step": 3}\n'
           b'{"step": 4, "g_adv": 1e308, "d_adv": NaN}\n{"step": 5, "event": "egan", "won": 5}\n' + b"[" * 100000 + b"\n")
    before = len((run / "metrics.jsonl").read_bytes().splitlines())
    with open(run / "metrics.jsonl", "ab") as f:
        f.write(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning would be a second line on stderr
        r = run_cli("plot", run, "-o", tmp_path / "p.png")
    assert "Wrote" in r.output and (tmp_path / "p.png").exists()
    # what was left out is said, with where to look: [1, 2], the bytes, step "x", event 5 and the deep nesting
    assert f"5 lines (the first: line {before + 3}) not a training record, left out of the plot" in r.output
    run_cli("train", "--resume", run, "--steps", "10", "--no-progress")
    import json

    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert all(isinstance(json.loads(x), dict) for x in lines)  # the resume kept only readable lines


def test_a_file_replaced_keeps_its_permissions_and_a_new_one_gets_the_umasks(tmp_path):
    from ctrlgen.files import write_bytes

    old = tmp_path / "old.png"
    old.write_bytes(b"theirs")
    old.chmod(0o640)
    write_bytes(old, b"ours")  # --force onto a file, or a card recorded in place
    assert old.read_bytes() == b"ours" and old.stat().st_mode & 0o777 == 0o640
    mask = os.umask(0o022)
    try:
        write_bytes(tmp_path / "new.png", b"ours")
    finally:
        os.umask(mask)
    assert (tmp_path / "new.png").stat().st_mode & 0o777 == 0o644


def test_an_output_this_job_published_may_be_rewritten_by_it(tmp_path):
    from ctrlgen.files import check_output, write_bytes

    out = check_output(tmp_path / "m.onnx", force=False)
    write_bytes(out, b"model")
    write_bytes(out, b"model with its card")  # export --eval records the metrics in the file it just wrote
    assert out.read_bytes() == b"model with its card"
