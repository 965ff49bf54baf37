"""Which runtimes run the shipped models, and how close they come to ONNX Runtime in Python.

    .venv/bin/python scripts/compat_table.py            # the table the README quotes
    .venv/bin/python scripts/compat_table.py --only reference,triton

For every generator in models/ (the evaluator classifier is skipped: it is a
classifier the metrics use, not a deployable generator) it feeds the same inputs
(``ctrlgen.webpage.web_inputs``, the seeded generator the web page uses) to

* ONNX Runtime in Python (the reference every other column is compared with; its own column
  runs the same inputs again in batches of 5);
* onnxruntime-node, through ``node`` (``npm install --prefix .web-deps onnxruntime-node``);
* onnxruntime-web (wasm) in Debian chromium, through the page ``ctrlgen export --web``
  writes (the page draws its own inputs from the seed; they are checked equal first);
* OpenVINO (``ctrlgen[openvino]``), as ``--runtime openvino`` runs it (fp32 files with the
  f32 precision hint), and with OpenVINO's own default hint (bf16 on CPUs with AVX-512 BF16 or AMX);
* ``onnx.reference.ReferenceEvaluator`` (numpy, opset-exact);
* Triton: ``config.pbtxt`` from ``ctrlgen export --triton``, parsed against Triton's own
  ``ModelConfig`` proto (``model_config_pb2`` from tritonclient) and checked against the graph;
  no server is run,

and prints max |difference| to ONNX Runtime per model and runtime, then the time
per batch of ONNX Runtime and OpenVINO side by side.  A runtime that is not
installed shows why in its cells.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # web_browser.py, ui_browser.py: the browser helpers the tests use

from ctrlgen.models import models_dir, shipped  # noqa: E402
from ctrlgen.runtime import Runtime  # noqa: E402
from ctrlgen.webpage import web_inputs  # noqa: E402

NODE_MODULES = ROOT / ".web-deps" / "node_modules"
COLUMNS = ("ort", "node", "web", "openvino", "openvino-default", "reference", "triton")
TITLES = {"ort": "ONNX Runtime (Python)", "node": "onnxruntime-node", "web": "onnxruntime-web (chromium)",
          "openvino": "OpenVINO (f32 hint)", "openvino-default": "OpenVINO (its default hint)",
          "reference": "onnx.reference", "triton": "Triton config"}

NODE_RUNNER = r"""
const ort = require(process.argv[2]);
const fs = require("fs");
(async () => {
  const jobs = JSON.parse(fs.readFileSync(process.argv[3], "utf8")), out = {};
  for (const job of jobs) {
    const session = await ort.InferenceSession.create(job.path);
    const feeds = {};
    for (const [name, t] of Object.entries(job.inputs)) {
      const data = t.type === "int64" ? BigInt64Array.from(t.data, BigInt) : Float32Array.from(t.data);
      feeds[name] = new ort.Tensor(t.type, data, t.dims);
    }
    const { sample } = await session.run(feeds);
    out[job.path] = Array.from(sample.data);
  }
  fs.writeFileSync(process.argv[4], JSON.stringify(out));
})().catch((e) => { console.error(String(e)); process.exit(1); });
"""


# --------------------------------------------------------------------------- one function per runtime: {path: output or reason}
def run_node(models: dict[Path, dict], n: int) -> dict[Path, np.ndarray | str]:
    ort_node = NODE_MODULES / "onnxruntime-node"
    if not shutil.which("node"):
        return dict.fromkeys(models, "node not found")
    if not ort_node.is_dir():
        return dict.fromkeys(models, "no onnxruntime-node: npm install --prefix .web-deps onnxruntime-node")
    jobs = [{"path": str(p), "inputs": {k: {"type": "int64" if v.dtype == np.int64 else "float32", "dims": list(v.shape),
                                            "data": v.ravel().tolist()} for k, v in x.items()}} for p, x in models.items()]
    with tempfile.TemporaryDirectory() as tmp:
        runner, job_file, out_file = Path(tmp, "run.js"), Path(tmp, "jobs.json"), Path(tmp, "out.json")
        runner.write_text(NODE_RUNNER)
        job_file.write_text(json.dumps(jobs))
        res = subprocess.run(["node", str(runner), str(ort_node), str(job_file), str(out_file)], capture_output=True, text=True, timeout=300)
        if res.returncode:
            return dict.fromkeys(models, f"node failed: {res.stderr.strip()[:80]}")
        out = json.loads(out_file.read_text())
    return {p: np.asarray(out[str(p)], np.float32) for p in models}


def run_web(models: dict[Path, dict], n: int, seed: int) -> dict[Path, np.ndarray | str]:
    from ui_browser import CHROMIUM, launch
    from web_browser import ORT_DIST, ORT_URL, generate, open_page, serving

    from ctrlgen.webpage import write_page

    if not CHROMIUM.exists():
        return dict.fromkeys(models, f"no {CHROMIUM}")
    if not (ORT_DIST / "ort.min.js").exists():
        return dict.fromkeys(models, "no onnxruntime-web: scripts/install.sh --test")
    from playwright.sync_api import sync_playwright

    out: dict[Path, np.ndarray | str] = {}
    with sync_playwright() as p, tempfile.TemporaryDirectory() as tmp:
        browser = launch(p)
        try:
            for path, want in models.items():
                folder = Path(tmp, path.stem)
                write_page(path, folder, ort_url=ORT_URL)
                with serving(folder) as url:
                    page = open_page(browser, url + "?n=1")
                    got_inputs, got = generate(page, n, seed)
                    page.close()
                same = list(got_inputs) == list(want) and all(np.array_equal(got_inputs[k], want[k]) for k in want)
                out[path] = got if same else "page drew other inputs than web_inputs"
        finally:
            browser.close()
    return out


def run_openvino(models: dict[Path, dict], hint: str | None = None) -> dict[Path, np.ndarray | str]:
    """As ``--runtime openvino`` runs them (the f32 hint), or under another precision hint."""
    if importlib.util.find_spec("openvino") is None:
        return dict.fromkeys(models, "not installed: pip install 'ctrlgen[openvino]'")
    from ctrlgen.runtime_openvino import OpenVinoRuntime

    return {p: OpenVinoRuntime(p, precision_hint=hint)(**x) for p, x in models.items()}


def run_reference(models: dict[Path, dict]) -> dict[Path, np.ndarray | str]:
    return {p: reference_output(p, x) for p, x in models.items()}


def reference_output(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    (out,) = ReferenceEvaluator(str(path)).run(["sample"], inputs)
    return out


def model_config_class():
    """Triton's ModelConfig message from tritonclient's generated model_config_pb2 (loaded alone: no grpc needed), or None."""
    spec = importlib.util.find_spec("tritonclient")
    if spec is None or not spec.submodule_search_locations:
        return None
    file = Path(list(spec.submodule_search_locations)[0]) / "grpc" / "model_config_pb2.py"
    if not file.exists():
        return None
    name = "ctrlgen_triton_model_config_pb2"
    if name not in sys.modules:
        mod_spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name].ModelConfig


def triton_check(path: Path, repo: Path) -> str:
    """Write the Triton entry, parse its config.pbtxt as a ModelConfig, and check it names the graph's I/O: 'ok' or the problem."""
    from google.protobuf import text_format

    from ctrlgen.triton import write_repository

    ModelConfig = model_config_class()
    if ModelConfig is None:
        return "no tritonclient: pip install tritonclient"
    rep = write_repository(path, repo, kind="cpu", force=True)
    config = text_format.Parse((rep.model_dir / "config.pbtxt").read_text(), ModelConfig())
    rt = Runtime.from_file(rep.model_dir / "1" / "model.onnx")
    names = [i.name for i in config.input]
    if names != list(rt.spec.input_names) or [o.name for o in config.output][:1] != ["sample"]:
        return f"config names {names} differ from the graph's {list(rt.spec.input_names)}"
    if config.platform != "onnxruntime_onnx" or config.max_batch_size < 1:
        return "config is not an onnxruntime_onnx model with a batch axis"
    return "ok"


# --------------------------------------------------------------------------- the report
def versions() -> list[str]:
    import onnx
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in flags]
    rows = [f"CPU: {cpu}, {os.cpu_count()} cores{', ' + ' '.join(bf16) if bf16 else ''}",
            f"Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, onnx {onnx.__version__}"]
    with contextlib.suppress(ImportError):
        import openvino

        rows[-1] += f", openvino {openvino.__version__.split('-')[0]}"
    with contextlib.suppress(ImportError, AttributeError):
        from importlib.metadata import version

        rows[-1] += f", tritonclient {version('tritonclient')}"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else "absent"
    npm = []
    for pkg in ("onnxruntime-node", "onnxruntime-web"):
        meta = NODE_MODULES / pkg / "package.json"
        npm.append(f"{pkg} {json.loads(meta.read_text())['version'] if meta.exists() else 'absent'}")
    chromium = subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip() if Path("/usr/bin/chromium").exists() else "chromium absent"
    rows.append(f"node {node}, {', '.join(npm)}; {chromium}")
    return rows


def cell(got: np.ndarray | str, ref: np.ndarray) -> str:
    if isinstance(got, str):
        return got
    diff = np.abs(np.asarray(got, np.float32).reshape(ref.shape) - ref)
    text = f"{diff.max():.1e}"
    return text if diff.max() < 1e-3 else f"{text} (mean {diff.mean():.0e}, {(diff > 1e-3).mean():.2%} > 1e-3)"


def bench(path: Path, x_batch: int, reps: int) -> tuple[float, float | None]:
    """Median ms per batch of ``x_batch`` samples: ONNX Runtime, OpenVINO (None when absent)."""
    rt = Runtime.from_file(path)
    x = web_inputs(rt.spec, x_batch, 1)
    runners = [rt]
    if importlib.util.find_spec("openvino") is not None:
        from ctrlgen.runtime_openvino import OpenVinoRuntime

        runners.append(OpenVinoRuntime(path))
    out: list[float | None] = []
    for r in runners:
        r(**x)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            r(**x)
            times.append((time.perf_counter() - t0) * 1e3)
        out.append(statistics.median(times))
    return out[0], out[1] if len(out) > 1 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=16, help="samples per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=",".join(COLUMNS), help=f"comma-separated subset of {','.join(COLUMNS)}")
    ap.add_argument("--bench-batch", type=int, default=256, help="batch of the timing table (0: no timing)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    cols = [c for c in COLUMNS if c in args.only.split(",")]
    paths = shipped()
    inputs = {p: web_inputs(Runtime.from_file(p).spec, args.n, args.seed) for p in paths}
    refs = {p: Runtime.from_file(p)(**x) for p, x in inputs.items()}
    results: dict[str, dict[Path, np.ndarray | str]] = {}
    t0 = time.perf_counter()
    for c in cols:
        if c == "ort":  # the same inputs again, in batches of 5: batch-independent and repeatable
            results[c] = {p: np.concatenate([Runtime.from_file(p)(**{k: v[i : i + 5] for k, v in x.items()}) for i in range(0, args.n, 5)])
                          for p, x in inputs.items()}
        elif c == "node":
            results[c] = run_node(inputs, args.n)
        elif c == "web":
            results[c] = run_web(inputs, args.n, args.seed)
        elif c == "openvino":
            results[c] = run_openvino(inputs)
        elif c == "openvino-default":
            results[c] = run_openvino(inputs, "default")
        elif c == "reference":
            results[c] = run_reference(inputs)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results[c] = {p: triton_check(p, Path(tmp)) for p in paths}
    for line in versions():
        print(line)
    print(f"\nmax |output - ONNX Runtime (Python)| on {args.n} samples of seed {args.seed} (web_inputs); "
          f"skipped: {', '.join(p.name for p in models_dir().glob('*evaluator*.onnx'))} (a classifier, not a generator)\n")
    print("| model | " + " | ".join(TITLES[c] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for p in paths:
        print(f"| {p.stem} | " + " | ".join(results[c][p] if c == "triton" else cell(results[c][p], refs[p]) for c in cols) + " |")
    print(f"\n({time.perf_counter() - t0:.0f} s)")
    if args.bench_batch:
        print(f"\nms per batch of {args.bench_batch} (median of {args.reps}, all cores), ONNX Runtime vs OpenVINO:\n")
        print("| model | precision | ONNX Runtime | OpenVINO | OpenVINO speed-up |")
        print("|---|---|---|---|---|")
        for p in paths:
            a, b = bench(p, args.bench_batch, args.reps)
            prec = Runtime.from_file(p).precision
            print(f"| {p.stem} | {prec} | {a:.2f} | {'-' if b is None else f'{b:.2f}'} | {'-' if b is None else f'{a / b:.2f}x'} |")


if __name__ == "__main__":
    main()
