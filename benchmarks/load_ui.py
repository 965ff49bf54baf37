"""Load on the web UI: many concurrent gradio_client clients against ``ctrlgen ui`` on 127.0.0.1.

    .venv/bin/python benchmarks/load_ui.py                       # 200 requests, 20 clients, the shipped models

Starts the real ``ctrlgen ui`` (``python -m ctrlgen ui --port FREE``) in a
child process, waits until it serves, then ``--clients`` threads, each with
its own ``gradio_client.Client``, send ``--requests`` requests between them:
generate (fashion-cgan, a label or all or random, 16 to 256 samples; ring8,
2,000 points), sweep (fashion-cgan, the label x 4 z), and ``--over`` of them
over the batch limit (1,000 samples; a 64-row sweep).  Valid requests must
all succeed; over-limit ones must be refused with the one-line limit message
while the others are served.  Prints a Markdown table of latencies (p50, p95,
max per kind), the CPU model and the server's peak resident memory (VmHWM), and exits 1 on
any unexpected outcome.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Request:
    kind: str  # a row of the table
    kwargs: dict
    refuse: str | None = None  # the fragment of the refusal expected, for over-limit requests


@dataclass
class Outcome:
    kind: str
    seconds: float
    ok: bool  # succeeded, or was refused as expected
    note: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_requests(n: int, over: int, max_samples: int, seed: int = 0, image: str = "fashion-cgan", points: str = "ring8") -> list[Request]:
    """A shuffled mix; ``over`` of them ask for more than the limit.  ``image`` is a Fashion-MNIST cGAN."""
    rng = random.Random(seed)
    labels = ["T-shirt/top", "Trouser", "Sneaker", "Bag", "all", "random"]
    valid: list[Request] = []
    for i in range(n - over):
        r = rng.random()
        if r < 0.55:
            count = rng.choice(sorted({c for c in (16, 64, 100) if c < max_samples} | {max_samples}))
            valid.append(Request(f"generate {image} (n ≤ {max_samples})",
                                 dict(model=image, n=count, seed=i, label=rng.choice(labels), api_name="/generate")))
        elif r < 0.75:
            valid.append(Request(f"generate {points} (2,000 points)", dict(model=points, n=2000, seed=i, api_name="/generate")))
        else:
            valid.append(Request(f"sweep {image} (label x 4 z)", dict(model=image, factor="label", rows=4, seed=i, api_name="/sweep")))
    refused = [
        Request("over the limit (refused)", dict(model=image, n=1000, seed=i, api_name="/generate"), f"samples = 1000 is over the limit of {max_samples}")
        if i % 2 == 0 else
        Request("over the limit (refused)", dict(model=image, factor="label", rows=64, seed=i, api_name="/sweep"), f"over the limit of {max_samples}")
        for i in range(over)
    ]
    reqs = valid + refused
    rng.shuffle(reqs)
    return reqs


def run_load(url: str, requests: list[Request], clients: int, download_dir: str) -> tuple[list[Outcome], float]:
    """Send ``requests`` from ``clients`` threads, each with its own Client; returns the outcomes and the wall time."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    todo: queue.Queue[Request] = queue.Queue()
    for r in requests:
        todo.put(r)
    out: list[Outcome] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def worker() -> None:
        client = Client(url, verbose=False, download_files=download_dir)
        ready.wait()
        while True:
            try:
                r = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.perf_counter()
            try:
                result = client.predict(**r.kwargs)
                ok, note = r.refuse is None and bool(result), "served" if r.refuse is None else "served but should be refused"
            except AppError as e:
                msg = str(e)
                ok = r.refuse is not None and r.refuse in msg and "\n" not in msg.strip()
                note = msg.strip()[:160]
            except Exception as e:  # noqa: BLE001 - anything else is an error to report
                ok, note = False, f"{type(e).__name__}: {str(e)[:160]}"
            with lock:
                out.append(Outcome(r.kind, time.perf_counter() - t0, ok, note))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    ready.wait()  # every client connected: the clock starts with all of them sending
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return out, time.perf_counter() - t0


def table(outcomes: list[Outcome], wall: float) -> str:
    rows = ["| requests | n | ok | p50 (s) | p95 (s) | max (s) |", "|---|---:|---:|---:|---:|---:|"]
    kinds = sorted({o.kind for o in outcomes}) + ["all"]
    for kind in kinds:
        sel = [o for o in outcomes if kind in ("all", o.kind)]
        lat = np.array([o.seconds for o in sel])
        rows.append(f"| {kind} | {len(sel)} | {sum(o.ok for o in sel)} | {np.percentile(lat, 50):.2f} | "
                    f"{np.percentile(lat, 95):.2f} | {lat.max():.2f} |")
    rows.append(f"\n{len(outcomes)} requests in {wall:.1f} s ({len(outcomes) / wall:.1f} requests/s)")
    return "\n".join(rows)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def vm_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def start_ui(port: int, models: list[str], extra: list[str], log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ctrlgen", "ui", *models, "--port", str(port), *extra]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_serving(proc: subprocess.Popen, url: str, timeout: float) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ctrlgen ui exited with {proc.returncode} before serving")
        try:
            if httpx.get(url + "config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"ctrlgen ui did not serve {url} within {timeout:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--over", type=int, default=20, help="requests over the batch limit (must be refused)")
    ap.add_argument("--max-samples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("models", nargs="*", help="extra models for ctrlgen ui (the shipped ones are always served)")
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    downloads = tempfile.mkdtemp(prefix="ctrlgen-load-")
    log_path = Path(downloads) / "ui.log"
    with open(log_path, "wb") as log:
        proc = start_ui(port, args.models, ["--max-samples", str(args.max_samples)], log)
        try:
            wait_serving(proc, url, timeout=180)
            rss_idle = vm_kb(proc.pid, "VmRSS")
            reqs = make_requests(args.requests, args.over, args.max_samples, args.seed)
            outcomes, wall = run_load(url, reqs, args.clients, downloads)
            peak = vm_kb(proc.pid, "VmHWM")
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(f"ctrlgen ui on {url}: {args.clients} concurrent gradio_client clients, {args.requests} requests "
          f"({args.over} over the limit of {args.max_samples}), {os.cpu_count()} CPU cores ({cpu_model()})\n")
    print(table(outcomes, wall))
    print(f"server resident memory: {rss_idle / 1024:.0f} MB serving, idle; peak {peak / 1024:.0f} MB (VmHWM)")
    bad = [o for o in outcomes if not o.ok]
    for o in bad[:10]:
        print(f"UNEXPECTED: {o.kind}: {o.note}")
    ok = not bad and len(outcomes) == args.requests
    print(f"{'OK' if ok else 'FAILED'}: {sum(o.ok for o in outcomes)} of {args.requests} as expected; "
          f"{sum(o.ok and o.kind.startswith('over') for o in outcomes)} refused with the limit message")
    if ok:
        shutil.rmtree(downloads, ignore_errors=True)
    else:
        print(f"server log: {log_path}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
