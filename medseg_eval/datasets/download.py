"""Official archives: the cache folder, downloads that resume and are checked by sha256, extraction."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from .errors import ChecksumError, DownloadError, SourceFormatError

CHUNK = 2**20


def home() -> Path:
    """The cache root: ``$MEDSEG_EVAL_HOME``, default ``~/.cache/medseg_eval``."""
    # An empty variable counts as unset (a stray `MEDSEG_EVAL_HOME=` must not mean the working folder).
    return Path(os.environ.get("MEDSEG_EVAL_HOME") or Path.home() / ".cache" / "medseg_eval").expanduser()


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> str:
    """Return the file's sha256; raise :class:`ChecksumError` when it is not ``expected``."""
    actual = file_sha256(path)
    if expected is not None and actual != expected.lower():
        raise ChecksumError(
            f"{path.name}: sha256 is {actual}, expected {expected}. The file is corrupt or not the "
            f"official release; delete {path} and download it again."
        )
    return actual


def download(url: str, folder: Path, *, sha256: str | None = None, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` into ``folder``, resuming a partial ``.part`` file, and check its sha256.

    The file appears under its final name only once complete and verified; a file already there
    with the right hash is not downloaded again. An interrupted transfer leaves ``<name>.part``,
    which the next call continues with an HTTP range request (or restarts when the server
    does not honour ranges).

    Raises
    ------
    DownloadError
        On an HTTP error, a network failure or a transfer shorter than announced.
    ChecksumError
        When the complete file does not have ``sha256``; the file is removed.
    """
    from tqdm.auto import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    name = url_filename(url)
    target, part = folder / name, folder / f"{name}.part"
    if target.exists():
        try:
            verify_sha256(target, sha256)
            return target
        except ChecksumError:
            target.unlink()
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part is already complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}.") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        raise DownloadError(f"{url}: {err}. Check the address and the network; rerun to resume.") from err
    if response is not None:
        with response:
            if offset and response.status != 206:  # server ignored the range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            written = offset
            with open(part, "ab" if offset else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=name, disable=not progress
            ) as bar:
                try:
                    while block := response.read(CHUNK):
                        f.write(block)
                        written += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as err:
                    raise DownloadError(f"{url}: transfer interrupted after {written} bytes ({err}); rerun to resume.") from err
            if total is not None and written < total:
                raise DownloadError(f"{url}: transfer ended after {written} of {total} bytes; rerun to resume.")
    try:
        verify_sha256(part, sha256)
    except ChecksumError:
        part.unlink()
        raise
    os.replace(part, target)
    return target


def url_filename(url: str) -> str:
    """The file name a URL points at, percent-decoded (``.../MoNuSeg%202018.zip`` -> ``MoNuSeg 2018.zip``)."""
    return urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name) or "download"


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def extract(archive: Path, folder: Path) -> Path:
    """Extract a zip or tar archive into ``folder`` (replaced atomically); refuses paths leaving it."""
    from .._atomic import atomic_directory

    try:
        with atomic_directory(folder) as staging:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    for member in z.namelist():
                        _check_member(archive, staging, member)
                    z.extractall(staging)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as t:
                    t.extractall(staging, filter="data")
            else:
                raise SourceFormatError(f"{archive} is neither a zip nor a tar archive.")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise SourceFormatError(f"{archive}: damaged archive ({err}); delete it and download it again.") from err
    return folder


def _check_member(archive: Path, root: Path, member: str) -> None:
    if not (root / member).resolve().is_relative_to(root.resolve()):
        raise SourceFormatError(f"{archive}: member {member!r} would be written outside the extraction folder.")
