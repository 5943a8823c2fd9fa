"""Prediction files: listing a folder, finding each case's file, its label map's size from its header, decoding it.

A file's format is told from its bytes (:func:`medseg_eval.prediction_formats.sniff`), never its name:
PNG data named ``.tif`` is read as PNG, JPEG data named ``.png`` is refused. Names only decide which
files can be predictions (an image or array suffix, or none) and which case each is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np

from ._parallel import map_in_threads
from .prediction_errors import PredictionFormatError, UnknownCasesError, preview
from .prediction_formats import check_image, check_pixels, image_labels, refusal, sniff
from .prediction_ids import FoundCases
from .prediction_nifti import nifti_shape, read_nifti

#: File types read from a folder or zip, told apart by their bytes (WebP: lossless only).
SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".npy", ".npz", ".nii.gz", ".nii")
#: Image types recognised and refused (lossy, or not read): such files are refused with their reason, not ignored.
REFUSED_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".jp2", ".j2k", ".jpx", ".avif", ".heic", ".heif", ".jxl", ".dcm")
# Pillow modes whose pixels read_file gives as one value each (RGB(A), LA: one channel, or refused).
_FLAT_MODES = ("1", "L", "P", "I", "F", "I;16", "I;16B", "I;16L", "RGB", "RGBA", "LA")
_PILLOW = {"png": "PNG", "gif": "GIF", "bmp": "BMP", "tiff": "TIFF", "webp": "WEBP"}
# Suffixes people append to a case id when saving a mask; stripped when matching file names.
_COMMON_SUFFIXES = re.compile(r"(_(pred|prediction|mask|seg|segmentation|label|labels|gt))+$", re.IGNORECASE)


class PredictionFile:
    """One file that can be a prediction: on disk, or a zip archive's member read in place.

    Attributes
    ----------
    location
        Where it is, as messages name it: its path, or ``archive.zip:member``.
    relative
        Its path inside the predictions folder or archive.
    name
        Its file name.
    """

    def __init__(self, location: str, relative: str, open_stream: Callable[[], BinaryIO], *,
                 whole: Callable[[], BinaryIO] | None = None) -> None:
        self.location, self.relative, self.name = location, relative, PurePosixPath(relative).name
        self._open, self._whole = open_stream, whole or open_stream
        self._kind: str | None = None
        self._sniffed = False

    @classmethod
    def on_disk(cls, path: Path, relative: str | None = None) -> PredictionFile:
        """The file at ``path`` (``relative``: its path inside the predictions folder)."""
        return cls(str(path), relative or path.name, lambda: open(path, "rb"))

    def open(self, whole: bool = False) -> BinaryIO:
        """A binary stream of the file; ``whole``: read into memory where reading in place seeks slowly."""
        return (self._whole if whole else self._open)()

    @property
    def kind(self) -> str | None:
        """Its format, from its first bytes (see :func:`~medseg_eval.prediction_formats.sniff`)."""
        if not self._sniffed:
            try:
                with self.open() as stream:
                    self._kind = sniff(stream)
            except Exception as err:  # unreadable on disk, or a damaged member
                raise PredictionFormatError(f"cannot read prediction {self.location}: {err}.") from err
            self._sniffed = True
        return self._kind


def read_file(path: Path | PredictionFile) -> np.ndarray:
    """One prediction file as an array (images as stored: palette indices, grey levels).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.npy"
    >>> np.save(path, np.eye(2, dtype=np.uint8))
    >>> read_file(path).tolist()
    [[1, 0], [0, 1]]
    """
    return decode(_as_file(path), {})


def decode(file: PredictionFile, rules: dict[str, str]) -> np.ndarray:
    """``file`` as an array, by the format its bytes hold; the rules applied (an alpha channel read as the
    mask, NIfTI axes) are added to ``rules``.

    Raises
    ------
    PredictionFormatError
        For a refused format (JPEG, lossy WebP, ...), bytes of no format read, or a damaged file, naming it.
    """
    kind = _readable_kind(file)
    try:
        with file.open(whole=True) as stream:
            if kind == "npy":
                check_pixels(_pixels(_npy_header_shape(stream)), file.location)
                stream.seek(0)
                return np.load(stream, allow_pickle=False)
            if kind == "npz":
                with np.load(stream, allow_pickle=False) as data:
                    return data[_one_array(data, file)]
            if kind in ("nifti", "nifti-gz"):
                return read_nifti(stream, kind == "nifti-gz", file.location, rules)
            from PIL import Image

            with Image.open(stream, formats=[_PILLOW[kind]]) as image:
                return image_labels(image, file.location, rules)
    except PredictionFormatError:
        raise
    except Exception as err:  # any reader's failure on a damaged file
        raise PredictionFormatError(f"cannot read prediction {file.location}: {err}.") from err


def file_shape(path: Path | PredictionFile) -> tuple[int, ...]:
    """The shape of the array :func:`read_file` gives for ``path``, read from the file's header.

    PNG, GIF, BMP, TIFF and WebP headers (through Pillow, which decodes nothing on opening), NPY and NPZ
    array headers and NIfTI headers are read; an image of another mode is decoded once for its shape.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.fromarray(np.zeros((3, 5), np.uint8)).save(path)
    >>> file_shape(path)
    (3, 5)
    """
    file = _as_file(path)
    kind = _readable_kind(file)
    try:
        with file.open(whole=kind == "npz") as stream:
            if kind in ("npy", "npz"):
                if kind == "npz":
                    with np.load(stream, allow_pickle=False) as data, data.zip.open(_one_array(data, file) + ".npy") as member:
                        shape = _npy_header_shape(member)
                else:
                    shape = _npy_header_shape(stream)
                if shape is not None:
                    check_pixels(_pixels(shape), file.location)
                    return shape
            elif kind in ("nifti", "nifti-gz"):
                return nifti_shape(stream, kind == "nifti-gz", file.location)
            else:
                from PIL import Image

                with Image.open(stream, formats=[_PILLOW[kind]]) as image:
                    check_image(image, file.location)
                    if image.mode in _FLAT_MODES:  # one channel, or refused when decoded
                        return (image.height, image.width)
    except PredictionFormatError:
        raise
    except Exception as err:  # any reader's failure on a damaged file
        raise PredictionFormatError(f"cannot read prediction {file.location}: {err}.") from err
    return decode(file, {}).shape


def list_folder(folder: Path, name: str = "predictions") -> tuple[list[PredictionFile], list[tuple[str, str]]]:
    """The files in ``folder`` (and its subfolders) that can be predictions, and the others with why each
    is ignored. Hidden files and ``__MACOSX`` are skipped.

    Symbolic links are followed inside the folder only: a link that leads outside it (or nowhere) and could
    be a prediction is refused, so that what is scored is what the folder holds; links to folders are not
    followed.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.png").write_bytes(b""), (folder / "notes.txt").write_bytes(b"")
    >>> files, ignored = list_folder(folder)
    >>> [f.relative for f in files], ignored
    (['a.png'], [('notes.txt', 'not an image or array (.txt)')])
    """
    root = folder.resolve()
    files, ignored = [], []
    for top, dirs, names in os.walk(folder):
        here = Path(top)
        for d in [d for d in dirs if (here / d).is_symlink()]:
            ignored.append(((here / d).relative_to(folder).as_posix(), "a link to a folder (not followed)"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX" and not (here / d).is_symlink())
        for file_name in sorted(n for n in names if not n.startswith(".")):
            path, relative = here / file_name, (here / file_name).relative_to(folder).as_posix()
            if candidate_stem(file_name) is None:
                ignored.append((relative, f"not an image or array ({Path(file_name).suffix.lower()})"))
                continue
            if path.is_symlink():
                target = path.resolve()
                if not (target.is_relative_to(root) and target.is_file()):
                    raise PredictionFormatError(
                        f"{name}: {path} is a symbolic link to {target}, "
                        f"{'outside the predictions folder' if target.exists() else 'which does not exist'}; links "
                        "leading outside are refused so that what is scored is what the folder holds: copy the file in.")
            files.append(PredictionFile.on_disk(path, relative))
    return sorted(files, key=lambda f: f.relative), ignored


def find_files(folder: Path, case_ids: Sequence[str] | None, match: Callable[[str], str | None] | None,
               name: str) -> FoundCases:
    """The prediction file of each case id in ``folder`` (read later, in threads); see :func:`match_files`.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "case1_pred.png").write_bytes(b"\\x89PNG\\r\\n\\x1a\\n"), (folder / "notes.txt").write_bytes(b"")
    >>> found = find_files(folder, None, None, "predictions")
    >>> {c: p.name for c, p in found.items()}, found.ignored
    ({'case1': 'case1_pred.png'}, [('notes.txt', 'not an image or array (.txt)')])
    """
    return match_files(*list_folder(folder, name), case_ids, match, name)


def match_files(files: Sequence[PredictionFile], ignored: Sequence[tuple[str, str]], case_ids: Sequence[str] | None,
                match: Callable[[str], str | None] | None, name: str) -> FoundCases:
    """Each case's file among ``files`` (their bytes sniffed, in threads), with what was ignored and why.

    ``case_ids`` are taken as they are; other stems go through ``match``, else lose a common suffix such as
    ``_pred``. A file without a suffix is a prediction when its bytes are one. Files of a refused format
    (JPEG data, whatever the name) and two files for one case are refused.
    """
    kinds = map_in_threads(lambda f: f.kind, files)
    known = set(case_ids or ())
    found, skipped, refused = FoundCases(), list(ignored), []
    for file, kind in zip(files, kinds):
        stem = candidate_stem(file.name)
        if stem == file.name and kind is None:
            skipped.append((file.relative, "not an image or array"))
            continue
        if refusal(kind, file.location, _suffix(file.name)):
            refused.append(file)
            continue
        case_id = stem if stem in known else (match(stem) if match else None) or _COMMON_SUFFIXES.sub("", stem)
        if case_id in found:
            raise UnknownCasesError(f"{name}: {found[case_id].relative} and {file.relative} are both predictions for "
                                    f"case {case_id}; keep one.")
        found[case_id] = file
    if refused:
        others = f" ({len(refused)} such files: {preview([f.relative for f in refused], 3)})" if len(refused) > 1 else ""
        raise PredictionFormatError(f"{name}: {refusal(refused[0].kind, refused[0].location, _suffix(refused[0].name))}"
                                    f"{others}")
    found.ignored = skipped
    return found


def candidate_stem(file_name: str) -> str | None:
    """The name of a file that can be a prediction, less its suffix (the whole name when it has none), or
    ``None`` for another file type.

    Examples
    --------
    >>> candidate_stem("a.nii.gz"), candidate_stem("a.JPG"), candidate_stem("case7"), candidate_stem("a.txt")
    ('a', 'a', 'case7', None)
    """
    lower = file_name.lower()
    suffix = next((s for s in SUFFIXES + REFUSED_SUFFIXES if lower.endswith(s)), None)
    if suffix is not None:
        return file_name[: -len(suffix)]
    return file_name if not Path(file_name).suffix else None


def _as_file(path: Path | PredictionFile) -> PredictionFile:
    return path if isinstance(path, PredictionFile) else PredictionFile.on_disk(Path(path))


def _readable_kind(file: PredictionFile) -> str:
    kind = file.kind
    refused = refusal(kind, file.location, _suffix(file.name))
    if refused:
        raise PredictionFormatError(refused)
    if kind is None:
        raise PredictionFormatError(f"cannot read prediction {file.location}: its bytes are none of the formats "
                                    "read (PNG, GIF, BMP, TIFF, lossless WebP, NPY, NPZ, NIfTI); save it as PNG or NPY.")
    return kind


def _suffix(file_name: str) -> str:
    lower = file_name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else PurePosixPath(lower).suffix


def _one_array(data: Any, file: PredictionFile) -> str:
    if len(data.files) != 1:
        raise PredictionFormatError(f"{file.location}: an .npz prediction must hold one array, it holds {data.files}.")
    return data.files[0]


def _pixels(shape: tuple[int, ...] | None) -> int:
    """Pixels of the label map an array of ``shape`` holds (its two largest axes)."""
    return int(np.prod(sorted(shape)[-2:], dtype=np.int64)) if shape else 0


def _npy_header_shape(file: Any) -> tuple[int, ...] | None:
    """The shape in an NPY header (formats 1.0 and 2.0), or ``None`` for another format."""
    version = np.lib.format.read_magic(file)
    if version not in ((1, 0), (2, 0)):
        return None
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return tuple(read(file)[0])
