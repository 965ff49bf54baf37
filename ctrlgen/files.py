"""Writing files so that nothing already written is lost or left half-written.

Every file ctrlgen writes goes through ``atomic_writer``: the bytes go to a
temporary file in the same folder, are flushed to disk, and replace the target
in one ``os.replace``.  A crash leaves either the old file or the new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ctrlgen.errors import CtrlgenError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Give a temporary file or folder the permissions a plain open() would have, then rename it
    onto ``target`` (mkstemp/mkdtemp create them private, 0600/0700)."""
    tmp = Path(tmp)
    os.chmod(tmp, (0o777 if tmp.is_dir() else 0o666) & ~_umask())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically becomes ``path``.

    ``suffix`` keeps libraries that pick a format from the extension happy
    (default: the target's own suffix).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(path.suffix if suffix is None else suffix) + ".tmp", dir=folder)
    except OSError as e:
        raise CtrlgenError(f"cannot write to {folder} ({e.strerror}); choose a writable output path") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        publish(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def check_output(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to overwrite an existing output unless ``force``; check its folder is writable."""
    path = Path(path)
    if path.exists() and not force:
        raise CtrlgenError(f"{path} already exists; pass --force to overwrite it or choose another output")
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise CtrlgenError(f"cannot write to {folder}: it is not a writable folder; choose another output path")
    return path


def free_name(path: str | os.PathLike) -> Path:
    """``path`` if it does not exist, else the first free ``stem-2.ext``, ``stem-3.ext``, ..."""
    path = Path(path)
    if not path.exists():
        return path
    i = 2
    while True:
        cand = path.with_name(f"{path.stem}-{i}{path.suffix}")
        if not cand.exists():
            return cand
        i += 1


def remove_stale_temps(folder: str | os.PathLike, depth: int = 1) -> list[Path]:
    """Delete the temporary files ``atomic_writer`` leaves when a process is killed mid-write
    (``.NAME.*.tmp``) in ``folder`` and its subfolders down to ``depth``.  Only for a folder
    no other process is writing to (a run being resumed)."""
    folder, gone = Path(folder), []
    for p in folder.iterdir() if folder.is_dir() else ():
        if p.is_file() and p.name.startswith(".") and p.name.endswith(".tmp"):
            with contextlib.suppress(OSError):
                p.unlink()
                gone.append(p)
        elif p.is_dir() and depth > 0 and not p.name.startswith("."):
            gone += remove_stale_temps(p, depth - 1)
    return gone
