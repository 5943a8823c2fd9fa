"""One prediction's values as an integer label map: the checks and conversions, each rule recorded."""

from __future__ import annotations

from typing import Any

import numpy as np

from .prediction_errors import PredictionFormatError, PredictionLabelError, PredictionShapeError

# Values counted at a time by distinct_values (counting widens them to 8 bytes each).
_BLOCK = 1 << 20


def to_labels(value: Any, case_id: str, num_classes: int, rules: dict[str, str], name: str) -> np.ndarray:
    """One prediction (labels ``[H, W]`` or scores ``[C, H, W]``) as an integer label map ``[H, W]``.

    The rules applied (argmax, threshold, {0, 255} -> {0, 1}) are added to ``rules``; values that are
    not class ids raise :class:`PredictionLabelError` naming ``case_id``.

    Examples
    --------
    >>> import numpy as np
    >>> rules = {}
    >>> to_labels(np.array([[0, 255]]), "a", 2, rules, "predictions").tolist(), list(rules)
    ([[0, 1]], ['values_0_255'])
    """
    array = to_array(value, f"{name} for {case_id}")
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        raise PredictionShapeError(f"{name} for {case_id}: an RGB image {array.shape}; save label maps as one "
                                   "channel of class ids.")
    if array.ndim == 3 and array.shape[-1] in (1, 2) and array.shape[0] > 4:
        raise PredictionShapeError(f"{name} for {case_id}: channels last {array.shape}; give a label map [H, W] "
                                   "(e.g. `mask[..., 0]`) or scores channels first [C, H, W].")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise PredictionLabelError(f"{name} for {case_id}: holds NaN or infinite values; fix the model output before "
                                   "scoring.")
    if array.ndim == 3:
        if array.shape[0] == 1:
            array = array[0]  # labels with a channel axis, or one channel of foreground probabilities
            if num_classes == 2 and np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
                if array.min() < 0 or array.max() > 1:
                    raise PredictionLabelError(
                        f"{name} for {case_id}: one-channel scores must be probabilities in [0, 1], but range from "
                        f"{array.min():.3g} to {array.max():.3g}; apply a sigmoid to logits first.")
                rules["threshold"] = "one-channel scores: foreground where > 0.5"
                array = (array > 0.5).astype(np.uint8)
        else:
            if array.shape[0] != num_classes:
                raise PredictionShapeError(f"{name} for {case_id}: {array.shape[0]} score channels, but the dataset "
                                           f"has {num_classes} classes.")
            rules["argmax"] = "class scores [C, H, W]: argmax over C"
            array = array.argmax(0)
    if array.ndim != 2:
        raise PredictionShapeError(f"{name} for {case_id}: expected labels [H, W] or scores [C, H, W], got {array.shape}.")
    if np.issubdtype(array.dtype, np.floating):
        if not np.array_equal(array, np.round(array)):
            raise PredictionLabelError(
                f"{name} for {case_id}: fractional values (e.g. {array[array != np.round(array)].flat[0]:.3g}); "
                "give class ids, or probabilities as [C, H, W] / [N, C, H, W] so the rule is explicit.")
    elif not np.issubdtype(array.dtype, np.integer):
        raise PredictionLabelError(f"{name} for {case_id}: dtype {array.dtype} holds no class ids.")
    # Linear passes (min, max, counts), not np.unique's sort, which took a third of the time to score a folder.
    if num_classes == 2 and array.size and array.max() == 255 and only_0_and_255(array):
        rules["values_0_255"] = "binary masks saved as {0, 255} read as {0, 1}"
        array = (array == 255).view(np.uint8)  # NumPy's bools are the bytes 0 and 1: no second copy
    elif array.size and (array.min() < 0 or array.max() >= num_classes):
        bad = [int(v) for v in distinct_values(array[(array < 0) | (array >= num_classes)])]
        raise PredictionLabelError(
            f"{name} for {case_id}: values {bad[:5]} are not class ids 0..{num_classes - 1}. "
            + ("A binary mask saved as {0, 255} is accepted; other scalings are not." if num_classes == 2 else ""))
    return np.ascontiguousarray(array, dtype=np.uint8 if num_classes <= 256 else np.int64)


def label_shape(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """The size ``(H, W)`` of the label map :func:`to_labels` makes of an array of ``shape``, or ``None`` when
    it refuses that shape (then converting the array says why).

    Examples
    --------
    >>> label_shape((4, 5)), label_shape((3, 4, 5)), label_shape((40, 50, 3)), label_shape((40, 50, 1))
    ((4, 5), (4, 5), None, None)
    """
    if len(shape) == 3 and not (shape[-1] in (1, 2, 3, 4) and shape[0] > 4):
        return (int(shape[1]), int(shape[2]))
    return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None


def only_0_and_255(array: np.ndarray) -> bool:
    """Whether every value of ``array`` is 0 or 255 (a binary mask saved for viewing), in two linear passes.

    Examples
    --------
    >>> import numpy as np
    >>> only_0_and_255(np.array([0, 255, 255])), only_0_and_255(np.array([0, 255, -255]))
    (True, False)
    """
    return bool(np.count_nonzero(array) == np.count_nonzero(array == 255))


def distinct_values(array: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``array``, as ``np.unique`` gives them.

    Integers within a range no wider than the array's size (every label map) are counted in
    linear time, a block at a time so that memory stays small; other values are sorted.

    Examples
    --------
    >>> import numpy as np
    >>> distinct_values(np.array([[3, 0], [3, -2]], dtype=np.int8)).tolist()
    [-2, 0, 3]
    """
    array = np.asarray(array)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer) or array.size == 0:
        return np.unique(array)
    lo, hi = int(array.min()), int(array.max())
    wide = np.iinfo(np.int64)
    if hi - lo > max(array.size, 256) or lo < wide.min or hi > wide.max:
        return np.unique(array)
    flat = array.reshape(-1)
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for start in range(0, flat.size, _BLOCK):
        counts += np.bincount(flat[start:start + _BLOCK].astype(np.int64) - lo, minlength=counts.size)
    return (np.flatnonzero(counts) + lo).astype(array.dtype)


def to_array(value: Any, name: str) -> np.ndarray:
    """``value`` (array, tensor, PIL image, nested lists) as a NumPy array of numbers, or an error naming ``name``.

    Examples
    --------
    >>> to_array([[0, 1]], "a").tolist()
    [[0, 1]]
    """
    if isinstance(value, np.ma.MaskedArray):
        raise PredictionFormatError(f"{name}: a masked array, whose mask would be ignored; fill it first "
                                    "(`.filled(0)`).")
    if type(value).__module__.startswith("torch"):
        try:
            value = value.detach().cpu()
            if str(value.dtype) == "torch.bfloat16":
                value = value.float()  # NumPy has no bfloat16; float32 holds its values exactly
            value = value.numpy()
        except (TypeError, RuntimeError, NotImplementedError) as err:  # sparse, nested, meta, quantized, float8
            raise PredictionFormatError(f"{name}: a tensor NumPy cannot read ({err}); give a dense tensor of class "
                                        "ids or scores, e.g. `.to_dense()` or `.float()`.") from err
    elif type(value).__module__.startswith("PIL."):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        try:
            value = np.asarray(value)
        except Exception as err:
            raise PredictionFormatError(f"{name}: cannot turn a {type(value).__name__} into an array ({err}).") from err
    if value.dtype == object or not (value.dtype == np.bool_ or np.issubdtype(value.dtype, np.number)):
        raise PredictionFormatError(f"{name}: expected numbers, got dtype {value.dtype}.")
    return value
