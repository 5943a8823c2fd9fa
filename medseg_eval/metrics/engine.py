"""The metrics engine: validate once, share the work, run batched on the input's device."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._validation import (
    ArrayLike,
    as_label_tensor,
    as_roi,
    as_spacing,
    check_num_classes,
    check_options,
    check_same_shape,
)
from .conventions import DEFAULT_CONVENTION, DISTANCE_METRICS, OVERLAP_METRICS, Convention, EmptyPolicy
from .overlap import confusion_counts, overlap_metric
from .surface import apply_empty_policy, distance_metric, surface_distances

#: The metric set :func:`compute` returns when none is named.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "hausdorff", "hd95", "assd", "nsd")

# Pixels (cases x classes x H x W) handled in one pass; bounds the int32 column maps in memory.
_PIXELS_PER_CHUNK = 1 << 24


def compute(
    pred: ArrayLike,
    target: ArrayLike,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    num_classes: int = 2,
    spacing: ArrayLike | Sequence[float] | None = None,
    roi: ArrayLike | None = None,
    convention: Convention = DEFAULT_CONVENTION,
    percentile: float = 95.0,
    tolerance: float = 2.0,
    empty: EmptyPolicy | None = None,
) -> dict[str, torch.Tensor]:
    """Compute several metrics at once, finding boundaries and distances once for all of them.

    Parameters
    ----------
    pred, target
        Integer label maps ``[B, H, W]`` (or one ``[H, W]``): torch tensors on any device or NumPy
        arrays; bool, any integer dtype, or floats holding whole numbers. 0 is background.
    metrics
        Names from ``dice, iou, precision, recall, specificity, hausdorff, hd95, assd, masd, nsd``.
    num_classes
        Number of classes including background; results cover classes ``1..num_classes-1``.
    spacing
        Pixel size ``(sy, sx)`` (rows, columns), or one pair per case ``[B, 2]``; default 1.
        Distances are in the spacing's unit.
    roi
        Optional bool region of interest ``[B, H, W]`` or ``[H, W]``: pixels outside it are
        background in both masks and are not counted (e.g. DRIVE's field of view).
    convention
        ``"surface-distance"`` (default), ``"monai"`` or ``"medpy"``: which reference
        implementation the distance metrics reproduce; see :mod:`medseg_eval.metrics.conventions`.
    percentile
        Percentile of ``"hd95"`` (default 95).
    tolerance
        NSD tolerance in spacing units (default 2).
    empty
        :class:`EmptyPolicy` for empty predictions / ground truths; default ``EmptyPolicy()``.

    Returns
    -------
    dict
        Metric name -> float64 tensor ``[B, num_classes - 1]`` on the input's device (CPU for
        NumPy input).

    Raises
    ------
    ShapeMismatchError, LabelError, SpacingError, OptionError
        On bad input, before anything is computed.

    Examples
    --------
    >>> import torch
    >>> pred = torch.zeros(1, 32, 32, dtype=torch.long); pred[0, 8:20, 8:20] = 1
    >>> gt = torch.zeros(1, 32, 32, dtype=torch.long); gt[0, 10:22, 8:20] = 1
    >>> out = compute(pred, gt, ["dice", "hausdorff", "nsd"], convention="monai")
    >>> [round(out[m].item(), 4) for m in ("dice", "hausdorff", "nsd")]
    [0.8333, 2.0, 1.0]
    """
    metrics = list(metrics)
    check_options(metrics, convention, percentile, tolerance)
    num_classes = check_num_classes(num_classes)
    empty = EmptyPolicy() if empty is None else empty
    pred_t = as_label_tensor(pred, "pred", num_classes)
    target_t = as_label_tensor(target, "target", num_classes)
    check_same_shape(pred_t, target_t)
    target_t = target_t.to(pred_t.device)
    batch, height, width = pred_t.shape
    roi_t = as_roi(roi, pred_t.shape, pred_t.device)
    spacing_t = as_spacing(spacing, batch)

    chunk = max(1, _PIXELS_PER_CHUNK // (height * width * (num_classes - 1)))
    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, batch, chunk):
        rows = slice(start, start + chunk)
        parts.append(
            _compute_chunk(
                pred_t[rows], target_t[rows], None if roi_t is None else roi_t[rows], spacing_t[rows],
                metrics, num_classes, convention, percentile, tolerance, empty,
            )
        )
    return {m: torch.cat([p[m] for p in parts]) for m in metrics}


def _compute_chunk(
    pred: torch.Tensor,
    target: torch.Tensor,
    roi: torch.Tensor | None,
    spacing: torch.Tensor,
    metrics: list[str],
    num_classes: int,
    convention: str,
    percentile: float,
    tolerance: float,
    empty: EmptyPolicy,
) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    batch, height, width = pred.shape
    k = num_classes - 1
    if any(m in OVERLAP_METRICS for m in metrics):
        counts = confusion_counts(pred, target, num_classes, roi)
        for m in metrics:
            if m in OVERLAP_METRICS:
                out[m] = overlap_metric(m, counts, empty)
    wanted = [m for m in metrics if m in DISTANCE_METRICS]
    if wanted:
        classes = torch.arange(1, num_classes, device=pred.device).view(1, k, 1, 1)
        pred_masks = pred.unsqueeze(1) == classes
        target_masks = target.unsqueeze(1) == classes
        if roi is not None:
            pred_masks &= roi.unsqueeze(1)
            target_masks &= roi.unsqueeze(1)
        # Cases x classes become N independent image pairs, row n = case * k + class.
        per_pair = spacing.repeat_interleave(k, 0).to(pred.device)
        sd = surface_distances(
            pred_masks.flatten(0, 1), target_masks.flatten(0, 1), per_pair, convention
        )
        diagonal = torch.hypot(height * per_pair[:, 0], width * per_pair[:, 1])
        for m in wanted:
            values = distance_metric(m, sd, convention, percentile=percentile, tolerance=tolerance)
            out[m] = apply_empty_policy(m, values, sd, diagonal, empty).view(batch, k)
    return out
