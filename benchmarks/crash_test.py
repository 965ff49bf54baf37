"""Crash safety: kill ``ctrlgen train`` with SIGKILL at random moments, then check and resume the run.

    .venv/bin/python benchmarks/crash_test.py --kills 10            # a few minutes on 2 CPU cores

Starts the real command (``python -m ctrlgen train ring8 ...`` with MLPs wide
enough that a checkpoint takes milliseconds to write) and SIGKILLs it ``--kills`` times:
every other kill waits until a checkpoint is being written (its temporary file
exists) and kills then; the others kill at a random moment after the process
has started.  After every kill it checks the run directory:

* ``config.json`` parses and is byte-identical to the first one written;
* every line of ``metrics.jsonl`` parses, except a last line cut by the kill;
* every ``checkpoints/*.safetensors`` loads, the newest one gives finite
  samples through ``Runtime.from_file(run)``, and the newest step never goes back;

and continues with ``ctrlgen train --resume`` (or the first command again if
the kill came before ``config.json``).  After the last kill the run is
resumed to the end and must finish at the requested step with metrics for
every logged step, no temporary files left, and -- on CPU, where resume is
exact -- the same weights and optimizer state as an uninterrupted run.
Prints one line per kill and a summary; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUN = ["log_every=10", "sample_every=100", "monitor_every=100", "keep_checkpoints=3"]


class Failure(Exception):
    pass


def train_cmd(run: Path, args: argparse.Namespace, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "ctrlgen", "train"]
    if resume:
        return [*base, "--resume", str(run), "--no-progress"]
    net = [f"net.g_width={args.width}", f"net.d_width={args.width}", f"checkpoint_every={args.checkpoint_every}"]
    sets = [a for s in [*RUN, *net] for a in ("--set", s)]
    return [*base, args.recipe, "--steps", str(args.steps), "--seed", str(args.seed), "-o", str(run), "--no-progress", *sets]


def writing_checkpoint(run: Path) -> str | None:
    """The temporary file of a checkpoint being written, if any."""
    try:
        return next((n for n in os.listdir(run / "checkpoints") if n.startswith(".") and n.endswith(".tmp")), None)
    except FileNotFoundError:
        return None


def started(run: Path, since: float) -> bool:
    try:
        return (run / "config.json").stat().st_mtime >= since
    except FileNotFoundError:
        return False


def kill_once(run: Path, args: argparse.Namespace, rng: random.Random, mode: str, log) -> tuple[str, float]:
    """Start training, SIGKILL it per ``mode`` ('checkpoint' or 'random'); returns (what it hit, seconds alive)."""
    resume = (run / "config.json").is_file()
    t0 = time.time()
    proc = subprocess.Popen(train_cmd(run, args, resume), stdout=log, stderr=log, start_new_session=True)
    deadline = t0 + args.timeout
    delay = rng.uniform(0.0, args.window)  # random: this long after training started
    skip, seen = rng.randint(0, 2), set()  # checkpoint: let a few writes finish first, so the run moves on
    training_since, hit = None, "random"
    while time.time() < deadline and proc.poll() is None:
        if mode == "checkpoint" and (tmp := writing_checkpoint(run)):
            seen.add(tmp)
            if len(seen) > skip:
                hit = "checkpoint write"
                break
        if training_since is None and started(run, t0 - 1):
            training_since = time.time()
        if mode == "random" and training_since is not None and time.time() > training_since + delay:
            break
        if mode == "random" and training_since is None and time.time() > t0 + 30 + delay:
            hit = "start-up"
            break
        time.sleep(0.0005 if mode == "checkpoint" else 0.01)
    if proc.poll() is not None:
        raise Failure(f"the training process ended by itself (exit {proc.returncode}) before it was killed; use more --steps")
    if mode == "checkpoint" and hit != "checkpoint write":
        hit = "random (no checkpoint write seen)"
    proc.kill()  # SIGKILL: no handler runs, nothing is flushed
    proc.wait()
    return hit, time.time() - t0


def check_run(run: Path, first_config: bytes | None, last_step: int) -> tuple[bytes | None, int, dict]:
    """The checks after a kill; returns (config bytes, newest checkpoint step, facts)."""
    from ctrlgen import checkpoint as ckpt_io
    from ctrlgen.runtime import Runtime

    facts = {"cut_lines": 0, "temps": 0}
    cfg_path = run / "config.json"
    if not cfg_path.is_file():
        if last_step > 0:
            raise Failure("config.json vanished")
        return first_config, 0, facts
    raw = cfg_path.read_bytes()
    json.loads(raw)  # raises on a damaged file
    if first_config is not None and raw != first_config:
        raise Failure("config.json changed")
    metrics = run / "metrics.jsonl"
    lines = metrics.read_text(encoding="utf-8").splitlines() if metrics.is_file() else []
    for i, line in enumerate(lines):
        try:
            json.loads(line)
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise Failure(f"metrics.jsonl line {i + 1} of {len(lines)} is damaged and not the last") from None
            facts["cut_lines"] += 1
    folder = run / "checkpoints"
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    facts["temps"] = sum(1 for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.is_dir() else 0
    for f in files:
        ckpt_io.load(f)  # every checkpoint on disk loads
    newest = ckpt_io.newest(run)
    if ckpt_io.list_checkpoints(run) and newest is None:
        raise Failure("checkpoints exist but none loads")
    step = ckpt_io.load(newest).step if newest is not None else 0
    if step < last_step:
        raise Failure(f"the newest checkpoint went back from step {last_step} to {step}")
    if newest is not None:
        samples, _ = Runtime.from_file(run).generate(64, seed=0)
        if not np.isfinite(samples).all():
            raise Failure("the newest checkpoint gives non-finite samples")
    return raw, step, facts


def final_state(run: Path) -> dict:
    from ctrlgen import checkpoint as ckpt_io

    ck = ckpt_io.load(run)
    return {"step": ck.step, "tensors": {k: v for k, v in ck.tensors.items() if k.split(".")[0] in ("G", "D", "ema", "opt_g", "opt_d")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--recipe", default="ring8")
    ap.add_argument("--steps", type=int, default=600, help="total steps of the run (enough that no process finishes before its kill)")
    ap.add_argument("--checkpoint-every", type=int, default=20)
    ap.add_argument("--width", type=int, default=256, help="MLP width (256: a 3 MB checkpoint, milliseconds to write)")
    ap.add_argument("--window", type=float, default=6.0, help="random kills come up to this many seconds after training starts")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a moment to kill")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true", help="skip the uninterrupted run that the final weights are compared with")
    ap.add_argument("--dir", type=Path, default=None, help="where the runs go (default: a temporary folder, deleted)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = args.dir or Path(tempfile.mkdtemp(prefix="ctrlgen-crash-"))
    run = root / "run"
    failures, hits = 0, []
    t_start = time.time()
    with open(root / "train.log", "ab") as log:
        config, step = None, 0
        for i in range(args.kills):
            mode = "checkpoint" if i % 2 else "random"
            try:
                hit, alive = kill_once(run, args, rng, mode, log)
                config, new_step, facts = check_run(run, config, step)
                hits.append(hit)
                print(f"kill {i + 1:2d}: {hit:<18} after {alive:5.1f} s; newest checkpoint step {new_step:5d} (was {step}); "
                      f"temp files left {facts['temps']}, cut metric lines {facts['cut_lines']}: ok", flush=True)
                step = new_step
            except Failure as e:
                failures += 1
                print(f"kill {i + 1:2d}: FAILED: {e}", flush=True)
            except Exception as e:  # noqa: BLE001 - a damaged file raises anything; report it as a failure
                failures += 1
                print(f"kill {i + 1:2d}: FAILED: {type(e).__name__}: {str(e)[:200]}", flush=True)
        done = subprocess.run(train_cmd(run, args, resume=(run / "config.json").is_file()), capture_output=True, text=True)
    if done.returncode != 0 or f"done at step {args.steps}/{args.steps}" not in done.stdout:
        failures += 1
        print(f"final resume: FAILED (exit {done.returncode}): {done.stdout[-300:]} {done.stderr[-300:]}")
    else:
        steps = [json.loads(s)["step"] for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip() and "event" not in s]
        temps = [p for p in run.rglob("*.tmp")]
        problems = []
        if steps != sorted(set(steps)) or steps[-1] != args.steps:
            problems.append("metrics.jsonl steps are not increasing up to the end")
        if temps:
            problems.append(f"{len(temps)} temporary files left")
        if not args.no_reference:
            ref = root / "reference"
            subprocess.run(train_cmd(ref, args, resume=False), capture_output=True, check=True)
            a, b = final_state(run), final_state(ref)
            same = a["step"] == b["step"] and a["tensors"].keys() == b["tensors"].keys() and all(
                (a["tensors"][k] == b["tensors"][k]).all() for k in a["tensors"])
            if not same:
                problems.append("final weights differ from an uninterrupted run")
        if problems:
            failures += 1
            print(f"final resume: FAILED: {'; '.join(problems)}")
        else:
            print(f"final resume: done at step {args.steps}; metrics cover every logged step; no temporary files left"
                  + ("" if args.no_reference else "; weights and optimizer state identical to an uninterrupted run"))
    during = sum(h == "checkpoint write" for h in hits)
    print(f"{'FAILED' if failures else 'OK'}: {args.kills} SIGKILLs ({during} during a checkpoint write), {failures} failures, "
          f"{time.time() - t_start:.0f} s")
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
