"""Input checks shared by every metric: one validator per concern, each with its own exception."""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import torch

from .conventions import (
    AGREEMENT_METRICS,
    CONVENTIONS,
    COUNTS,
    LESION_METRICS,
    METRIC_ALIASES,
    METRICS,
    TOPOLOGY_METRICS,
)
from .errors import LabelError, MetricInputError, OptionError, PercentileWarning, ShapeMismatchError, SpacingError

ArrayLike = Any  # torch.Tensor | numpy.ndarray; kept loose so numpy users need no torch types
Policy = TypeVar("Policy")


# Class ids of uint16 label maps; each class is a column of every result, so more would not fit anyway.
_MAX_CLASSES = 1 << 16
_LABEL_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.uint16,
                 torch.uint32, torch.uint64, torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Spacings outside this range square to 0 or inf in float64 (1e-300**2 == 0.0): no unit is that far off.
_SPACING_RANGE = (1e-100, 1e100)


def _dense_tensor(x: ArrayLike, name: str, error: type[MetricInputError]) -> torch.Tensor:
    """``x`` as a dense tensor, NumPy arrays of either byte order taken without a copy where possible."""
    if isinstance(x, np.ma.MaskedArray):
        region = "" if name == "roi" else ", or pass the region to score as `roi`"
        raise error(f"`{name}` is a masked array, whose mask would be ignored: fill it first "
                    f"(`{name}.filled(0)`){region}.")
    if isinstance(x, np.ndarray):
        if not (x.dtype == np.bool_ or np.issubdtype(x.dtype, np.number)):
            raise error(f"`{name}` must be a numeric or bool array, but got dtype {x.dtype}.")
        try:  # Torch takes neither big-endian data nor negative strides (a flipped view); np.require keeps 0-d as 0-d.
            x = torch.from_numpy(np.require(x, x.dtype.newbyteorder("="), "C"))
        except TypeError as err:  # e.g. longdouble, which torch has no type for
            raise error(f"`{name}` has dtype {x.dtype}, which torch cannot hold; cast it first, e.g. "
                        f"`{name}.astype(numpy.int64)`.") from err
    elif not isinstance(x, torch.Tensor):
        raise error(f"`{name}` must be a torch.Tensor or numpy.ndarray, but got {type(x).__name__}.")
    if x.layout != torch.strided or x.is_nested or x.is_quantized or x.device.type == "meta":
        kind = ("nested" if x.is_nested else "quantized" if x.is_quantized else "meta" if x.device.type == "meta"
                else str(x.layout))
        raise error(f"`{name}` must be a dense tensor holding data, but got a {kind} tensor; convert it first "
                    "(e.g. `.to_dense()`, `.dequantize()`).")
    return x


def _cases_with(flags: torch.Tensor) -> list[int]:
    """Batch indices of the cases of ``[B, H, W]`` flags that hold any, for error messages."""
    return flags.flatten(1).any(1).nonzero().flatten().tolist()


def _out_of_range(name: str, value: float, where: torch.Tensor, num_classes: int) -> LabelError:
    cases = _cases_with(where)
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    hint = " Masks saved as 0/255 need mapping to 0/1 first." if value == 255 else ""
    return LabelError(
        f"`{name}` holds label {value} (cases at batch index {cases[:5]}), but labels must lie in "
        f"0..{num_classes - 1} for num_classes={num_classes}.{hint}"
    )


def as_label_tensor(x: ArrayLike, name: str, num_classes: int) -> torch.Tensor:
    """Check one label map batch and return it as a tensor ``[B, H, W]`` of class ids.

    Accepts bool, any integer dtype, or floats holding whole numbers (as images saved by other
    tools often are); everything else is refused rather than rounded. Integer input keeps its
    dtype (no full-size int64 copy); floats become int64.
    """
    x = _dense_tensor(x, name, LabelError)
    if x.dtype not in _LABEL_DTYPES:
        raise LabelError(f"`{name}` must hold class ids (bool, integer or whole-number float), but got dtype {x.dtype}.")
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ShapeMismatchError(
            f"`{name}` must be a label map [H, W] or a batch [B, H, W], but got shape {tuple(x.shape)}. "
            "For probabilities [B, C, H, W], take the argmax over C first."
        )
    if min(x.shape) == 0:
        raise ShapeMismatchError(f"`{name}` is empty (shape {tuple(x.shape)}).")
    if x.dtype == torch.uint64:
        wrapped = x.view(torch.int64) < 0  # >= 2**63: would wrap negative in int64
        if wrapped.any():
            raise _out_of_range(name, int(x.view(torch.int64)[wrapped][0]) + 2**64, wrapped, num_classes)
    if x.dtype in (torch.uint16, torch.uint32, torch.uint64):
        # Torch has few kernels for wide unsigned types.
        x = x.to(torch.int32 if x.dtype == torch.uint16 else torch.int64)
    if x.is_floating_point():
        if torch.isnan(x).any():
            where = _cases_with(torch.isnan(x))
            raise LabelError(f"`{name}` contains NaN (cases at batch index {where[:5]}); masks must be class ids.")
        fractional = x != torch.round(x)
        if fractional.any():
            value = x[fractional][0].item()
            raise LabelError(
                f"`{name}` must hold whole-number class ids, but got {value!r}. Probabilities need a "
                "declared rule first, e.g. `(prob >= 0.5)` or `logits.argmax(1)`."
            )
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    # The range is checked before floats become int64, which would turn inf or 1e20 into -2**63.
    low, high = (v.item() for v in torch.aminmax(x))
    if low < 0 or high >= num_classes:
        raise _out_of_range(name, low if low < 0 else high, (x < 0) | (x >= num_classes), num_classes)
    return x.long() if x.is_floating_point() else x


def check_num_classes(num_classes: int) -> int:
    if (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
            or not 2 <= num_classes <= _MAX_CLASSES):
        raise OptionError(
            f"Expected `num_classes` to be an integer in 2..{_MAX_CLASSES} (background plus at least one "
            f"class), but got {num_classes!r}."
        )
    return int(num_classes)


def check_same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ShapeMismatchError(
            f"`pred` has shape {tuple(pred.shape)} but `target` has shape {tuple(target.shape)}; they must "
            "match. Resize the prediction to the ground truth's resolution (nearest neighbour)."
        )


def as_binary(x: ArrayLike, name: str) -> torch.Tensor:
    """``x`` as a dense tensor on its own device (NumPy: the CPU) holding only 0 and 1, or bool:
    anything else (probabilities, 0/255 masks) is refused rather than thresholded."""
    x = _dense_tensor(x, name, LabelError)
    if x.dtype != torch.bool:
        bad = ~((x == 0) | (x == 1))
        if bad.any():
            where = _cases_with(bad) if x.ndim == 3 else "all"
            raise LabelError(
                f"`{name}` must be boolean (or 0/1), but holds other values (cases at batch index {where}); "
                f"threshold it first, e.g. `{name} > 0`."
            )
    return x


def as_roi(roi: ArrayLike | None, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
    """Return the region of interest as bool ``[B, H, W]`` (a single ``[H, W]`` applies to all)."""
    if roi is None:
        return None
    roi = as_binary(roi, "roi").to(device)
    if roi.ndim == 2:
        roi = roi.unsqueeze(0).expand(shape[0], -1, -1)
    if roi.shape != shape:
        raise ShapeMismatchError(
            f"`roi` has shape {tuple(roi.shape)}, but must be [H, W] or [B, H, W] matching the masks {tuple(shape)}."
        )
    return roi.bool()


def as_sizes(sizes: ArrayLike | None, shape: torch.Size) -> torch.Tensor | None:
    """Return each case's own ``(height, width)`` as int64 ``[B, 2]`` on the CPU, each within the batch's
    ``[B, H, W]`` (None: every case fills it).

    Examples
    --------
    >>> as_sizes([[3, 4], [2, 5]], torch.Size([2, 3, 5])).tolist()
    [[3, 4], [2, 5]]
    """
    if sizes is None:
        return None
    raw = np.asarray(sizes.detach().cpu() if isinstance(sizes, torch.Tensor) else sizes)
    batch, height, width = shape
    if raw.shape != (batch, 2) or raw.dtype.kind not in "iu":
        raise ShapeMismatchError(f"`sizes` must be integers [B, 2] = [{batch}, 2] (each case's height and width), "
                                 f"but got shape {raw.shape}, dtype {raw.dtype}.")
    if (raw < 1).any() or (raw[:, 0] > height).any() or (raw[:, 1] > width).any():
        raise ShapeMismatchError(f"`sizes` must lie between 1 and the batch's {height} x {width}, but got "
                                 f"{raw.min(0).tolist()} to {raw.max(0).tolist()}.")
    return torch.from_numpy(raw.astype(np.int64))


def as_spacing(spacing: ArrayLike | Sequence[float] | None, batch: int) -> torch.Tensor:
    """Return spacing as float64 ``[B, 2]`` on the CPU (it is tiny and feeds CPU-side tables)."""
    if spacing is None:
        return torch.ones(batch, 2, dtype=torch.float64, device="cpu")
    if isinstance(spacing, np.ma.MaskedArray):
        raise SpacingError("`spacing` must not be a masked array: give every case its spacing.")
    try:
        raw = np.asarray(spacing.detach().cpu() if isinstance(spacing, torch.Tensor) else spacing)
    except (TypeError, ValueError, RuntimeError) as err:
        raise SpacingError(f"`spacing` must be (sy, sx) or an array [B, 2] of numbers, but got {spacing!r} "
                           f"({err}).") from err
    if raw.dtype.kind not in "iuf":  # not bool, str, complex or ragged object arrays
        raise SpacingError(f"`spacing` must be (sy, sx) or an array [B, 2] of numbers, but got {spacing!r} "
                           f"(dtype {raw.dtype}).")
    s = torch.from_numpy(raw.astype(np.float64))
    if s.shape in ((2,), (1, 2)):  # one pair for every case, as NumPy would broadcast it
        s = s.expand(batch, 2)
    if s.shape != (batch, 2):
        raise SpacingError(
            f"`spacing` must be one (sy, sx) pair (shape [2] or [1, 2]) or one pair per case, shape [{batch}, 2], "
            f"but got shape {tuple(s.shape)}."
        )
    low, high = _SPACING_RANGE
    bad = ~((s >= low) & (s <= high)).all(1)
    if bad.any():
        where = bad.nonzero().flatten().tolist()
        raise SpacingError(
            f"`spacing` must be positive and finite, between {low:g} and {high:g} (in mm, or 1 per pixel), "
            f"but case(s) at batch index {where[:5]} have {s[where[0]].tolist()}."
        )
    return s.contiguous()


def check_options(metrics: Sequence[str], convention: str, percentile: float, tolerance: float) -> tuple[float, float]:
    """Check the options of a metrics call; return ``percentile`` and ``tolerance`` as Python floats
    (a NumPy float32 would otherwise carry float32 arithmetic into the percentile's rank)."""
    if not isinstance(metrics, (Sequence, np.ndarray)) or isinstance(metrics, str) or not all(
            isinstance(m, str) for m in metrics):
        raise OptionError(f"`metrics` must be a list of names such as ['dice', 'hd95'], but got {metrics!r}.")
    named = METRICS + AGREEMENT_METRICS + TOPOLOGY_METRICS + LESION_METRICS
    known = set(named) | set(METRIC_ALIASES) | set(COUNTS)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise OptionError(f"Unknown metric(s) {unknown}; choose from {list(named)} (or the counts {list(COUNTS)}).")
    if convention not in CONVENTIONS:
        raise OptionError(f"Unknown convention {convention!r}; choose from {list(CONVENTIONS)}.")
    if not (is_real(percentile) and 0 <= percentile <= 100):
        raise OptionError(f"Expected `percentile` in [0, 100], but got {percentile!r}.")
    if 0 < percentile < 1 and "hd95" in metrics:
        # Legal, but almost always a fraction given for a percent: HD95 would silently become ~the minimum.
        warnings.warn(f"`percentile={percentile!r}` is a percent: HD95 becomes the {percentile!r}th percentile of "
                      f"the distances, close to their minimum. For the 95th percentile pass 95, not 0.95.",
                      PercentileWarning, stacklevel=_user_stacklevel())
    if not (is_real(tolerance) and math.isfinite(tolerance) and tolerance >= 0):
        raise OptionError(f"Expected `tolerance` to be a finite distance >= 0 in spacing units, but got {tolerance!r}.")
    return float(percentile), float(tolerance)


def as_policy(value: Policy | None, kind: type[Policy], name: str) -> Policy:
    """``value`` if it is a ``kind`` (e.g. :class:`EmptyPolicy`), a default ``kind()`` if None."""
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise OptionError(f"`{name}` must be None (the default) or a {kind.__name__} such as "
                          f"`{kind.__name__}()`, but got {value!r}.")
    return value


def _user_stacklevel() -> int:
    """The ``warnings.warn`` stacklevel of the innermost caller outside the package: the user's line, however
    deep the call went (``evaluate`` calls ``compute``), so that a warning shows there, once."""
    package = os.path.join(os.path.dirname(os.path.dirname(__file__)), "")  # medseg_eval/, as frames name files
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def is_real(x: Any) -> bool:
    """A real number (Python or NumPy, not bool), as options accept."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
