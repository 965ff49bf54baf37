"""Where generated samples go: a grid PNG, a folder of PNGs, or an .npz archive.

Writers take chunks (``add(samples, inputs)``) so any count streams to disk in
bounded memory, and publish atomically on ``close()``: until then everything
lives in a temporary sibling, so an interrupted job leaves no half-written
output and never touches an existing one.  Output bytes depend only on the
samples (fixed zip timestamps, no PNG metadata), so the same seed gives
byte-identical files.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ctrlgen.errors import CtrlgenError
from ctrlgen.files import make_folders, publish, remove_empty, rename_no_replace, write_bytes
from ctrlgen.images import grid, png_bytes, points_image, to_uint8
from ctrlgen.spec import LatentSpec

FORMATS = ("grid", "png-dir", "npz")
MAX_GRID = 10_000
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def infer_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".png":
        return "grid"
    if suffix == ".npz":
        return "npz"
    if suffix == "":
        return "png-dir"
    raise CtrlgenError(f"cannot tell the format of {path.name}; use .png (grid), .npz, a folder name, or pass --format")


def output_format(path: Path, fmt: str | None) -> str:
    """The format to write ``path`` in: ``fmt`` (from --format) or the one its suffix names.  A --format that
    contradicts a .png or .npz suffix is refused: an npz archive named x.png (or a grid named x.npz) would
    mislead every tool that opens it by its name."""
    if fmt is None:
        return infer_format(path)
    implied = {".png": "grid", ".npz": "npz"}.get(path.suffix.lower())
    if implied is not None and implied != fmt:
        fixed = path.with_suffix(".npz") if fmt == "npz" else path.with_suffix(".png") if fmt == "grid" else path.with_suffix("")
        raise CtrlgenError(f"--format {fmt} does not match the {path.suffix} suffix of {path.name}; "
                           f"name the output {fixed.name} or drop --format")
    return fmt


class Writer:
    def __init__(self, path: Path, spec: LatentSpec, n: int) -> None:
        self.path, self.spec, self.n = path, spec, n
        self.count = 0

    def add(self, samples: np.ndarray, inputs: dict[str, np.ndarray]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def abort(self) -> None:
        pass


class GridWriter(Writer):
    """All samples in one PNG, ``nrow`` per row (images) or one scatter plot (points)."""

    def __init__(self, path, spec, n, nrow: int | None = None, scale: int = 2, means: np.ndarray | None = None) -> None:
        super().__init__(path, spec, n)
        if n > MAX_GRID:
            raise CtrlgenError(f"a grid of {n} samples is too large (max {MAX_GRID}); use --format npz or png-dir for big jobs")
        self.nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
        self.scale, self.means = scale, means
        if spec.output_kind == "image":
            from ctrlgen.limits import MAX_PICTURE_PIXELS

            cols, rows = min(self.nrow, max(n, 1)), -(-max(n, 1) // self.nrow)
            h, w = spec.output_shape[1] * scale, spec.output_shape[2] * scale
            if cols * w * rows * h > MAX_PICTURE_PIXELS:
                raise CtrlgenError(f"a grid of {n} samples at --scale {scale} is {cols * w}x{rows * h} px, over the limit of "
                                   f"{MAX_PICTURE_PIXELS:,} px; use a smaller --scale or --format png-dir")
        self.parts: list[np.ndarray] = []

    def add(self, samples, inputs):
        self.parts.append(samples)
        self.count += len(samples)

    def render(self) -> np.ndarray:
        x = np.concatenate(self.parts) if self.parts else np.zeros((0, *self.spec.output_shape), np.float32)
        if self.spec.output_kind == "points":
            return points_image(x, self.means)
        return grid(to_uint8(x), self.nrow)

    def close(self):
        arr = self.render()
        write_bytes(self.path, png_bytes(arr, self.scale if self.spec.output_kind == "image" else 1))


_OURS = re.compile(r"[0-9]{6,}\.png")


def foreign_entries(folder: Path) -> list[str]:
    """What a folder holds that a png-dir writer did not write: anything but ``inputs.csv`` and the
    numbered PNGs it lists (subfolders and hidden files count as foreign)."""
    listed: set[str] = set()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in (folder / "inputs.csv").read_text(encoding="utf-8").splitlines()[1:]:
            name = line.split(",", 1)[0]
            if _OURS.fullmatch(name):
                listed.add(name)
    out = []
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and not p.is_symlink() and (p.name == "inputs.csv" or p.name in listed)):
            out.append(p.name)
    return out


class _TempDir:
    """A temporary sibling folder that becomes ``target`` on commit.  An existing ``target`` is replaced
    only with ``force`` and only when everything in it was written by a png-dir writer."""

    def __init__(self, target: Path, force: bool = False) -> None:
        self.made = make_folders(target.parent)  # removed again (if still empty) when the job fails
        self.target, self.force = target, force
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))

    def commit(self) -> None:
        if not self.force or not (self.target.exists() or self.target.is_symlink()):
            publish(self.tmp, self.target, replace=False)  # one line if something appeared meanwhile
            return
        self.check_replaceable(self.target, listing=False)
        old = self.target.with_name(f".{self.target.name}.old-{os.getpid()}")
        os.rename(self.target, old)  # checked once out of the way: nothing can be added to it unseen
        try:
            self.check_replaceable(old, shown_as=self.target)
        except CtrlgenError:
            rename_no_replace(old, self.target)
            raise
        try:
            publish(self.tmp, self.target, replace=False)
        except CtrlgenError:
            raise CtrlgenError(f"{self.target} appeared again while this job ran; the previous samples are kept in {old}; "
                               "choose another output") from None
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        remove_empty(self.made)

    @staticmethod
    def check_replaceable(folder: Path, listing: bool = True, shown_as: Path | None = None) -> None:
        """One line unless ``folder`` is a folder (not a link) holding only what a png-dir writer wrote."""
        shown_as = shown_as or folder
        if folder.is_symlink() or not folder.is_dir():
            raise CtrlgenError(f"{shown_as} is a file, not a folder of PNGs ctrlgen wrote; --force replaces only such a folder: "
                               "choose another output")
        foreign = foreign_entries(folder) if listing else []
        if foreign:
            shown = ", ".join(repr(clean_name(f)) for f in foreign[:3])
            raise CtrlgenError(f"{shown_as} holds {len(foreign)} file(s) ctrlgen did not write ({shown}); --force replaces only "
                               "a folder of PNGs ctrlgen wrote, nothing was deleted: choose another output")


def clean_name(name: str) -> str:
    """A file name for a one-line message: control characters replaced."""
    return "".join(c if c.isprintable() else "?" for c in name)[:60]


class PngDirWriter(Writer):
    """One PNG per sample (``000000.png`` ...) plus ``inputs.csv`` naming each one's inputs."""

    def __init__(self, path, spec, n, force: bool = False) -> None:
        super().__init__(path, spec, n)
        if spec.output_kind != "image":
            raise CtrlgenError("png-dir needs an image model; use --format npz or grid for points")
        if force and path.exists():  # refused before any work; checked again when the folder is swapped in
            _TempDir.check_replaceable(path)
        self.dir = _TempDir(path, force)
        self.width = max(6, len(str(max(n - 1, 0))))
        self.csv = open(self.dir.tmp / "inputs.csv", "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        cols = ["file"]
        if spec.conditional:
            cols += ["label", "label_name"]
        cols += [c.name for c in spec.categorical] + [c.name for c in spec.continuous]
        self.csv.write(",".join(cols) + "\n")

    def add(self, samples, inputs):
        imgs = to_uint8(samples)
        for j, img in enumerate(imgs):
            name = f"{self.count + j:0{self.width}d}.png"
            (self.dir.tmp / name).write_bytes(png_bytes(img))
            row = [name]
            if self.spec.conditional:
                lab = int(inputs["label"][j])
                row += [str(lab), '"' + clean_name(self.spec.labels[lab]).replace('"', "'") + '"']
            row += [str(int(v)) for v in inputs.get("code_cat", np.zeros((len(imgs), 0)))[j]]
            row += [repr(float(v)) for v in inputs.get("code_cont", np.zeros((len(imgs), 0)))[j]]
            self.csv.write(",".join(row) + "\n")
        self.count += len(imgs)

    def close(self):
        self.csv.close()
        self.dir.commit()

    def abort(self):
        with contextlib.suppress(Exception):
            self.csv.close()
        self.dir.abort()


class NpzWriter(Writer):
    """``sample`` (float32, the model's raw output) and every input, streamed to disk in chunks.

    ``sample.npy`` is written straight into the (temporary) zip archive and the
    small inputs go to plain ``.npy`` part files appended after it, all with
    ordinary sequential writes: resident memory stays at about one chunk
    whatever ``n`` is (memory maps would count every written page as resident).
    """

    def __init__(self, path, spec, n) -> None:
        super().__init__(path, spec, n)
        folder = path.parent if str(path.parent) else Path(".")
        self.made = make_folders(folder)  # removed again (if still empty) on abort
        self.tmpdir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".parts", dir=folder))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        self.tmp = Path(tmp)
        self.dtypes = {name: np.dtype(np.float32 if name in ("z", "code_cont") else np.int64) for name in spec.input_names}
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.sample = self.zip.open(_zip_info("sample.npy"), "w", force_zip64=True)
        _npy_header(self.sample, (n, *spec.output_shape), np.dtype(np.float32))
        self.parts = {}
        for name, shape in spec.input_shapes(n).items():
            self.parts[name] = open(self.tmpdir / f"{name}.npy", "wb")  # noqa: SIM115 - closed in close/abort
            _npy_header(self.parts[name], shape, self.dtypes[name])

    def add(self, samples, inputs):
        m = len(samples)
        if self.count + m > self.n:
            raise CtrlgenError(f"npz writer got more than the {self.n} samples it was opened for")
        self.sample.write(np.ascontiguousarray(samples, np.float32).data)
        for name, f in self.parts.items():
            f.write(np.ascontiguousarray(inputs[name], self.dtypes[name]).data)
        self.count += m

    def close(self):
        if self.count != self.n:
            self.abort()
            raise CtrlgenError(f"npz writer got {self.count} samples but was opened for {self.n}; nothing was written")
        try:
            self.sample.close()
            for name, f in self.parts.items():
                f.close()
                with open(self.tmpdir / f"{name}.npy", "rb") as fin, self.zip.open(_zip_info(f"{name}.npy"), "w", force_zip64=True) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
            self.zip.close()
            publish(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def abort(self):
        for f in (self.sample, *self.parts.values()):
            with contextlib.suppress(Exception):
                f.close()
        with contextlib.suppress(Exception):
            self.zip.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        remove_empty(self.made)


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.external_attr = 0o644 << 16
    return info


def _npy_header(f, shape: tuple, dtype: np.dtype) -> None:
    """The .npy header of a C-order array of ``shape``; the data follows in chunks."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(int(s) for s in shape)}
    np.lib.format.write_array_header_1_0(f, header)


def make_writer(fmt: str, path: Path, spec: LatentSpec, n: int, nrow: int | None = None, scale: int = 2, means=None,
                force: bool = False) -> Writer:
    if fmt == "grid":
        return GridWriter(path, spec, n, nrow=nrow, scale=scale, means=means)
    if fmt == "png-dir":
        return PngDirWriter(path, spec, n, force)
    if fmt == "npz":
        return NpzWriter(path, spec, n)
    raise CtrlgenError(f"format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
