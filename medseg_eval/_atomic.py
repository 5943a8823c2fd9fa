"""Atomic writes: a crash mid-write leaves the previous file or folder intact, never a half-written one.

What is written gets the permissions of an ordinary file or folder under the user's umask (``0o644``
and ``0o755`` under the usual ``022``), not the private ``0o600``/``0o700`` of a temporary one, so
colleagues on a shared server read it. Temporary names carry the writer's process id: a later write
to the same place removes what a crashed writer left, and puts back a previous folder that a crash
left moved aside.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path


def current_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux), else set and put back.

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_prefix(path: Path, kind: str) -> str:
    """``.<name>.<kind>-<pid>-``: the prefix of this process's temporary siblings of ``path``."""
    return f".{path.name}.{kind}-{os.getpid()}-"


def _left_by_a_dead_writer(entry: Path) -> bool:
    """Whether the temporary ``entry`` (``.<name>.<kind>-<pid>-...``) was left by a process that has ended."""
    pid = entry.name.rsplit(".", 1)[-1].split("-")[1:2]
    if not pid or not pid[0].isdigit():
        return True  # an older name without a pid: nobody writes it any more
    if int(pid[0]) == os.getpid():
        return False
    try:
        os.kill(int(pid[0]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def clean_leftovers(path: str | os.PathLike[str]) -> None:
    """Remove what writers of ``path`` that crashed left beside it, first putting back a previous
    folder that a crash left moved aside (when ``path`` itself is missing).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> parent = pathlib.Path(tempfile.mkdtemp())
    >>> (parent / ".run.building-999999999-x").mkdir()
    >>> clean_leftovers(parent / "run"); sorted(p.name for p in parent.iterdir())
    []
    """
    path = Path(path)
    if not path.parent.is_dir():
        return
    name = glob.escape(path.name)
    for kind in ("old", "building", "tmp"):
        for entry in sorted(path.parent.glob(f".{name}.{kind}-*")):
            if not _left_by_a_dead_writer(entry):
                continue
            if kind == "old" and not path.exists() and (entry / path.name).exists():
                os.replace(entry / path.name, path)  # the crash came between the two renames
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> atomic_write_bytes(target, b"hello").read_bytes()
    b'hello'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path, "tmp"))
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_replaceable(path: str | os.PathLike[str], owned: Collection[str]) -> Path:
    """``path``, if a folder written there may replace what is there: nothing, an empty folder, or a
    folder holding only the entries ``owned`` (what the writer itself writes).

    Raises ``FileExistsError`` naming the other entries, which replacing would delete.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "notes.txt").write_text("mine")
    >>> check_replaceable(folder, ["results.json"])
    Traceback (most recent call last):
    ...
    FileExistsError: ... holds files this would not write (notes.txt); ...
    """
    path = Path(path)
    if path.exists():
        others = sorted(p.name for p in path.iterdir()) if path.is_dir() else [path.name]
        others = [name for name in others if name not in owned]
        if others:
            raise FileExistsError(
                f"{path} holds files this would not write ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''});"
                f" writing there would delete them. Choose a new folder, e.g. {path / 'run-1'}.")
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, owned: Collection[str] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder that replaces ``path`` only when the block succeeds.

    The previous folder is moved aside, the staging folder renamed into place, then the old one
    removed; an exception in the block removes the staging folder and leaves ``path`` untouched.
    With ``owned`` (the entries the writer writes), a folder that holds anything else is refused
    before the block runs (:func:`check_replaceable`): a user's folder is never replaced.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with atomic_directory(target) as staging:
    ...     _ = (staging / "f.txt").write_text("x")
    >>> sorted(p.name for p in target.iterdir())
    ['f.txt']
    """
    path = Path(path)
    clean_leftovers(path)
    if owned is not None:
        check_replaceable(path, owned)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path, "building")))
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temporary_prefix(path, "old")))
        os.replace(path, old / path.name)
    os.replace(staging, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
