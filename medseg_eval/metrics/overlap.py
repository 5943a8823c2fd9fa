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

    @classmethod
    def of(cls, both: torch.Tensor, predicted: torch.Tensor, actual: torch.Tensor,
           counted: torch.Tensor) -> ConfusionCounts:
        """The counts from the pixels set in both masks, in the prediction and in the ground truth
        (integers ``[B, K]``), of ``counted`` pixels per case (``[B]``).

        Examples
        --------
        >>> c = ConfusionCounts.of(torch.tensor([[2]]), torch.tensor([[3]]), torch.tensor([[2]]), torch.tensor([4]))
        >>> c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()
        ([[2.0]], [[1.0]], [[0.0]], [[1.0]])
        """
        tp, fp, fn = both, predicted - both, actual - both
        tn = counted[:, None] - tp - fp - fn
        return cls(tp.double(), fp.double(), fn.double(), tn.double())

    @classmethod
    def cat(cls, parts: list[ConfusionCounts]) -> ConfusionCounts:
        """The counts of consecutive blocks of cases, in one."""
        return cls(*(torch.cat(column) for column in zip(*((c.tp, c.fp, c.fn, c.tn) for c in parts))))


def class_masks(pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None,
                num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One bool mask per foreground class, ``[B, K, H, W]``, restricted to the region of interest.

    ``pred`` and ``target`` hold validated class ids ``0..num_classes-1``; binary uint8 maps come
    back as bool views of themselves, without a pass over the pixels.

    Examples
    --------
    >>> p, t = class_masks(torch.tensor([[[0, 2]]]), torch.tensor([[[1, 2]]]), None, 3)
    >>> p.tolist(), t.tolist()
    ([[[[False, False]], [[False, True]]]], [[[[True, False]], [[False, True]]]])
    """
    if num_classes == 2 and pred.dtype == target.dtype == torch.uint8:
        # Bytes that are 0 or 1 are valid bools: the maps are their class-1 masks.
        pred_masks, target_masks = pred.view(torch.bool).unsqueeze(1), target.view(torch.bool).unsqueeze(1)
        if roi is not None:  # not in place: the views share memory with the caller's maps
            return pred_masks & roi.unsqueeze(1), target_masks & roi.unsqueeze(1)
        return pred_masks, target_masks
    # Compare in the maps' own dtype (no widening copy) when every class id fits in it.
    dtype = pred.dtype if num_classes - 1 <= torch.iinfo(pred.dtype).max else torch.int64
    classes = torch.arange(1, num_classes, device=pred.device, dtype=dtype).view(1, -1, 1, 1)
    pred_masks, target_masks = pred.unsqueeze(1) == classes, target.unsqueeze(1) == classes
    if roi is not None:
        pred_masks &= roi.unsqueeze(1)
        target_masks &= roi.unsqueeze(1)
    return pred_masks, target_masks


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, counted: torch.Tensor) -> ConfusionCounts:
    """Count true/false positives/negatives per case and class from one-hot masks.

    Parameters
    ----------
    pred, target
        Bool ``[B, K, H, W]``: one mask per foreground class (already restricted to the region of
        interest).
    counted
        ``[B]``: pixels counted per case (the image, or its region of interest); what the masks
        leave out of ``tp + fp + fn`` is true negative.

    Examples
    --------
    >>> p = torch.tensor([[[[0, 1], [1, 1]]]], dtype=torch.bool)
    >>> t = torch.tensor([[[[0, 1], [0, 1]]]], dtype=torch.bool)
    >>> c = confusion_counts(p, t, torch.tensor([4]))
    >>> c.tp.tolist(), c.fp.tolist(), c.fn.tolist(), c.tn.tolist()
    ([[2.0]], [[1.0]], [[0.0]], [[1.0]])
    """
    return ConfusionCounts.of(pixel_counts(pred & target), pixel_counts(pred), pixel_counts(target), counted)


def pixel_counts(masks: torch.Tensor) -> torch.Tensor:
    """Pixels set in each bool mask ``[..., H, W]``, as int64 ``[...]``.

    Torch's CPU reductions that widen (bool or bytes summed into int32 or int64) run tens of times
    slower than those in the input's own dtype, so the bytes are summed as bytes over blocks of at
    most 255 rows (a byte holds up to 255 ones), and only those few partial sums are widened.

    Examples
    --------
    >>> m = torch.zeros(2, 600, 3, dtype=torch.bool); m[1, :, 1:] = True
    >>> pixel_counts(m).tolist()
    [0, 1200]
    """
    rows = masks.view(torch.uint8)
    total = rows.new_zeros(rows.shape[:-2], dtype=torch.int64)
    for start in range(0, rows.shape[-2], 255):
        total += rows[..., start:start + 255, :].sum(-2, dtype=torch.uint8).sum(-1, dtype=torch.int64)
    return total


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    # Counts are whole numbers, so clamping changes only 0/0, which the empty-mask policy decides.
    return num / den.clamp_min(1)


def overlap_metric(name: str, counts: ConfusionCounts, empty: EmptyPolicy) -> torch.Tensor:
    """One overlap or agreement metric ``[B, K]`` from confusion counts, with the empty-mask policy applied.

    Definitions: Dice ``2tp / (2tp + fp + fn)``, IoU ``tp / (tp + fp + fn)``, precision
    ``tp / (tp + fp)``, recall (sensitivity) ``tp / (tp + fn)``, specificity ``tn / (tn + fp)``,
    accuracy ``(tp + tn) / (tp + fp + fn + tn)`` (the pixels of the region of interest classified
    right, as DRIVE's papers report it inside the field of view), and the agreement metrics of
    :func:`agreement_metric`.
    Dice, IoU, precision, recall and the agreement metrics look at the foreground: empty means no
    foreground pixel of the class. Specificity looks at the background, so "empty" there means the
    class covers the whole region of interest. Accuracy is defined whenever a pixel is counted; it
    is "empty" (both masks) only where the region of interest is.

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
    elif name == "accuracy":
        counted = tp + fp + fn + tn
        values = _ratio(tp + tn, counted)
        pred_empty = target_empty = counted == 0
    else:
        formulas = {
            "dice": lambda: _ratio(2 * tp, 2 * tp + fp + fn),
            "iou": lambda: _ratio(tp, tp + fp + fn),
            "precision": lambda: _ratio(tp, tp + fp),
            "recall": lambda: _ratio(tp, tp + fn),
        }
        values = formulas[name]() if name in formulas else agreement_metric(name, counts)
        pred_empty, target_empty = (tp + fp) == 0, (tp + fn) == 0
    shape = values.shape
    flat = empty.apply(
        name, values.flatten(), pred_empty.flatten(), target_empty.flatten(), torch.zeros_like(values.flatten())
    )
    return flat.view(shape)


def agreement_metric(name: str, counts: ConfusionCounts) -> torch.Tensor:
    """MCC, Cohen's kappa, balanced accuracy or volume similarity ``[B, K]`` from confusion counts,
    before the empty-mask policy.

    With ``n = tp + fp + fn + tn``:

    - ``mcc``: Matthews' correlation ``(tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))``
      (Matthews 1975; Chicco & Jurman 2020);
    - ``kappa``: Cohen's kappa ``(p_o - p_e) / (1 - p_e)``, ``p_o = (tp+tn)/n``,
      ``p_e = ((tp+fp)(tp+fn) + (tn+fn)(tn+fp)) / n**2`` (Cohen 1960), computed as
      ``2(tp*tn - fp*fn) / ((tp+fp)(fp+tn) + (tp+fn)(fn+tn))``;
    - ``balanced_accuracy``: ``(tp/(tp+fn) + tn/(tn+fp)) / 2``, the specificity taken as 1 where
      the class covers the whole region (no negative to find);
    - ``volume_similarity``: ``1 - |fn - fp| / (2tp + fp + fn)``, that is ``1 - |V_P - V_G| / (V_P + V_G)``
      (Taha & Hanbury 2015).

    MCC and kappa are 0/0 where a mask is empty or covers the whole region: they are 1 there when
    the masks agree everywhere and 0 (chance) otherwise, scikit-learn's rule for MCC; where a mask
    is empty the empty-mask policy decides anyway.

    Examples
    --------
    >>> c = ConfusionCounts(*(torch.tensor([[v]], dtype=torch.float64) for v in (6.0, 2.0, 1.0, 11.0)))
    >>> [round(agreement_metric(m, c).item(), 4) for m in ("mcc", "kappa", "balanced_accuracy", "volume_similarity")]
    [0.6847, 0.6809, 0.8516, 0.9333]
    """
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    if name == "balanced_accuracy":
        specificity = torch.where(tn + fp == 0, torch.ones_like(tn), _ratio(tn, tn + fp))
        return 0.5 * (_ratio(tp, tp + fn) + specificity)
    if name == "volume_similarity":
        return 1.0 - _ratio((fn - fp).abs(), 2 * tp + fp + fn)
    if name == "mcc":
        num, den = tp * tn - fp * fn, ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)).sqrt()
    elif name == "kappa":
        num, den = 2 * (tp * tn - fp * fn), (tp + fp) * (fp + tn) + (tp + fn) * (fn + tn)
    else:
        raise KeyError(name)
    undefined = torch.where(fp + fn == 0, torch.ones_like(num), torch.zeros_like(num))
    return torch.where(den > 0, num / den.clamp_min(1), undefined)
