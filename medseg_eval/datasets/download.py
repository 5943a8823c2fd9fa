"""Official archives: the cache folder, downloads that resume and are checked by sha256, extraction.

Two environment variables steer every download: ``MEDSEG_EVAL_MIRROR=URL`` fetches each official
file from ``URL/<file name>`` instead (the sha256 stays the registry's, so a mirror cannot change
the ground truth), and ``MEDSEG_EVAL_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) turns off the fetches
made on first use (:func:`offline`); a build asked for explicitly still downloads.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from .errors import ChecksumError, DownloadError, SourceFormatError

CHUNK = 2**20
_TRUE = {"1", "true", "yes", "on"}
# Written into an extracted folder: the sha256 of the archive it came from, so a later build reuses it.
_EXTRACTED = ".medseg_eval_archive.json"


def home() -> Path:
    """The cache root: ``$MEDSEG_EVAL_HOME``, default ``~/.cache/medseg_eval``."""
    # An empty variable counts as unset (a stray `MEDSEG_EVAL_HOME=` must not mean the working folder).
    return Path(os.environ.get("MEDSEG_EVAL_HOME") or Path.home() / ".cache" / "medseg_eval").expanduser()


def offline() -> bool:
    """Whether first-use fetches are off: ``MEDSEG_EVAL_OFFLINE`` or ``HF_HUB_OFFLINE`` set to 1/true/yes/on.

    Examples
    --------
    >>> import os
    >>> offline() == any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
    ...                  for v in ("MEDSEG_EVAL_OFFLINE", "HF_HUB_OFFLINE"))
    True
    """
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("MEDSEG_EVAL_OFFLINE", "HF_HUB_OFFLINE"))


def source_url(filename: str, url: str) -> str:
    """Where an official file is fetched from: ``$MEDSEG_EVAL_MIRROR/<filename>`` when a mirror is set, else ``url``.

    Examples
    --------
    >>> import os
    >>> os.environ["MEDSEG_EVAL_MIRROR"] = "http://mirror.example.org/medseg/"
    >>> source_url("MoNuSegTestData.zip", "https://drive.google.com/file/d/1NKk")
    'http://mirror.example.org/medseg/MoNuSegTestData.zip'
    >>> del os.environ["MEDSEG_EVAL_MIRROR"]
    """
    mirror = os.environ.get("MEDSEG_EVAL_MIRROR", "").strip()
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(filename)}" if mirror else url


def human_size(size: int | None) -> str:
    """``12.3 MB``-style size (powers of 1000, as servers and file managers show them).

    Examples
    --------
    >>> human_size(10_400_000_000), human_size(512), human_size(None)
    ('10.4 GB', '512 B', 'size unknown')
    """
    if size is None:
        return "size unknown"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None, *, name: str | None = None) -> str:
    """Return the file's sha256; raise :class:`ChecksumError`, naming the archive, when it is not ``expected``."""
    actual = file_sha256(path)
    if expected is not None and actual != expected.lower():
        raise ChecksumError(
            f"{name or path.name}: sha256 is {actual}, expected {expected}. The file is corrupt or not the "
            f"official release; delete {path} and download it again."
        )
    return actual


def download(url: str, folder: Path, *, sha256: str | None = None, progress: bool = True, timeout: float = 60.0,
             label: str | None = None) -> Path:
    """Download ``url`` into ``folder``, resuming a partial ``.part`` file, and check its sha256.

    The file appears under its final name only once complete and verified; a file already there
    with the right hash is not downloaded again. An interrupted transfer leaves ``<name>.part``,
    which the next call continues with an HTTP range request (or restarts when the server
    does not honour ranges). Before the bytes flow, one line on stderr says what is fetched
    (``label``), from where and how large; then a progress bar (unless ``progress`` is False).

    Raises
    ------
    DownloadError
        On an HTTP error, a network failure or a transfer shorter than announced.
    ChecksumError
        When the complete file does not have ``sha256``; nothing of it is left in ``folder``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "kept.zip").write_bytes(b"bytes")  # complete and verified: no request is made
    >>> download("https://example.org/kept.zip", folder, sha256=file_sha256(folder / "kept.zip")).name
    'kept.zip'
    """
    from tqdm.auto import tqdm

    name = url_filename(url)
    target, part = folder / name, folder / f"{name}.part"
    if target.exists():
        try:
            verify_sha256(target, sha256)
            return target
        except ChecksumError:
            target.unlink()
    created = not folder.exists()  # removed again if the fetch fails before anything is kept
    folder.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part is already complete
            response = None
        else:
            _remove_if_empty(folder, created)
            raise DownloadError(f"{url}: HTTP {err.code} {err.reason}.") from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        _remove_if_empty(folder, created)
        raise DownloadError(f"{url}: {err}. Check the address and the network; rerun to resume.") from err
    if response is not None:
        with response:
            if offset and response.status != 206:  # server ignored the range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            resumed = f", resuming after {human_size(offset)}" if offset else ""
            print(f"fetching {label or name}: {human_size(total)}{resumed} from {url}", file=sys.stderr, flush=True)
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
    actual = file_sha256(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink()
        _remove_if_empty(folder, created)
        raise ChecksumError(f"{name} fetched from {url}: sha256 is {actual}, expected {sha256}; refused and deleted. "
                            "The download or the mirror is not the official release: fetch it again, or fix or unset "
                            "MEDSEG_EVAL_MIRROR.")
    os.replace(part, target)
    return target


def _remove_if_empty(folder: Path, created: bool) -> None:
    """Remove ``folder`` if this download made it and nothing is in it, so a refused fetch leaves no trace."""
    if created:
        with contextlib.suppress(OSError):  # not empty, or already gone
            folder.rmdir()


def url_filename(url: str) -> str:
    """The file name a URL points at, percent-decoded (``.../MoNuSeg%202018.zip`` -> ``MoNuSeg 2018.zip``)."""
    return urllib.parse.unquote(Path(urllib.parse.urlparse(url).path).name) or "download"


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not by name)."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def extract(archive: Path, folder: Path, *, sha256: str | None = None) -> Path:
    """Extract a zip or tar archive into ``folder`` (replaced atomically); refuses paths leaving it.

    With ``sha256`` (the archive's), a folder already extracted from that very archive is reused.
    """
    from .._atomic import atomic_directory

    marker = folder / _EXTRACTED
    if sha256 is not None and marker.is_file() and json.loads(marker.read_text()).get("sha256") == sha256:
        return folder
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
            if sha256 is not None:
                (staging / _EXTRACTED).write_text(json.dumps({"archive": archive.name, "sha256": sha256}) + "\n")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise SourceFormatError(f"{archive}: damaged archive ({err}); delete it and download it again.") from err
    return folder


def _check_member(archive: Path, root: Path, member: str) -> None:
    if not (root / member).resolve().is_relative_to(root.resolve()):
        raise SourceFormatError(f"{archive}: member {member!r} would be written outside the extraction folder.")
