"""The predictions a bundle carries: one PNG label map per case in a zip, written and read back with caps.

``predictions.zip`` holds ``<case_id>.png`` for every case, stored (PNG is already compressed):
1-bit PNG where a label map is binary (a Kvasir-SEG run of 120 cases: 0.3 MB), 8-bit grey
where its labels fit a byte, else 16-bit grey: the instance maps of GlaS or MoNuSeg predictions
(``evaluate(..., instances=True)``) keep every object id up to :data:`MAX_LABEL`, as the canonical
copies store theirs (:func:`medseg_eval.datasets.canonical.encode_instances`). The archive is hashed whole (its sha256 is in ``meta.json``), so it is written once and
its bytes never depend on the machine that reads it. Anyone can open it with any zip tool and
any PNG reader.

Reading never extracts anything to disk and trusts nothing in the file: members must be named
``<case_id>.png`` for a case of the split, pass the rules and caps every reader of prediction zips
applies (:func:`medseg_eval.archives.member_problem`: no links, no encryption, a readable method, size
and ratio caps; :data:`medseg_eval.archives.MAX_TOTAL_BYTES` in all), be PNG by their bytes (the
signature, not the name) and hold at most :data:`MAX_PIXELS`; any other member is refused, named.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Collection, Mapping

import numpy as np
from PIL import Image

from .. import archives
from ..datasets.canonical import MAX_INSTANCE_ID, encode_instances
from .errors import SubmissionError

ARCHIVE = "predictions.zip"
MAX_PIXELS = 2**26
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The largest label (class or instance id) a bundle stores: 16-bit grey PNG's.
MAX_LABEL = MAX_INSTANCE_ID
#: PNG modes a member may decode to: 1-bit, 8-bit grey, 16-bit grey (as Pillow versions name it).
_MODES = ("1", "L", "I;16", "I;16B", "I")


def write_archive(masks: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of ``predictions.zip`` for label maps ``case_id -> [H, W]`` with labels 0..:data:`MAX_LABEL`
    (class ids, or instance ids: 16-bit where an id exceeds 255).

    Examples
    --------
    >>> import numpy as np
    >>> data = write_archive({"a": np.eye(3, dtype=np.uint8), "b": np.full((2, 2), 2, np.uint8),
    ...                       "c": np.array([[0, 300], [65535, 7]])})
    >>> {k: v.tolist() for k, v in read_archive(data, label="example").items()}
    {'a': [[1, 0, 0], [0, 1, 0], [0, 0, 1]], 'b': [[2, 2], [2, 2]], 'c': [[0, 300], [65535, 7]]}
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for case_id in sorted(masks):
            mask = np.asarray(masks[case_id])
            if mask.ndim != 2 or mask.dtype.kind not in "biu":
                raise SubmissionError(f"case {case_id}: a bundle stores label maps [H, W] of integers, got "
                                      f"{mask.dtype} {mask.shape}.")
            top = int(mask.max()) if mask.size else 0
            if mask.size and (mask.min() < 0 or top > MAX_LABEL):
                raise SubmissionError(f"case {case_id}: labels range from {mask.min()} to {top}; a bundle stores "
                                      f"0..{MAX_LABEL} (16-bit PNG). Number the objects of an instance map "
                                      "consecutively and evaluate again.")
            archive.writestr(zipfile.ZipInfo(f"{case_id}.png"), _encode(mask, top))  # fixed 1980 date: same bytes
    return buffer.getvalue()


def _encode(mask: np.ndarray, top: int) -> bytes:
    """PNG bytes of a checked label map: 1-bit (binary), 8-bit grey, or 16-bit grey above 255."""
    if top > 255:
        return encode_instances(mask)
    png = io.BytesIO()
    Image.fromarray(mask.astype(bool) if top <= 1 else mask.astype(np.uint8)).save(png, format="PNG", optimize=True)
    return png.getvalue()


def read_archive(data: bytes, *, label: str, case_ids: Collection[str] | None = None) -> dict[str, np.ndarray]:
    """Label maps ``case_id -> [H, W]`` of a ``predictions.zip`` (uint8, or uint16 from 16-bit members); a :class:`SubmissionError` naming the
    bundle ``label`` and the member otherwise (see the module docstring for what is refused). With
    ``case_ids``, a member of another name is refused before anything is decoded.

    Examples
    --------
    >>> read_archive(b"not a zip", label="demo")
    Traceback (most recent call last):
    ...
    medseg_eval.leaderboard.errors.SubmissionError: bundle demo: predictions.zip is not a zip archive.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise SubmissionError(f"bundle {label}: {ARCHIVE} is not a zip archive.") from None
    masks: dict[str, np.ndarray] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            where = f"bundle {label}: {ARCHIVE} member {info.filename!r}"
            total += info.file_size
            _check_member(info, where, total)
            case_id = info.filename.removesuffix(".png")
            if case_ids is not None and case_id not in case_ids:
                raise SubmissionError(f"{where}: {case_id!r} is not a case of the split the board ranks.")
            if case_id in masks:
                raise SubmissionError(f"{where}: a second label map for case {case_id}.")
            try:
                raw = archive.read(info)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as err:
                raise SubmissionError(f"{where}: cannot be read ({err}).") from None
            masks[case_id] = _decode(raw, where)
    return masks


def _check_member(info: zipfile.ZipInfo, where: str, total: int) -> None:
    if info.is_dir() or not info.filename.endswith(".png"):
        raise SubmissionError(f"{where}: the archive holds <case_id>.png files only.")
    problem = archives.member_problem(info, where)
    if problem:
        raise SubmissionError(problem)
    if total > archives.MAX_TOTAL_BYTES:
        raise SubmissionError(f"{where}: the label maps hold more than {archives.MAX_TOTAL_BYTES} bytes "
                              "uncompressed (medseg_eval.archives.MAX_TOTAL_BYTES).")


def _decode(data: bytes, where: str) -> np.ndarray:
    if not data.startswith(PNG_SIGNATURE):
        raise SubmissionError(f"{where}: not PNG data (its first bytes are {data[:8]!r}).")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.width * image.height > MAX_PIXELS or image.mode not in _MODES:
                raise SubmissionError(f"{where}: a {image.mode} image of {image.width}x{image.height}; label maps "
                                      f"are 1-bit, 8-bit or 16-bit grey PNGs of at most {MAX_PIXELS} pixels.")
            return np.asarray(image).astype(np.uint8 if image.mode in ("1", "L") else np.uint16)
    except SubmissionError:
        raise
    except Exception as err:  # noqa: BLE001 -- any decoder failure (truncated, bomb, bad CRC) is this member's
        raise SubmissionError(f"{where}: cannot be decoded ({type(err).__name__}: {err}).") from None
