"""Prediction files: finding each case's file in a folder, its label map's size from its header, decoding it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .labels import distinct_values
from .prediction_errors import PredictionFormatError, UnknownCasesError, preview

#: File types read from a folder or zip (JPEG is refused: lossy compression changes labels).
SUFFIXES = (".png", ".gif", ".bmp", ".tif", ".tiff", ".npy", ".npz", ".nii.gz", ".nii")
# Pillow modes whose pixels read_file gives as one value each (RGB: the grey of a grey image, or refused).
_FLAT_MODES = ("1", "L", "P", "I", "F", "I;16", "I;16B", "I;16L", "RGB", "RGBA")
# Suffixes people append to a case id when saving a mask; stripped when matching file names.
_COMMON_SUFFIXES = re.compile(r"(_(pred|prediction|mask|seg|segmentation|label|labels|gt))+$", re.IGNORECASE)


def read_file(path: Path) -> np.ndarray:
    """One prediction file as an array (images as stored: palette indices, grey levels).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "a.npy"
    >>> np.save(path, np.eye(2, dtype=np.uint8))
    >>> read_file(path).tolist()
    [[1, 0], [0, 1]]
    """
    suffix = _suffix(path)
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if len(data.files) != 1:
                    raise PredictionFormatError(f"{path}: an .npz prediction must hold one array, it holds {data.files}.")
                return data[data.files[0]]
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            data = np.asarray(nib.load(path).dataobj)
            return (data.reshape(data.shape[:2]) if data.ndim == 3 and data.shape[2] == 1 else data).T
        from PIL import Image

        with Image.open(path) as image:
            if image.mode == "P":
                return _palette_labels(image)
            if image.mode in ("RGB", "RGBA"):
                rgb = np.asarray(image)
                if (rgb[..., :3] == rgb[..., :1]).all():
                    return rgb[..., 0]  # grey saved as RGB
                return rgb
            return np.asarray(image)
    except PredictionFormatError:
        raise
    except Exception as err:  # any reader's failure on a damaged file
        raise PredictionFormatError(f"cannot read prediction {path}: {err}.") from err


def file_shape(path: Path) -> tuple[int, ...]:
    """The shape of the array :func:`read_file` gives for ``path``, read from the file's header.

    PNG, GIF, BMP and TIFF headers (through Pillow, which decodes nothing on opening), NPY and NPZ
    array headers and NIfTI headers are read; an image of another mode (e.g. grey with alpha) is
    decoded once for its shape.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> path = Path(tempfile.mkdtemp()) / "a.png"
    >>> Image.fromarray(np.zeros((3, 5), np.uint8)).save(path)
    >>> file_shape(path)
    (3, 5)
    """
    suffix = _suffix(path)
    try:
        if suffix == ".npy":
            with open(path, "rb") as file:
                shape = _npy_header_shape(file)
            return shape if shape is not None else read_file(path).shape
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if len(data.files) != 1:
                    raise PredictionFormatError(f"{path}: an .npz prediction must hold one array, it holds {data.files}.")
                with data.zip.open(data.zip.namelist()[0]) as member:
                    shape = _npy_header_shape(member)
            return shape if shape is not None else read_file(path).shape
        if suffix in (".nii", ".nii.gz"):
            import nibabel as nib

            shape = nib.load(path).shape
            return tuple(reversed(shape[:2] if len(shape) == 3 and shape[2] == 1 else shape))
        from PIL import Image

        with Image.open(path) as image:
            if image.mode in _FLAT_MODES:  # grey saved as RGB is read as one channel; other RGB is refused later
                return (image.height, image.width)
    except PredictionFormatError:
        raise
    except Exception as err:  # any reader's failure on a damaged file
        raise PredictionFormatError(f"cannot read prediction {path}: {err}.") from err
    return read_file(path).shape


def find_files(folder: Path, case_ids: Sequence[str] | None, match: Callable[[str], str | None] | None,
                name: str) -> dict[str, Path]:
    """The prediction file of each case id in ``folder`` (read later, in threads).

    ``case_ids`` are taken as they are; other stems go through ``match``, else lose a common suffix
    such as ``_pred``. JPEG files and two files for one case are refused.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "case1_pred.png").write_bytes(b""), (folder / "notes.txt").write_bytes(b"")
    >>> {c: p.name for c, p in find_files(folder, None, None, "predictions").items()}
    {'case1': 'case1_pred.png'}
    """
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
             and "__MACOSX" not in p.parts]
    lossy = [p.name for p in files if p.suffix.lower() in (".jpg", ".jpeg")]
    if lossy:
        raise PredictionFormatError(f"{name}: JPEG files ({preview(lossy, 3)}) change labels through lossy compression; "
                                    "save predictions as PNG (or NPY).")
    readable = [p for p in files if any(p.name.lower().endswith(s) for s in SUFFIXES)]
    known = set(case_ids or ())
    found: dict[str, Path] = {}
    for path in readable:
        stem = path.name[: -len(next(s for s in SUFFIXES if path.name.lower().endswith(s)))]
        case_id = stem if stem in known else (match(stem) if match else None) or _COMMON_SUFFIXES.sub("", stem)
        if case_id in found:
            raise UnknownCasesError(f"{name}: {found[case_id].name} and {path.name} are both predictions for case "
                                    f"{case_id}; keep one.")
        found[case_id] = path
    return found



def _suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:]).lower() if path.name.lower().endswith(".nii.gz") else path.suffix.lower()


def _npy_header_shape(file: Any) -> tuple[int, ...] | None:
    """The shape in an NPY header (formats 1.0 and 2.0), or ``None`` for another format."""
    version = np.lib.format.read_magic(file)
    if version not in ((1, 0), (2, 0)):
        return None
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return tuple(read(file)[0])


def _palette_labels(image: Any) -> np.ndarray:
    """Labels of a palette image: its indices, unless its palette is grey and orders the grey levels
    differently from the indices (Pillow saves a black-and-white RGB image as a GIF with white at
    index 0): then what the image shows, its grey levels, is read."""
    indices = np.asarray(image)
    palette = np.asarray(image.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
    used = distinct_values(indices)
    if used.size == 0 or used.max() >= len(palette):
        return indices
    colours = palette[used]
    grey = (colours == colours[:, :1]).all()
    if grey and (np.diff(colours[:, 0].astype(int)) <= 0).any():
        return palette[:, 0][indices]
    return indices

