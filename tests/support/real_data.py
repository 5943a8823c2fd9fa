"""Real masks from ``../shared/data`` (or ``$MEDSEG_EVAL_TEST_DATA``), in their official layouts.

DRIVE's second observer is a real "prediction" nobody here wrote: it is scored against the first
observer inside the field of view. Tests using these skip, with the reason, where the data is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(os.environ.get("MEDSEG_EVAL_TEST_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))


def _image(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def require(relative: str) -> Path:
    path = ROOT / relative
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set MEDSEG_EVAL_TEST_DATA to the shared data folder)")
    return path


def drive_test_pairs() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """``(case_id, second observer, first observer, field of view)`` for DRIVE's 20 test images."""
    test = require("drive/DRIVE/test")
    pairs = []
    for first in sorted((test / "1st_manual").glob("*_manual1.gif")):
        case = first.name.split("_")[0]
        second = _image(test / "2nd_manual" / f"{case}_manual2.gif") > 0
        fov = _image(test / "mask" / f"{case}_test_mask.gif") > 0
        pairs.append((case, second, _image(first) > 0, fov))
    return pairs


def kvasir_masks(count: int | None = None, ids: list[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """The first ``count`` Kvasir-SEG masks (sorted by id), or those of ``ids``, binarized at 128 as JPEG masks need."""
    masks = require("kvasir-seg/Kvasir-SEG/masks")
    paths = [masks / f"{i}.jpg" for i in ids] if ids is not None else sorted(masks.glob("*.jpg"))[:count]
    out = []
    for path in paths:
        image = _image(path)
        out.append((path.stem, (image if image.ndim == 2 else image[..., 0]) >= 128))
    return out
