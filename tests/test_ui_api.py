"""The web UI served on 127.0.0.1 and driven through gradio_client's named endpoints."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import needs_fashion
from ctrlgen.errors import CtrlgenError
from ctrlgen.train.config import load_config

# gradio's queue statistics use pandas options that pandas 3 deprecates; not ours to fix
GRADIO_PANDAS = [pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"), pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]
pytestmark = [needs_fashion, *GRADIO_PANDAS]
LIMITS = {"max_samples": 64, "max_frames": 24, "concurrency": 2, "queue_size": 16}


@pytest.fixture(scope="module")
def ui(tiny_models):
    from gradio_client import Client
    from ui_server import serving

    from ctrlgen.serve.app import Limits

    models = [tiny_models[k] for k in ("cgan", "infogan", "ring8")]
    with serving(models, Limits(**LIMITS)) as (ex, url):
        yield ex, Client(url, verbose=False)


NOISE_DIM = load_config("fashion-cgan").noise_dim  # the tiny "cgan" model is trained by this recipe

def app_error(client, fragment, **kw):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(**kw)
    assert fragment in str(info.value), str(info.value)
    assert "Traceback" not in str(info.value)


def test_named_endpoints_and_served_models(ui):
    ex, client = ui
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(api) == {"/models", "/card", "/generate", "/sweep", "/interpolate", "/compare"}
    names = [p["parameter_name"] for p in api["/generate"]["parameters"]]
    assert names == ["model", "n", "seed", "label", "truncation", "codes"]
    returns = {k: [r["label"] for r in v["returns"]] for k, v in api.items()}
    assert returns["/generate"] == ["image", "npz", "note"] and returns["/sweep"] == ["image", "note"]
    assert returns["/interpolate"] == ["gif", "note"] and returns["/compare"] == ["image_a", "image_b", "note"]
    assert returns["/card"] == ["card"] and returns["/models"] == ["models"]
    params = {p["parameter_name"]: p for p in api["/sweep"]["parameters"]}
    assert params["model"]["type"]["enum"] == ["cgan", "infogan", "ring8"]
    assert params["factor"]["type"]["enum"] == ["label", "c", "u0", "u1"]  # image models only
    assert params["label"]["type"]["enum"][:4] == ["random", "all", "T-shirt/top", "Trouser"]
    assert client.predict(api_name="/models") == ["cgan", "infogan", "ring8"]
    card = client.predict("cgan", api_name="/card")
    assert "T\\-shirt/top" in card and "fashion\\-cgan" in card and "| field | value |" in card  # tables of escaped text


def test_generate_image_npz_and_note(ui):
    _, client = ui
    img, npz, note = client.predict(model="cgan", n=20, seed=3, label="Trouser", api_name="/generate")
    assert "20 samples from cgan" in note
    pic = np.asarray(Image.open(img))
    assert pic.shape[:2] == (3 * (4 * 30 + 2), 3 * (5 * 30 + 2))  # 4 rows of 5, upscaled x3 to about 512 px
    d = np.load(npz)
    assert d["sample"].shape == (20, 1, 28, 28) and (d["label"] == 1).all() and d["z"].shape == (20, NOISE_DIM)
    again = client.predict(model="cgan", n=20, seed=3, label="Trouser", api_name="/generate")[0]
    other = client.predict(model="cgan", n=20, seed=4, label="Trouser", api_name="/generate")[0]
    assert np.array_equal(np.asarray(Image.open(again)), pic) and not np.array_equal(np.asarray(Image.open(other)), pic)
    d = np.load(client.predict(model="infogan", n=6, codes="c=3, u0=0.5", api_name="/generate")[1])
    assert (d["code_cat"][:, 0] == 3).all() and np.allclose(d["code_cont"][:, 0], 0.5)
    d = np.load(client.predict(model="cgan", n=20, label="all", api_name="/generate")[1])
    assert d["label"].tolist() == list(range(10)) * 2  # a column per class
    d = np.load(client.predict(model="cgan", n=4, label="1", api_name="/generate")[1])  # an index is a label too
    assert (d["label"] == 1).all()
    img, npz, note = client.predict(model="ring8", n=20000, api_name="/generate")  # the 2D limit, not the image one
    assert "20000 points" in note and np.load(npz)["sample"].shape == (20000, 2)


def test_sweep_interpolate_compare(ui):
    _, client = ui
    img, note = client.predict(model="infogan", factor="u0", steps=4, rows=2, captions=False, api_name="/sweep")
    pic = np.asarray(Image.open(img))
    assert pic.shape[1] / pic.shape[0] == pytest.approx((4 * 30 + 2) / (2 * 30 + 2)) and "across: u0 (4 values)" in note
    img, note = client.predict(model="cgan", factor="label", label="all", rows=2, api_name="/sweep")  # the page's defaults
    assert "across: label (10 values)" in note
    img, note = client.predict(model="infogan", factor="u0", steps=3, label="all", api_name="/sweep")  # unconditional: no label
    assert "across: u0 (3 values)" in note
    gif, note = client.predict(model="cgan", frames=6, keyframes=2, labels="Trouser,Bag", api_name="/interpolate")
    assert Image.open(gif).n_frames == 6 and "labels Trouser, Bag along the walk" in note
    gif, note = client.predict(model="cgan", frames=4, keyframes=2, label="Bag", walks=3, fps=10, api_name="/interpolate")
    assert Image.open(gif).n_frames == 4 and Image.open(gif).info["duration"] == 100 and "3 walks" in note and "label Bag" in note
    gif = client.predict(model="infogan", frames=4, keyframes=1, animate="u0", codes="c=2", api_name="/interpolate")[0]
    assert Image.open(gif).n_frames == 4
    a, b, note = client.predict(model_a="cgan", model_b="infogan", n=4, api_name="/compare")
    assert NOISE_DIM == 62 and Image.open(a).size and Image.open(b).size  # both recipes take InfoGAN's 62 noise dims
    assert "Same z: both models take 62-dim normal noise, seed 0." in note
    a, b, note = client.predict(model_a="cgan", model_b="ring8", n=4, api_name="/compare")
    assert Image.open(a).size and Image.open(b).size and "Different noise (62-dim normal vs 2-dim normal): same seed, not the same z." in note


@pytest.mark.parametrize(
    "request_, fragment",
    [
        ({"api_name": "/generate", "model": "cgan", "n": 65}, "samples = 65 is over the limit of 64"),
        ({"api_name": "/generate", "model": "cgan", "n": 0}, "below 1"),
        ({"api_name": "/generate", "model": "/etc/passwd"}, "is not served here; choose one of: cgan, infogan, ring8"),
        ({"api_name": "/generate", "model": "cgan", "label": "Hat"}, "label 'Hat' is unknown"),
        ({"api_name": "/generate", "model": "infogan", "codes": "u0=7"}, "outside its range [-1, 1]"),
        ({"api_name": "/generate", "model": "infogan", "codes": "q=1"}, "code 'q' is unknown"),
        ({"api_name": "/generate", "model": "cgan", "truncation": -1}, "truncation must be in (0, 10]"),
        ({"api_name": "/sweep", "model": "infogan", "factor": "u0", "steps": 16, "rows": 8}, "over the limit of 64"),
        ({"api_name": "/sweep", "model": "ring8", "factor": "label"}, "image model"),
        ({"api_name": "/interpolate", "model": "cgan", "frames": 500}, "frames = 500 is over the limit of 24"),
        ({"api_name": "/interpolate", "model": "cgan", "frames": 8, "fps": 0}, "frames per second = 0 is below 1"),
        ({"api_name": "/sweep", "model": "cgan", "factor": "q"}, "'q' is not something this model can sweep; it can sweep: label"),
    ],
)
def test_bad_requests_get_one_line_errors(ui, request_, fragment):
    _, client = ui
    app_error(client, fragment, **request_)


def test_over_limit_requests_are_refused_while_others_are_served(ui):
    _, client = ui
    from gradio_client.exceptions import AppError

    jobs = [client.submit(model="cgan", n=n, seed=i, api_name="/generate") for i, n in enumerate([8, 1000, 8, 8, 5000, 8])]
    ok, refused = 0, []
    for job in jobs:
        try:
            note = job.result(timeout=120)[2]
            ok += "8 samples" in note
        except AppError as e:
            refused.append(str(e))
    assert ok == 4 and len(refused) == 2 and all("over the limit of 64" in r for r in refused)
    with ThreadPoolExecutor(4) as pool:  # and the server still answers everyone
        notes = list(pool.map(lambda s: client.predict(model="ring8", n=50, seed=s, api_name="/generate")[2], range(4)))
    assert all("50 points from ring8" in n for n in notes)


def test_serves_only_files_it_wrote(ui, tiny_models):
    import httpx

    ex, client = ui
    client.predict(model="ring8", n=10, api_name="/generate")
    written = sorted(ex.store.root.rglob("*.png"))
    assert written
    for path in (tiny_models["cgan"], written[0], "/etc/passwd"):
        r = httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={path}")
        assert r.status_code in (403, 404), (path, r.status_code)


def test_no_model_is_loaded_before_a_request_and_importing_starts_nothing(tiny_models):
    code = (
        "import os, sys; import ctrlgen.serve.app as a; "
        "print(os.environ['GRADIO_ANALYTICS_ENABLED'], 'onnxruntime' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]
    from ctrlgen.serve.app import make_explorer

    ex = make_explorer([tiny_models["ring8"]], with_shipped=False)
    assert ex.registry.names == ["ring8"] and not ex.registry._loaded
    ex.store.cleanup()
    with pytest.raises(CtrlgenError, match="no models to serve"):
        make_explorer([], with_shipped=False)
