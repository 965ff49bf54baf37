import gzip

import numpy as np
import pytest
from PIL import Image

from conftest import needs_fashion
from ctrlgen.data import (
    FASHION_MNIST_LABELS,
    load_idx_split,
    load_image_folder,
    load_images,
    mixture,
    read_idx,
)
from ctrlgen.errors import CtrlgenError


@needs_fashion
def test_idx_reader_on_the_real_files():
    train = load_idx_split(None, "train")
    test = load_idx_split(None, "test")
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.class_names == FASHION_MNIST_LABELS
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert 0 < train.images.mean() < 255


def write_idx(path, arr, magic_type=0x08):
    header = bytes([0, 0, magic_type, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def test_idx_reader_checks_magic_and_size(tmp_path):
    arr = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    good = tmp_path / "a-idx3-ubyte"
    write_idx(good, arr)
    np.testing.assert_array_equal(read_idx(good), arr)
    gz = tmp_path / "b.gz"
    gz.write_bytes(gzip.compress(good.read_bytes()))
    np.testing.assert_array_equal(read_idx(gz), arr)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x03" + good.read_bytes()[4:])
    with pytest.raises(CtrlgenError, match="magic"):
        read_idx(bad)
    cut = tmp_path / "cut"
    cut.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(CtrlgenError, match="truncated"):
        read_idx(cut)


def test_idx_folder_with_mismatched_counts(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(CtrlgenError, match="5 images but .* 4 labels"):
        load_idx_split(tmp_path, "train")


def test_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(CtrlgenError, match="does not exist"):
        load_idx_split(tmp_path / "nope", "train")
    (tmp_path / "a.png").write_bytes(b"x")  # a file where a folder belongs is named as such
    with pytest.raises(CtrlgenError, match="is a file, not a folder"):
        load_idx_split(tmp_path / "a.png", "train")
    with pytest.raises(CtrlgenError, match="is a file, not a folder"):
        load_image_folder(tmp_path / "a.png", 28, 1)


def test_image_folder_is_resized_and_labelled(tmp_path):
    for k, cls in enumerate(["cat", "dog"]):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (40, 30), (k * 200, i * 50, 10)).save(tmp_path / cls / f"{i}.png")
    data = load_image_folder(tmp_path, 32, 1)
    assert data.images.shape == (6, 1, 32, 32)
    assert data.class_names == ("cat", "dog")
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    rgb = load_images(str(tmp_path), "train", 28, 3)
    assert rgb.images.shape == (6, 3, 28, 28)


def test_image_folder_with_a_non_image(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "a" / "ok.png")
    (tmp_path / "a" / "notes.txt").write_text("hi")
    with pytest.raises(CtrlgenError, match="not an image"):
        load_image_folder(tmp_path, 28, 1)
    (tmp_path / "a" / "notes.txt").unlink()
    (tmp_path / "a" / "fake.png").write_bytes(b"not a png")
    with pytest.raises(CtrlgenError, match="cannot be read"):
        load_image_folder(tmp_path, 28, 1)


def test_mixtures_match_metrics_md():
    ring = mixture("ring8")
    assert ring.means.shape == (8, 2) and ring.std == 0.01
    np.testing.assert_allclose(np.linalg.norm(ring.means, axis=1), 1.0)
    grid = mixture("grid25")
    assert grid.means.shape == (25, 2) and grid.std == 0.05
    assert sorted(set(grid.means[:, 0])) == [-4, -2, 0, 2, 4]
    x, k = ring.sample(10000, np.random.default_rng(0))
    assert (x - ring.means[k]).std() == pytest.approx(0.01, rel=0.05)
