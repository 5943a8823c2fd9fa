"""Atomic writes: a crash mid-write leaves the previous file or folder intact, never a half-written one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
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
    path = Path(path) if owned is None else check_replaceable(path, owned)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.building-"))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        os.replace(path, old / path.name)
    os.replace(staging, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
