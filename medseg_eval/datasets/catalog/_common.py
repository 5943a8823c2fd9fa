"""Helpers shared by the builders: find the release's folders, read its files, say what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..canonical import CaseRecord, image_bytes
from ..errors import SourceFileMissingError, SourceFormatError


def find_folder(roots: Sequence[Path], name: str, *, required: bool = True) -> Path | None:
    """The folder ``name`` in one of ``roots``: the root itself, a child, or a grandchild.

    Releases unpack with or without a top folder, so both ``--source parent`` and
    ``--source parent/<name>`` are accepted.
    """
    for root in roots:
        if root.name == name and root.is_dir():
            return root
        for candidate in (root / name, *root.glob(f"*/{name}")):
            if candidate.is_dir():
                return candidate
    if required:
        where = ", ".join(str(r) for r in roots)
        raise SourceFileMissingError(
            f"folder {name!r} of the official release not found in {where}. Pass --source the folder "
            f"that holds {name}/ (or the release's archive)."
        )
    return None


def require(path: Path) -> Path:
    """``path`` if it exists, else :class:`SourceFileMissingError` naming it."""
    if not path.exists():
        raise SourceFileMissingError(f"{path} is missing from the release; re-download it or restore the file.")
    return path


def read_mask(path: Path, mode: str = "L") -> np.ndarray:
    """A mask file as a uint8 array: grey levels (``"L"``: palette and RGB converted by luma) or ``"RGB"``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(require(path)) as image:
            return np.asarray(image.convert(mode))
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise SourceFormatError(f"cannot read mask {path}: {err}. Re-download the release; the file is corrupt.") from err


def binarize(gray: np.ndarray, threshold: int = 128) -> np.ndarray:
    """Foreground where the grey level is at least ``threshold`` (JPEG masks are not exactly 0/255)."""
    return (gray >= threshold).astype(np.uint8)


def binary_case(case_id: str, image: Path | None, mask: Path) -> CaseRecord:
    """The case of an image (``None``: masks only) and its 0/255 mask, binarized at 128."""
    return CaseRecord(case_id=case_id, image=optional_image(image), mask=binarize(read_mask(mask)))


def optional_image(path: Path | None) -> bytes | None:
    """The image as stored canonically, or ``None`` for a masks-only build."""
    return None if path is None else image_bytes(path)


def split_list(path: Path) -> list[str]:
    """Ids listed one per line (blank lines ignored)."""
    return [line.strip() for line in require(path).read_text().splitlines() if line.strip()]
