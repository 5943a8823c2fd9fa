"""Resolution: ground truth is scored at its canonical size; predictions of another size are refused,
unless the caller asks ``resize="nearest"``, which is recorded."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .predictions import PredictionShapeError, preview


def resized(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``mask`` resized to ``shape`` by nearest neighbour (``resize="nearest"``, checked before scoring); instance
    ids (int64 below :data:`~medseg_eval.instance_scoring.INSTANCE_ID_LIMIT`) go through PIL's 32-bit mode.

    Examples
    --------
    >>> resized(np.array([[0, 300], [7, 0]]), (4, 4))[::2, ::2].tolist()
    [[0, 300], [7, 0]]
    """
    from PIL import Image

    image = Image.fromarray(mask if mask.dtype == np.uint8 else mask.astype(np.int32))
    return np.asarray(image.resize(shape[::-1], Image.NEAREST)).astype(mask.dtype)


def check_shapes(pred_shapes: dict[str, tuple[int, int]], truth_shapes: dict[str, tuple[int, int]],
                 resize: str | None, hint: Callable[[str, tuple[int, int]], str]) -> dict[str, str]:
    """The rule recorded for ``resize`` (none when every size matches), or the error naming the cases
    (with ``hint(case_id, truth_shape)``'s explanation of the first, e.g. a transposed NIfTI file).

    Examples
    --------
    >>> check_shapes({"a": (4, 4)}, {"a": (4, 4)}, None, lambda c, s: "")
    {}
    >>> check_shapes({"a": (2, 2)}, {"a": (4, 4)}, "nearest", lambda c, s: "")["resize"]
    "nearest-neighbour resize to the ground truth's size (a)"
    """
    wrong = sorted(c for c, shape in pred_shapes.items() if shape != truth_shapes[c])
    if not wrong:
        return {}
    if resize is None:
        examples = ", ".join(f"{c} ({pred_shapes[c][0]}x{pred_shapes[c][1]} vs "
                             f"{truth_shapes[c][0]}x{truth_shapes[c][1]})" for c in wrong[:3])
        raise PredictionShapeError(
            f"{len(wrong)} prediction(s) differ in size from their ground truth: {examples}"
            f"{', ...' if len(wrong) > 3 else ''}.{hint(wrong[0], truth_shapes[wrong[0]])} Ground truth is scored at "
            'its canonical resolution: predict at that size, or pass resize="nearest" to resize the predictions '
            "(recorded).")
    return {"resize": f"nearest-neighbour resize to the ground truth's size ({preview(wrong, 3)})"}
