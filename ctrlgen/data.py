"""Training data: Fashion-MNIST IDX files, image folders, and the 2D mixtures.

Everything here is numpy: images come back as uint8 arrays (N, C, H, W) with
integer labels and class names; the trainer turns them into one in-memory
tensor.  Bad data gives one line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError

FASHION_MNIST_DIR = Path(os.environ.get("CTRLGEN_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
APT_HINT = "install it with: apt-get install -y dataset-fashion-mnist (or pass --data DIR holding the IDX files)"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class ImageData:
    """Images (N, C, H, W) uint8, labels (N,) int64, and the class names."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def fingerprint(self) -> str:
        """A short content hash (cache key for features of real data)."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.images).tobytes())
        h.update(np.ascontiguousarray(self.labels).tobytes())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------- IDX
def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped), checking its magic number, its header's sizes and its length.

    The file's size and the decompressed size are bounded (ctrlgen/limits.py) before anything is allocated."""
    from ctrlgen.limits import MAX_IDX_BYTES, gunzip_limited, read_limited

    path = Path(path)
    raw = read_limited(path, "an IDX file", MAX_IDX_BYTES)
    if raw[:2] == b"\x1f\x8b":
        raw = gunzip_limited(raw, path, MAX_IDX_BYTES)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise CtrlgenError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()}); point --data at Fashion-MNIST IDX files")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if ndim > 4:
        raise CtrlgenError(f"{path} has {ndim} dimensions in its header (IDX data has at most 4); the file is damaged: copy it again")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CtrlgenError(f"{path} is truncated (header cut short); copy the file again")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    need = math.prod(dims) * dtype.itemsize  # Python ints: no overflow whatever the header says
    if len(raw) - header != need:
        raise CtrlgenError(
            f"{path} holds {len(raw) - header} data bytes but its header says {need}; the file is truncated or damaged: download or copy it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find(folder: Path, names: list[str]) -> Path | None:
    for name in names:
        for cand in (folder / name, folder / (name + ".gz")):
            if cand.is_file():
                return cand
    return None


def _absent(folder: Path) -> str:
    """Why ``folder``, not a directory, cannot be read: a file stands there, or nothing does."""
    return "is a file, not a folder" if folder.exists() else "does not exist"


def load_idx_split(folder: str | os.PathLike | None = None, split: str = "train") -> ImageData:
    """Fashion-MNIST (or any MNIST-layout) IDX files from ``folder`` (default: the Debian package's)."""
    folder = Path(folder) if folder else FASHION_MNIST_DIR
    if not folder.is_dir():
        if folder == FASHION_MNIST_DIR:
            raise CtrlgenError(f"Fashion-MNIST not found at {folder}; {APT_HINT}")
        raise CtrlgenError(f"data folder {folder} {_absent(folder)}; pass --data with a folder of IDX files or class subfolders")
    prefix = "train" if split == "train" else "t10k"
    img = _find(folder, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    lab = _find(folder, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    if img is None or lab is None:
        hint = APT_HINT if folder == FASHION_MNIST_DIR else "the folder needs train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte (optionally .gz)"
        raise CtrlgenError(f"no {split} IDX files in {folder}; {hint}")
    images, labels = read_idx(img), read_idx(lab)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CtrlgenError(f"{img} must hold uint8 images of rank 3, got {images.dtype} rank {images.ndim}")
    if labels.ndim != 1:
        raise CtrlgenError(f"{lab} must hold a rank-1 label vector, got rank {labels.ndim}")
    if len(images) != len(labels):
        raise CtrlgenError(f"{img.name} has {len(images)} images but {lab.name} has {len(labels)} labels; use matching files")
    from ctrlgen.limits import MAX_CLASSES

    if not np.issubdtype(labels.dtype, np.integer):
        raise CtrlgenError(f"{lab} holds {labels.dtype} labels, not integers; use an IDX label file (ubyte)")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= MAX_CLASSES):
        raise CtrlgenError(f"{lab} holds labels in {int(labels.min())}..{int(labels.max())}, outside 0..{MAX_CLASSES - 1} "
                           f"(at most {MAX_CLASSES} classes); use a label file of class indices")
    if len(images) == 0:
        raise CtrlgenError(f"{img} holds no images; use a non-empty IDX file")
    labels = labels.astype(np.int64)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    fashion = n_classes <= len(FASHION_MNIST_LABELS) and "fashion" in str(folder.resolve()).lower()
    names = FASHION_MNIST_LABELS if fashion else tuple(str(i) for i in range(n_classes))
    return ImageData(images[:, None], labels, names, str(folder))


UNLABELLED_DIRS = ("unlabelled", "unlabeled")
"""Subfolder names that hold images without a label (both spellings): not a class.  InfoGAN runs train
on them like any image; a semi-supervised run (``[techniques.semi_supervised]``) picks its labelled
images from the class subfolders only; a class-conditional run refuses them (it needs every label)."""


UNLABELLED = -1
"""The label of an image that has none (``ImageData.labels``; from an ``unlabelled/`` subfolder)."""


def _class_files(folder: Path) -> tuple[list[str], list[list[Path]], list[Path]]:
    """The class subfolders of ``folder`` (sorted), the image files in each, and the images of its
    ``unlabelled/`` subfolder; one line for anything else."""
    if not folder.is_dir():
        raise CtrlgenError(f"image folder {folder} {_absent(folder)}; pass --data with a folder of class subfolders")
    subs = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose_dirs = [name for name in subs if name.lower() in UNLABELLED_DIRS]
    classes = [name for name in subs if name not in loose_dirs]
    if not subs:
        raise CtrlgenError(f"{folder} has no class subfolders; put each class's images in a subfolder of its own")

    def images(sub: str) -> list[Path]:
        return sorted(p for p in (folder / sub).iterdir() if p.is_file() and not p.name.startswith("."))

    files = [images(name) for name in classes]
    loose = [f for name in loose_dirs for f in images(name)]
    for f in (f for group in (*files, loose) for f in group):
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            raise CtrlgenError(f"{f} is not an image (suffix {f.suffix or 'none'}); remove it or use one of {sorted(IMAGE_SUFFIXES)}")
    if not any(files) and not loose:
        raise CtrlgenError(f"{folder} has class subfolders but no images in them; add images")
    empty = [name for name, group in zip(classes, files, strict=True) if not group]
    if empty and any(files):
        more = f" ({len(empty)} subfolders are empty)" if len(empty) > 1 else ""
        raise CtrlgenError(f"class subfolder {folder / empty[0]} has no images{more}; add images to it or remove it "
                           "(a class with no images would be named in the model but never trained)")
    return classes, files, loose


def image_classes(folder: str | os.PathLike) -> list[str]:
    """The class names of a folder of class subfolders (checked as ``load_image_folder`` checks them);
    an ``unlabelled/`` subfolder is not a class."""
    return _class_files(Path(folder))[0]


def _open_image(f: Path, read):
    """``read(image)`` on the opened file ``f``; unreadable files and decompression bombs are one line."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a warning would be a second line
            with Image.open(f) as im:
                return read(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CtrlgenError(f"{f} has too many pixels (over {Image.MAX_IMAGE_PIXELS:,}; a decompression bomb?); remove or shrink it") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise CtrlgenError(f"{f} cannot be read as an image ({type(e).__name__}); remove or replace it") from None


def load_image_folder(folder: str | os.PathLike, size: int, channels: int, unlabelled: bool = False) -> ImageData:
    """One subfolder per class; every image resized (centre crop) to size×size with ``channels`` channels.

    Images in an ``unlabelled/`` subfolder get label -1 (``UNLABELLED``); only with ``unlabelled``
    (runs that do not need every label: InfoGAN), else they are one line naming the folder."""
    from PIL import Image, ImageOps

    folder = Path(folder)
    classes, files, loose = _class_files(folder)
    if loose and not unlabelled:
        raise CtrlgenError(f"{folder} has {len(loose)} image(s) in an unlabelled/ subfolder, but a class-conditional run needs a label "
                           "on every image; move them into class subfolders, or train an InfoGAN recipe (it can use unlabelled images)")
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for k, group in (*enumerate(files), (UNLABELLED, loose)):
        for f in group:
            arr = _open_image(f, lambda im: np.asarray(ImageOps.fit(im.convert(mode), (size, size), Image.Resampling.LANCZOS), dtype=np.uint8))
            images.append(arr[None] if channels == 1 else arr.transpose(2, 0, 1))
            labels.append(k)
    return ImageData(np.stack(images), np.asarray(labels, np.int64), tuple(classes), str(folder))


GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
"""PIL modes read as one channel; every other mode (RGB, RGBA, P, CMYK, ...) as three."""


def probe_image_folder(folder: str | os.PathLike, need_channels: bool = True, need_size: bool = True) -> tuple[int | None, int | None]:
    """(channels, image_size) that fit every image of a class-subfolder folder, read from the file headers.

    Channels: 1 if every image is grayscale, 3 if every one is in colour.  Size: the shorter side
    (images are centre-cropped to squares), the same for every image and one the conv networks
    can make.  When the images disagree, one line says which ``--set`` to give; a value not asked
    for (``need_*`` False: the user set it) comes back as None and is not checked.
    """
    from ctrlgen.nets import conv_plan

    folder = Path(folder)
    _, labelled, loose = _class_files(folder)
    files = [*labelled, loose]
    first: dict[str, tuple[Path, object]] = {}
    for f in (f for group in files for f in group):
        mode, (w, h) = _open_image(f, lambda im: (im.mode, im.size))
        for key, value in (("channels", 1 if mode in GRAY_MODES else 3), ("image_size", min(w, h))):
            if key not in first:
                first[key] = (f, value)
                continue
            (f0, v0), wanted = first[key], need_channels if key == "channels" else need_size
            if wanted and v0 != value:
                if key == "channels":
                    raise CtrlgenError(f"images in {folder} mix grayscale and colour ({f0.relative_to(folder)}: {v0} channel(s), "
                                       f"{f.relative_to(folder)}: {value}); give --set channels=3 (or channels=1)")
                raise CtrlgenError(f"images in {folder} have different sizes ({f0.relative_to(folder)}: {v0} px, "
                                   f"{f.relative_to(folder)}: {value} px on the shorter side); give --set image_size=N "
                                   f"(each is centre-cropped and resized to N×N, e.g. {_supported(min(v0, value))})")
    channels, size = first["channels"][1] if need_channels else None, first["image_size"][1] if need_size else None
    if size is not None:
        try:
            conv_plan(size)
        except CtrlgenError:
            raise CtrlgenError(f"images in {folder} are {size} px on the shorter side, a size the conv networks cannot make; "
                               f"give --set image_size={_supported(size)} (sizes s·2^k, s in 3..7, k >= 1)") from None
    return channels, size


def _supported(size: int) -> int:
    """The largest image size <= ``size`` the conv networks can make (s·2^k, s in 3..7, k >= 1), at least 6."""
    from ctrlgen.nets import conv_plan

    for n in range(max(size, 6), 5, -1):
        try:
            conv_plan(n)
            return n
        except CtrlgenError:
            continue
    return 6


def is_idx_folder(folder: Path) -> bool:
    """True if ``folder`` holds IDX files (Fashion-MNIST layout) rather than class subfolders."""
    return any(p.name.endswith(("idx3-ubyte", "idx3-ubyte.gz", "idx1-ubyte", "idx1-ubyte.gz")) for p in folder.iterdir())


def load_images(data: str | None, split: str, size: int, channels: int, unlabelled: bool = False) -> ImageData:
    """The recipe's data: IDX files if the folder has them, else an image folder (``unlabelled``: an
    ``unlabelled/`` subfolder is allowed; see ``load_image_folder``)."""
    folder = Path(data) if data else None
    if folder is not None and folder.is_dir() and not is_idx_folder(folder):
        return load_image_folder(folder, size, channels, unlabelled)
    out = load_idx_split(folder, split)
    if out.images.shape[1:] != (channels, size, size):
        raise CtrlgenError(
            f"IDX images are {out.images.shape[1]}x{out.images.shape[2]}x{out.images.shape[3]} but the recipe wants "
            f"{channels}x{size}x{size}; set image_size={out.images.shape[2]} channels={out.images.shape[1]}"
        )
    return out


def describe_images(kind: str, data_dir: str, data: ImageData) -> dict[str, object]:
    """What a run's checkpoint and model card say about its image data: the folder's own name when it
    trained on a folder (``shapes`` for ``--data shapes/``), else the data kind (``fashion-mnist``)."""
    name = (Path(data_dir).resolve().name or str(data_dir)) if data_dir else kind
    return {"name": name, "source": data.source, "n": int(len(data.labels))}


# --------------------------------------------------------------------------- 2D mixtures
@dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic 2D Gaussians (METRICS.md)."""

    name: str
    means: np.ndarray  # (K, 2)
    std: float

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        k = rng.integers(0, len(self.means), n)
        x = self.means[k] + self.std * rng.standard_normal((n, 2))
        return x.astype(np.float32), k.astype(np.int64)


def mixture(name: str) -> Mixture:
    if name == "ring8":
        a = 2 * np.pi * np.arange(8) / 8
        return Mixture("ring8", np.stack([np.cos(a), np.sin(a)], 1), 0.01)
    if name == "grid25":
        g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return Mixture("grid25", np.array([(x, y) for x in g for y in g]), 0.05)
    raise CtrlgenError(f"mixture {name!r} is unknown; use ring8 or grid25")


MIXTURES = ("ring8", "grid25")
