"""The metrics engine: validate once, share the work, run batched on the input's device."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._validation import (
    ArrayLike,
    as_label_tensor,
    as_policy,
    as_roi,
    as_spacing,
    check_num_classes,
    check_options,
    check_same_shape,
)
from .conventions import (
    COUNTS,
    DEFAULT_CONVENTION,
    DISTANCE_METRICS,
    LESION_METRICS,
    METRIC_ALIASES,
    OVERLAP_METRICS,
    Convention,
    EmptyPolicy,
)
from .lesions import LesionCriteria, lesion_counts, lesion_ratios
from .overlap import class_masks, confusion_counts, overlap_metric, pixel_counts
from .surface import Boundaries, apply_empty_policy, boundaries, distance_metric, distances_between, sqrt_rn

#: The metric set :func:`compute` returns when none is named.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "hausdorff", "hd95", "assd", "nsd")

# Pixels (cases x classes x crop height x crop width) handled in one pass; bounds memory.
_CPU_PIXELS_PER_CHUNK = 1 << 24
_GPU_PIXELS_PER_CHUNK = 1 << 27


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
    lesions: LesionCriteria | None = None,
) -> dict[str, torch.Tensor]:
    """Compute several metrics at once, finding boundaries and distances once for all of them.

    Parameters
    ----------
    pred, target
        Integer label maps ``[B, H, W]`` (or one ``[H, W]``): torch tensors on any device or NumPy
        arrays; bool, any integer dtype, or floats holding whole numbers. 0 is background.
    metrics
        Names from ``dice, iou, precision, recall, specificity, hausdorff`` (or ``hd``), ``hd95,
        assd, masd, nsd``, the lesion metrics ``lesion_recall, lesion_precision, lesion_f1,
        fp_objects``, and the pixel counts ``tp, fp, fn, tn`` (``tn`` inside the ROI).
    num_classes
        Number of classes including background; results cover classes ``1..num_classes-1``.
    spacing
        Pixel size ``(sy, sx)`` (rows, columns; also as ``[1, 2]``), or one pair per case ``[B, 2]``;
        default 1.
        Distances are in the spacing's unit.
    roi
        Optional bool region of interest ``[B, H, W]`` or ``[H, W]``: pixels outside it are
        background in both masks and are not counted (e.g. DRIVE's field of view).
    convention
        ``"surface-distance"`` (default), ``"monai"`` or ``"medpy"``: which reference
        implementation the distance metrics reproduce; see :mod:`medseg_eval.metrics.conventions`.
    percentile
        Percentile of ``"hd95"`` in percent (default 95); a value between 0 and 1 warns (a fraction
        given for a percent).
    tolerance
        NSD tolerance in spacing units (default 2).
    empty
        :class:`EmptyPolicy` for empty predictions / ground truths; default ``EmptyPolicy()``.
    lesions
        :class:`~medseg_eval.metrics.lesions.LesionCriteria` of the lesion metrics (``lesion_recall,
        lesion_precision, lesion_f1, fp_objects``); default ``LesionCriteria()`` (8-connected, any overlap).

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
    percentile, tolerance = check_options(metrics, convention, percentile, tolerance)
    requested = [str(m) for m in metrics]
    metrics = list(dict.fromkeys(METRIC_ALIASES.get(m, m) for m in requested))
    num_classes = check_num_classes(num_classes)
    empty = as_policy(empty, EmptyPolicy, "empty")
    lesions = as_policy(lesions, LesionCriteria, "lesions")
    pred_t = as_label_tensor(pred, "pred", num_classes)
    target_t = as_label_tensor(target, "target", num_classes)
    check_same_shape(pred_t, target_t)
    target_t = target_t.to(pred_t.device)
    batch, height, width = pred_t.shape
    roi_t = as_roi(roi, pred_t.shape, pred_t.device)
    spacing_t = as_spacing(spacing, batch).to(pred_t.device)

    k = num_classes - 1
    out = {m: torch.empty(batch, k, dtype=torch.float64, device=pred_t.device) for m in metrics}
    lesion_names = [m for m in metrics if m in LESION_METRICS]
    if lesion_names:
        # Component labelling costs per foreground pixel, not per pixel of the image, so lesions are
        # found on whole images in large chunks: cropping would only add passes.
        on_cpu = pred_t.device.type == "cpu"
        per_chunk = max(1, (_CPU_PIXELS_PER_CHUNK if on_cpu else _GPU_PIXELS_PER_CHUNK) // (height * width * k))
        for cases in torch.arange(batch, device=pred_t.device).split(per_chunk):
            pred_masks, target_masks = class_masks(pred_t[cases], target_t[cases],
                                                   None if roi_t is None else roi_t[cases], num_classes)
            ratios = lesion_ratios(lesion_counts(pred_masks, target_masks, lesions), empty)
            for m in lesion_names:
                out[m][cases] = ratios[m]
        metrics = [m for m in metrics if m not in LESION_METRICS]
    if not metrics:
        return {m: out[METRIC_ALIASES.get(m, m)] for m in requested}

    counted = (torch.full((batch,), height * width, device=pred_t.device) if roi_t is None
               else pixel_counts(roi_t))
    if pred_t.device.type == "cpu":
        # CPU time grows with the pixels touched, so each case is cropped to its foreground.
        foreground = pred_t | target_t  # non-zero where either holds a class
        if roi_t is not None:
            foreground = foreground.masked_fill(~roi_t, 0)
        top, bottom, left, right = _bounding_boxes(foreground)
        pred_t, target_t = pred_t.contiguous(), target_t.contiguous()  # _crop flattens: one copy, not one per crop
        roi_t = None if roi_t is None else roi_t.contiguous()
        crop_h = _bucket_sizes(bottom - top, height)
        crop_w = _bucket_sizes(right - left, width)
        # Any window inside the image that holds the foreground's bounding box gives exact
        # results: outside it both masks are background, exactly as outside the image.
        top = torch.minimum(top, height - crop_h)
        left = torch.minimum(left, width - crop_w)
        pixels_per_chunk = _CPU_PIXELS_PER_CHUNK
    else:
        # On a GPU a pass over whole images costs less than the kernel launches of many crop
        # sizes, so all cases run at full size in large chunks.
        top = left = torch.zeros(batch, dtype=torch.long, device=pred_t.device)
        crop_h = torch.full_like(top, height)
        crop_w = torch.full_like(top, width)
        pixels_per_chunk = _GPU_PIXELS_PER_CHUNK

    # Consecutive cases up to a budget of cropped pixels form a chunk. Within it, cases of one crop
    # size share the per-pixel passes, and the boundary elements of all of them one distance search.
    wanted = [m for m in metrics if m in DISTANCE_METRICS]
    counted_metrics = [m for m in metrics if m in OVERLAP_METRICS or m in COUNTS]
    cost = (crop_h * crop_w * k).cumsum(0)
    _, chunk_sizes = torch.unique_consecutive(torch.div(cost - 1, pixels_per_chunk, rounding_mode="floor"),
                                              return_counts=True)
    for chunk in torch.arange(batch, device=pred_t.device).split(chunk_sizes.tolist()):
        parts, order = [], []
        sizes = torch.stack([crop_h[chunk], crop_w[chunk]], 1)
        for ch, cw in sizes.unique(dim=0).tolist():
            cases = chunk[(sizes[:, 0] == ch) & (sizes[:, 1] == cw)]
            at = (cases, top[cases], left[cases], ch, cw)
            pred_masks, target_masks = class_masks(_crop(pred_t, *at), _crop(target_t, *at),
                                                   None if roi_t is None else _crop(roi_t, *at), num_classes)
            if counted_metrics:
                counts = confusion_counts(pred_masks, target_masks, counted[cases])
                for m in counted_metrics:
                    out[m][cases] = overlap_metric(m, counts, empty) if m in OVERLAP_METRICS else getattr(counts, m)
            if wanted:
                # Cases x classes become image pairs, pair = case * k + class.
                parts.append(boundaries(pred_masks.flatten(0, 1), target_masks.flatten(0, 1),
                                        spacing_t[cases].repeat_interleave(k, 0), convention))
                order.append(cases)
        if wanted:
            cases = torch.cat(order)
            sd = distances_between(Boundaries.cat(parts), convention)
            per_pair = spacing_t[cases].repeat_interleave(k, 0)
            # Not torch.hypot, whose vectorized CPU kernel rounds some elements of a batch differently.
            diagonal = sqrt_rn((height * per_pair[:, 0]) ** 2 + (width * per_pair[:, 1]) ** 2)
            for m in wanted:
                values = distance_metric(m, sd, convention, percentile=percentile, tolerance=tolerance)
                out[m][cases] = apply_empty_policy(m, values, sd, diagonal, empty).view(-1, k)
    return {m: out[METRIC_ALIASES.get(m, m)] for m in requested}


def _crop(x: torch.Tensor, cases: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: int,
          width: int) -> torch.Tensor:
    """The ``height x width`` windows of ``x[cases]`` at ``top, left``, ``[len(cases), height, width]``."""
    _, h, w = x.shape
    # Each row of a window is a run of `width` pixels of the flat batch; index_select copies whole
    # runs (about 20x faster on the CPU than advanced indexing of a view of every window).
    first = ((cases * h + top) * w + left)[:, None] + torch.arange(height, device=x.device) * w
    runs = x.flatten().unfold(0, width, 1)
    return runs.index_select(0, first.flatten()).view(len(cases), height, width)


def _bounding_boxes(foreground: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per case ``top, bottom, left, right`` of the non-zero pixels (bottom/right exclusive).

    A 1x1 box where a case has none.
    """
    rows, cols = foreground.amax(2) > 0, foreground.amax(1) > 0
    height, width = rows.shape[1], cols.shape[1]
    top = rows.int().argmax(1)
    bottom = height - rows.flip(1).int().argmax(1)
    left = cols.int().argmax(1)
    right = width - cols.flip(1).int().argmax(1)
    present = rows.any(1)
    return (top, torch.where(present, bottom, 1), left, torch.where(present, right, 1))


def _bucket_sizes(extent: torch.Tensor, full: int) -> torch.Tensor:
    """Round crop extents up a ladder of sizes (16, 24, 32, 48, 64, ...), at most the image size.

    A few shared crop sizes let cases of different object sizes run as one batch each, while the
    rounding wastes at most half of a side.
    """
    ladder = [16, 24]
    while ladder[-2] * 2 < full:
        ladder += [ladder[-2] * 2, ladder[-1] * 2]
    steps = torch.tensor([min(v, full) for v in ladder] + [full], device=extent.device)
    return steps[torch.searchsorted(steps, extent)]
