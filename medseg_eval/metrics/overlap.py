"""Overlap metrics from per-case x class confusion counts.

The sufficient statistics are the four counts per case and class; every overlap metric (and the
pooled, dataset-level variants a caller builds by summing counts over cases) derives from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .conventions import EmptyPolicy


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts per case and foreground class, float64 tensors ``[B, K]``.

    ``tn`` counts pixels inside the region of interest only.
    """

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor


def confusion_counts(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, roi: torch.Tensor | None = None
) -> ConfusionCounts:
    """Count true/false positives/negatives per case and foreground class in one pass.

    Parameters
    ----------
    pred, target
        Validated integer label maps ``[B, H, W]`` on one device.
    num_classes
        Number of classes including background.
    roi
        Optional bool ``[B, H, W]``; pixels outside it are not counted.

    Examples
    --------
    >>> p = torch.tensor([[[0, 1], [1, 1]]]); t = torch.tensor([[[0, 1], [0, 1]]])
    >>> c = confusion_counts(p, t, 2)
    >>> c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()
    ([[2.0]], [[1.0]], [[0.0]], [[1.0]])
    """
    batch = pred.shape[0]
    c = num_classes
    # int32 halves the memory traffic of int64; the index stays below batch * c * c.
    index_dtype = torch.int32 if batch * c * c < 2**31 else torch.int64
    case = torch.arange(batch, device=pred.device, dtype=index_dtype).view(batch, 1, 1)
    index = (case * c + pred.to(index_dtype)) * c + target.to(index_dtype)
    index = index[roi] if roi is not None else index.flatten()
    matrix = torch.bincount(index, minlength=batch * c * c).view(batch, c, c).double()
    tp = matrix.diagonal(dim1=1, dim2=2)
    predicted = matrix.sum(2)
    actual = matrix.sum(1)
    total = matrix.sum((1, 2)).unsqueeze(1)
    fp, fn = predicted - tp, actual - tp
    tn = total - tp - fp - fn
    return ConfusionCounts(tp[:, 1:], fp[:, 1:], fn[:, 1:], tn[:, 1:])


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # Counts are whole numbers, so clamping changes only 0/0, which the empty-mask policy decides.
    return num / den.clamp_min(1)


def overlap_metric(name: str, counts: ConfusionCounts, empty: EmptyPolicy) -> torch.Tensor:
    """One overlap metric ``[B, K]`` from confusion counts, with the empty-mask policy applied.

    Definitions: Dice ``2tp / (2tp + fp + fn)``, IoU ``tp / (tp + fp + fn)``, precision
    ``tp / (tp + fp)``, recall ``tp / (tp + fn)``, specificity ``tn / (tn + fp)``.
    Dice, IoU, precision and recall look at the foreground: empty means no foreground pixel of the
    class. Specificity looks at the background, so "empty" there means the class covers the whole
    region of interest.

    Examples
    --------
    >>> c = ConfusionCounts(*(torch.tensor([[v]], dtype=torch.float64) for v in (2.0, 1.0, 0.0, 1.0)))
    >>> overlap_metric("dice", c, EmptyPolicy()).item()
    0.8
    """
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    if name == "specificity":
        values = _ratio(tn, tn + fp)
        pred_empty, target_empty = (tn + fn) == 0, (tn + fp) == 0
    else:
        values = {
            "dice": lambda: _ratio(2 * tp, 2 * tp + fp + fn),
            "iou": lambda: _ratio(tp, tp + fp + fn),
            "precision": lambda: _ratio(tp, tp + fp),
            "recall": lambda: _ratio(tp, tp + fn),
        }[name]()
        pred_empty, target_empty = (tp + fp) == 0, (tp + fn) == 0
    shape = values.shape
    flat = empty.apply(
        name, values.flatten(), pred_empty.flatten(), target_empty.flatten(), torch.zeros_like(values.flatten())
    )
    return flat.view(shape)
