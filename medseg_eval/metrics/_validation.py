"""Input checks shared by every metric: one validator per concern, each with its own exception."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .conventions import CONVENTIONS, COUNTS, LESION_METRICS, METRIC_ALIASES, METRICS


class MetricInputError(ValueError):
    """Base class of every bad-input error raised by :mod:`medseg_eval.metrics`."""


class ShapeMismatchError(MetricInputError):
    """Prediction, ground truth, region of interest or spacing do not have matching shapes."""


class LabelError(MetricInputError):
    """A label map holds values that are not class ids ``0..num_classes-1``."""


class SpacingError(MetricInputError):
    """The pixel spacing is not one positive ``(sy, sx)`` pair or one pair per case."""


class OptionError(MetricInputError):
    """An option (metric name, convention, percentile, tolerance, num_classes) is invalid."""


ArrayLike = Any  # torch.Tensor | numpy.ndarray; kept loose so numpy users need no torch types


def as_label_tensor(x: ArrayLike, name: str, num_classes: int) -> torch.Tensor:
    """Check one label map batch and return it as a tensor ``[B, H, W]`` of class ids.

    Accepts bool, any integer dtype, or floats holding whole numbers (as images saved by other
    tools often are); everything else is refused rather than rounded. Integer input keeps its
    dtype (no full-size int64 copy); floats become int64.
    """
    if isinstance(x, np.ndarray):
        if not (x.dtype == np.bool_ or np.issubdtype(x.dtype, np.number)):
            raise LabelError(f"`{name}` must be a numeric or bool array, but got dtype {x.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise LabelError(f"`{name}` must be a torch.Tensor or numpy.ndarray, but got {type(x).__name__}.")
    if x.dtype in (torch.uint16, torch.uint32, torch.uint64):
        # Torch has few kernels for wide unsigned types; uint64 labels past int64 wrap negative and are refused.
        x = x.to(torch.int32 if x.dtype == torch.uint16 else torch.int64)
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ShapeMismatchError(
            f"`{name}` must be a label map [H, W] or a batch [B, H, W], but got shape {tuple(x.shape)}. "
            "For probabilities [B, C, H, W], take the argmax over C first."
        )
    if min(x.shape) == 0:
        raise ShapeMismatchError(f"`{name}` is empty (shape {tuple(x.shape)}).")
    if x.is_complex():
        raise LabelError(f"`{name}` must hold class ids, but got complex dtype {x.dtype}.")
    if x.is_floating_point():
        if torch.isnan(x).any():
            where = torch.isnan(x).flatten(1).any(1).nonzero().flatten().tolist()
            raise LabelError(f"`{name}` contains NaN (cases at batch index {where[:5]}); masks must be class ids.")
        fractional = x != torch.round(x)
        if fractional.any():
            value = x[fractional][0].item()
            raise LabelError(
                f"`{name}` must hold whole-number class ids, but got {value!r}. Probabilities need a "
                "declared rule first, e.g. `(prob >= 0.5)` or `logits.argmax(1)`."
            )
        x = x.long()
    if x.dtype == torch.bool:
        x = x.view(torch.uint8)
    low, high = (int(v) for v in torch.aminmax(x))
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        where = ((x < 0) | (x >= num_classes)).flatten(1).any(1).nonzero().flatten().tolist()
        hint = " Masks saved as 0/255 need mapping to 0/1 first." if high == 255 else ""
        raise LabelError(
            f"`{name}` holds label {bad} (cases at batch index {where[:5]}), but labels must lie in "
            f"0..{num_classes - 1} for num_classes={num_classes}.{hint}"
        )
    return x


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise OptionError(
            f"Expected `num_classes` to be an integer >= 2 (background plus at least one class), "
            f"but got {num_classes!r}."
        )
    return int(num_classes)


def check_same_shape(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ShapeMismatchError(
            f"`pred` has shape {tuple(pred.shape)} but `target` has shape {tuple(target.shape)}; they must "
            "match. Resize the prediction to the ground truth's resolution (nearest neighbour)."
        )


def as_roi(roi: ArrayLike | None, shape: torch.Size, device: torch.device) -> torch.Tensor | None:
    """Return the region of interest as bool ``[B, H, W]`` (a single ``[H, W]`` applies to all)."""
    if roi is None:
        return None
    if isinstance(roi, np.ndarray):
        roi = np.ascontiguousarray(roi)  # torch takes no negative strides (a flipped view)
    roi = torch.as_tensor(roi, device=device)
    if roi.dtype != torch.bool:
        bad = ~((roi == 0) | (roi == 1))
        if bad.any():
            where = bad.flatten(1).any(1).nonzero().flatten().tolist() if roi.ndim == 3 else "all"
            raise LabelError(
                f"`roi` must be boolean (or 0/1), but holds other values (cases at batch index {where}); "
                "threshold it first, e.g. `roi > 0`."
            )
    if roi.ndim == 2:
        roi = roi.unsqueeze(0).expand(shape[0], -1, -1)
    if roi.shape != shape:
        raise ShapeMismatchError(
            f"`roi` has shape {tuple(roi.shape)}, but must be [H, W] or [B, H, W] matching the masks {tuple(shape)}."
        )
    return roi.bool()


def as_spacing(spacing: ArrayLike | Sequence[float] | None, batch: int) -> torch.Tensor:
    """Return spacing as float64 ``[B, 2]`` on the CPU (it is tiny and feeds CPU-side tables)."""
    if spacing is None:
        return torch.ones(batch, 2, dtype=torch.float64)
    try:
        s = torch.as_tensor(np.asarray(spacing if not isinstance(spacing, torch.Tensor) else spacing.cpu(),
                                       dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise SpacingError(f"`spacing` must be (sy, sx) or an array [B, 2] of numbers, but got {spacing!r}.") from err
    if s.shape == (2,):
        s = s.expand(batch, 2)
    if s.shape != (batch, 2):
        raise SpacingError(
            f"`spacing` must be one (sy, sx) pair or one pair per case, shape [{batch}, 2], but got shape "
            f"{tuple(s.shape)}."
        )
    bad = ~(torch.isfinite(s) & (s > 0)).all(1)
    if bad.any():
        where = bad.nonzero().flatten().tolist()
        raise SpacingError(
            f"`spacing` must be positive and finite (in mm, or 1 per pixel), but case(s) at batch index "
            f"{where[:5]} have {s[where[0]].tolist()}."
        )
    return s.contiguous()


def check_options(metrics: Sequence[str], convention: str, percentile: float, tolerance: float) -> tuple[float, float]:
    """Check the options of a metrics call; return ``percentile`` and ``tolerance`` as Python floats
    (a NumPy float32 would otherwise carry float32 arithmetic into the percentile's rank)."""
    if isinstance(metrics, str):
        raise OptionError(f"`metrics` must be a list of names such as ['dice', 'hd95'], but got the string {metrics!r}.")
    known = set(METRICS) | set(METRIC_ALIASES) | set(LESION_METRICS) | set(COUNTS)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise OptionError(f"Unknown metric(s) {unknown}; choose from {list(METRICS) + list(LESION_METRICS)} "
                          f"(or the counts {list(COUNTS)}).")
    if convention not in CONVENTIONS:
        raise OptionError(f"Unknown convention {convention!r}; choose from {list(CONVENTIONS)}.")
    if not (_is_real(percentile) and 0 <= percentile <= 100):
        raise OptionError(f"Expected `percentile` in [0, 100], but got {percentile!r}.")
    if not (_is_real(tolerance) and math.isfinite(tolerance) and tolerance >= 0):
        raise OptionError(f"Expected `tolerance` to be a finite distance >= 0 in spacing units, but got {tolerance!r}.")
    return float(percentile), float(tolerance)


def _is_real(x: Any) -> bool:
    """A real number (Python or NumPy, not bool), as options accept."""
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))
