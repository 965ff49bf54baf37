"""The web UI in a real browser: Debian chromium driven by playwright."""

import numpy as np
import pytest
from ui_browser import CHROMIUM, drive

from conftest import needs_fashion

pytestmark = [
    pytest.mark.browser,
    needs_fashion,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),  # gradio's queue vs pandas 3, not ours
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install chromium (scripts/install.sh --test does)"),
]


def test_change_slider_and_label_then_generate_changes_the_image(tiny_models, tmp_path):
    from ui_server import serving

    with serving([tiny_models["cgan"], tiny_models["infogan"]]) as (ex, url):
        res = drive(url, tmp_path, label="Trouser", truncation="0.6")
        want = ex.generate("cgan", 40, 0, "Trouser", 0.6)[0]  # what the page should now show
    before, after = res["before"], res["after"]  # a column per class (label "all"), then 40 trousers
    h, w = min(before.shape[0], after.shape[0]), min(before.shape[1], after.shape[1])
    changed = np.mean(before[:h, :w].astype(int) != after[:h, :w].astype(int))
    assert changed > 0.05, f"only {changed:.1%} of the pixels changed"
    assert np.array_equal(after.reshape(want.shape), want)  # exactly the picture for label Trouser, truncation 0.6
    for shot in res["screenshots"].values():
        assert shot.stat().st_size > 5_000
