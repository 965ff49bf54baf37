"""Writing files so that nothing already written is lost or left half-written.

Every file ctrlgen writes goes through ``atomic_writer``: the bytes go to a
temporary file in the same folder, are flushed to disk, and are published in
one rename.  A crash leaves either the old file or the new one.

An output the user named (``check_output``) is published *without replacing*
anything unless ``--force`` was given: a file that appeared at that path while
the job ran (another ctrlgen job, the user) is kept and the job fails in one
line (``renameat2(RENAME_NOREPLACE)``, or a hard link for files where the
kernel lacks it).  Internal files (checkpoints, config.json) replace their
previous version as before.  ``lock_folder`` keeps a second writer out of a
folder (a run directory) while the first works in it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ctrlgen.errors import CtrlgenError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NO_REPLACE: set[str] = set()
"""Outputs this process checked with ``force=False``: published only where nothing is (``publish``)."""


def _key(path: str | os.PathLike) -> str:
    path = Path(path)
    return os.path.join(os.path.realpath(path.parent if str(path.parent) else "."), path.name)


def must_not_replace(path: str | os.PathLike) -> bool:
    return _key(path) in _NO_REPLACE


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """rename(2) that fails with EEXIST where ``dst`` exists; False where the kernel or libc lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_noreplace = -100, 1
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), dst)


def rename_no_replace(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move ``src`` to ``dst`` only if nothing is at ``dst``; else a CtrlgenError naming it (nothing is replaced)."""
    src, dst = os.fspath(src), os.fspath(dst)
    try:
        if _renameat2_noreplace(src, dst):
            return
        if os.path.isdir(src):  # fallback: rename(2) would replace an empty folder only; refuse a non-empty one
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, "exists", dst)
            os.rename(src, dst)
            return
        try:
            os.link(src, dst)  # fails where dst exists
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
                raise
            if os.path.lexists(dst):  # a filesystem without hard links: check, then rename (a narrow window)
                raise FileExistsError(errno.EEXIST, "exists", dst) from None
            os.rename(src, dst)
            return
        os.unlink(src)
    except FileExistsError:
        raise CtrlgenError(f"{dst} appeared while this job ran (another job or program wrote it) and was kept; "
                           "nothing was replaced: pass --force to overwrite it or choose another output") from None
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise CtrlgenError(f"{dst} appeared while this job ran (another job or program wrote it) and was kept; "
                               "nothing was replaced: pass --force to overwrite it or choose another output") from None
        raise


def publish(tmp: str | os.PathLike, target: str | os.PathLike, replace: bool | None = None) -> None:
    """Give a temporary file or folder the permissions a plain open() would have (a file it replaces: that
    file's own, so a private model stays private), then rename it onto ``target`` (mkstemp/mkdtemp create
    them private, 0600/0700).

    ``replace`` None: replace unless ``target`` is an output checked without ``--force``."""
    tmp = Path(tmp)
    mode = (0o777 if tmp.is_dir() else 0o666) & ~_umask()
    with contextlib.suppress(OSError):
        old = os.lstat(target).st_mode
        if stat.S_ISREG(old) and not tmp.is_dir():
            mode = stat.S_IMODE(old)
    os.chmod(tmp, mode)
    if replace is None:
        replace = not must_not_replace(target)
    if replace:
        _check_not_special(target)
        os.replace(tmp, target)
    else:
        rename_no_replace(tmp, target)
        _NO_REPLACE.discard(_key(target))  # ours now: this job may rewrite it (export --eval records the card)


def make_folders(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; returns the folders it made, deepest first, so that a write that fails can remove
    them again (``remove_empty``).  A mkdir that fails part way removes what it made before raising."""
    made, p = [], Path(os.path.abspath(folder))
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        remove_empty(made)
        raise
    return made


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders (deepest first) that are still empty; anything that holds a file stays."""
    for f in folders:
        with contextlib.suppress(OSError):
            f.rmdir()


def broken_link(path: str | os.PathLike) -> Path | None:
    """The first part of ``path`` that is a symbolic link leading nowhere (a missing target, or a loop); None if none is."""
    p = Path(os.path.abspath(path))
    for part in (*reversed(p.parents), p):
        if os.path.islink(part) and not os.path.exists(part):
            return part
    return None


def broken_link_message(path: str | os.PathLike) -> str | None:
    """One line for an output under a symbolic link that leads nowhere (None where there is no such link)."""
    link = broken_link(path)
    if link is None:
        return None
    return (f"{link} is a symbolic link to {os.readlink(link)}, which does not exist (or links back in a loop); "
            "remove the link, create what it points to, or choose another output")


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path to write; on success it atomically becomes ``path``.

    ``suffix`` keeps libraries that pick a format from the extension happy
    (default: the target's own suffix).
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    made: list[Path] = []
    try:
        made = make_folders(folder)  # a failed write leaves no empty folders behind either
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=(path.suffix if suffix is None else suffix) + ".tmp", dir=folder)
    except OSError as e:
        remove_empty(made)
        raise CtrlgenError(broken_link_message(folder) or f"cannot write to {folder} ({e.strerror}); choose a writable output path") from None
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
        remove_empty(made)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _check_named(path: Path) -> None:
    """Refuse an output path that names no file of its own (``''``, ``.``, ``..``, ``/``): writing there
    would mean replacing the folder it points at; and a bare ``-`` (standard output elsewhere, a file named
    '-' here)."""
    if path.name in ("", ".."):
        raise CtrlgenError(f"output {str(path)!r} names a folder, not a file to write; give the output a name of its own")
    if str(path) == "-":
        raise CtrlgenError("output '-' would be a file named '-': ctrlgen does not write to standard output; "
                           "give a file name (e.g. samples.png)")


def _special_kind(path: str | os.PathLike) -> str | None:
    """What a device, FIFO or socket at ``path`` is (None for a file, folder, link or nothing): replacing
    one by rename would delete it (``-o /dev/null --force`` as root would remove the system's /dev/null)."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a socket"


def _check_not_special(path: str | os.PathLike) -> None:
    kind = _special_kind(path)
    if kind:
        raise CtrlgenError(f"{path} is {kind}, not a file; outputs are written as files and --force replaces only "
                           "files: choose another output")


def check_output(path: str | os.PathLike, force: bool, folder: bool = False) -> Path:
    """Refuse to overwrite an existing output unless ``force``; check its folder is writable.

    ``folder``: the output is itself a folder (generate's png-dir); else an existing folder at ``path``
    is refused even with ``force`` (a file is never written over a folder)."""
    path = Path(path)
    _check_named(path)
    _check_not_special(path)
    if not folder and path.is_dir():
        raise CtrlgenError(f"{path} is a folder; the output is a file, and --force never replaces a folder: choose another name")
    if (path.exists() or path.is_symlink()) and not force:
        raise CtrlgenError(f"{path} already exists; pass --force to overwrite it or choose another output")
    if force:
        _NO_REPLACE.discard(_key(path))
    else:
        _NO_REPLACE.add(_key(path))
    folder = path.parent if str(path.parent) else Path(".")
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise CtrlgenError(f"cannot write to {folder}: it is not a writable folder; choose another output path")
    return path


def check_suffix(path: Path, suffix: str, why: str) -> None:
    """Refuse an output named for another format (PNG bytes in s.gif, a model in m.txt): one line naming the fix."""
    _check_named(path)
    if path.suffix.lower() != suffix:
        raise CtrlgenError(f"{path} must end in {suffix} ({why}); name it {path.with_suffix(suffix).name}")


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


class FolderLock:
    """An exclusive ``flock`` on ``FOLDER/.lock``, held while one process writes the folder; the lock file
    goes away on ``release`` (a folder left by a finished job holds no trace of it)."""

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        import fcntl

        self.folder = Path(folder)
        self.made = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / ".lock"
        while True:
            f = open(self.path, "a+")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip()[:20]
                f.close()
                pid = f" (pid {holder})" if holder.isdigit() else ""
                raise CtrlgenError(f"{self.folder} is in use by another {what}{pid}; wait for it to finish or choose another folder") from None
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:  # not a file the previous holder unlinked as we opened it
                break
            f.close()
        self.file = f
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError, ValueError):
            self.file.close()
