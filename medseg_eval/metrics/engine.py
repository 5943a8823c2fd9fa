"""The metrics engine: validate once, share the work, run batched on the input's device."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import compiled
from ._validation import (
    ArrayLike,
    as_label_tensor,
    as_policy,
    as_roi,
    as_sizes,
    as_spacing,
    check_num_classes,
    check_options,
    check_same_shape,
)
from .boundaries import empty_frame, frame_boundaries, frame_pairs
from .conventions import (
    AGREEMENT_METRICS,
    COUNTS,
    DEFAULT_CONVENTION,
    DISTANCE_METRICS,
    LESION_METRICS,
    METRIC_ALIASES,
    OVERLAP_METRICS,
    TOPOLOGY_METRICS,
    Convention,
    EmptyPolicy,
)
from .lesions import LesionCriteria, lesion_counts, lesion_ratios
from .overlap import ConfusionCounts, class_masks, confusion_counts, overlap_metric, pixel_counts
from .packed_counts import packed_counts
from .surface import apply_empty_policy, distance_metric, distances_between, sqrt_rn
from .topology import TopologyOptions, topology_metrics

#: The metric set :func:`compute` returns when none is named.
DEFAULT_METRICS: tuple[str, ...] = ("dice", "iou", "hausdorff", "hd95", "assd", "nsd")

# Pixels (cases x classes x height x width) handled in one pass; bounds memory.
_CPU_PIXELS_PER_CHUNK = 1 << 24
_GPU_PIXELS_PER_CHUNK = 1 << 27
# On the CPU the passes over pixels take a chunk's cases a block at a time, whose bytes stay in the cache.
_CPU_PIXELS_PER_BLOCK = 1 << 22


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
    sizes: ArrayLike | None = None,
    topology: TopologyOptions | None = None,
) -> dict[str, torch.Tensor]:
    """Compute several metrics at once, finding boundaries and distances once for all of them.

    Parameters
    ----------
    pred, target
        Integer label maps ``[B, H, W]`` (or one ``[H, W]``): torch tensors on any device or NumPy
        arrays; bool, any integer dtype, or floats holding whole numbers. 0 is background.
    metrics
        Names from ``dice, iou, precision, recall, specificity, accuracy, hausdorff`` (or ``hd``), ``hd95,
        assd, masd, nsd``, the agreement metrics ``mcc, kappa, balanced_accuracy,
        volume_similarity`` (:func:`~medseg_eval.metrics.overlap.agreement_metric`), the topology and
        boundary metrics ``cldice, betti0_error, betti1_error, boundary_iou`` (:mod:`.topology`) and
        ``boundary_f1`` (at ``tolerance``), the lesion metrics ``lesion_recall, lesion_precision,
        lesion_f1, fp_objects``, and the pixel counts ``tp, fp, fn, tn`` (``tn`` inside the ROI).
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
    sizes
        Optional integers ``[B, 2]``: each case's own ``(height, width)`` where cases of several sizes
        are padded at the bottom and right into one batch (as :func:`medseg_eval.evaluate` does, to
        score many sizes in few calls). Every value is then that of the case at its own size: the
        padding lies outside the region of interest, and the empty-mask rule's image diagonal is the
        case's own. Default: every case is ``H x W``.
    topology
        :class:`~medseg_eval.metrics.topology.TopologyOptions` of the topology metrics (Betti
        connectivities, Boundary IoU's dilation); default ``TopologyOptions()`` (8/4, 0.02).

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
    settings = _Settings(num_classes, convention, percentile, tolerance, as_policy(empty, EmptyPolicy, "empty"),
                         as_policy(lesions, LesionCriteria, "lesions"), as_policy(topology, TopologyOptions, "topology"))
    batch = _checked_batch(pred, target, num_classes, spacing, roi, sizes)
    n, height, width = batch.pred.shape
    k = num_classes - 1
    out = {m: torch.empty(n, k, dtype=torch.float64, device=batch.pred.device) for m in metrics}
    # Whole images, in chunks of consecutive cases: every per-pixel pass runs on masks packed 8
    # pixels to a byte or costs one pass of bytes, so cropping cases to their foreground (and
    # grouping them by crop size) costs more in copies and calls than it saves, on CPU as on GPU.
    # The boundary elements of a chunk's cases share one distance search.
    cpu = batch.pred.device.type == "cpu"
    per_chunk = max(1, (_CPU_PIXELS_PER_CHUNK if cpu else _GPU_PIXELS_PER_CHUNK) // (height * width * k))
    per_block = max(1, _CPU_PIXELS_PER_BLOCK // (height * width * k)) if cpu else per_chunk
    for start in range(0, n, per_chunk):
        _score_chunk(out, batch, slice(start, start + per_chunk), settings, per_block)
    return {m: out[METRIC_ALIASES.get(m, m)] for m in requested}


@dataclass(frozen=True)
class _Settings:
    """How every metric of one call is computed (checked)."""

    num_classes: int
    convention: Convention
    percentile: float
    tolerance: float
    empty: EmptyPolicy
    lesions: LesionCriteria
    topology: TopologyOptions


@dataclass(frozen=True)
class _Batch:
    """The checked inputs of one call, on one device: label maps, region of interest (the ROI and each case's
    own size), spacing per case and each case's own sides."""

    pred: torch.Tensor
    target: torch.Tensor
    roi: torch.Tensor | None
    spacing: torch.Tensor
    sides: torch.Tensor


def _checked_batch(pred: ArrayLike, target: ArrayLike, num_classes: int, spacing: ArrayLike | Sequence[float] | None,
                   roi: ArrayLike | None, sizes: ArrayLike | None) -> _Batch:
    """Label maps, ROI, spacing and sizes checked and put on the predictions' device."""
    pred_t = as_label_tensor(pred, "pred", num_classes)
    target_t = as_label_tensor(target, "target", num_classes)
    check_same_shape(pred_t, target_t)
    target_t = target_t.to(pred_t.device)
    batch, height, width = pred_t.shape
    roi_t = as_roi(roi, pred_t.shape, pred_t.device)
    sizes_t = as_sizes(sizes, pred_t.shape)
    if sizes_t is not None:
        rows = torch.arange(height, device=pred_t.device)[None, :, None] < sizes_t[:, 0, None, None].to(pred_t.device)
        cols = torch.arange(width, device=pred_t.device)[None, None, :] < sizes_t[:, 1, None, None].to(pred_t.device)
        roi_t = rows & cols if roi_t is None else roi_t & rows & cols
    # Each case's own sides (float64, as the diagonal multiplies them by the spacing).
    sides = (torch.tensor([[height, width]], dtype=torch.float64, device="cpu").expand(batch, 2) if sizes_t is None
             else sizes_t.double()).to(pred_t.device)
    return _Batch(pred_t, target_t, roi_t, as_spacing(spacing, batch).to(pred_t.device), sides)


def _score_chunk(out: dict[str, torch.Tensor], batch: _Batch, cases: slice, settings: _Settings,
                 per_block: int) -> None:
    """Write every metric of ``out`` for the cases ``cases``: lesion, topology, counted and distance metrics."""
    num_classes, k = settings.num_classes, settings.num_classes - 1
    height, width = batch.pred.shape[1:]
    pred, target = batch.pred[cases], batch.target[cases]
    roi = None if batch.roi is None else batch.roi[cases]
    lesion_names = [m for m in out if m in LESION_METRICS]
    counted = [m for m in out if m in OVERLAP_METRICS or m in AGREEMENT_METRICS or m in COUNTS]
    distances = [m for m in out if m in DISTANCE_METRICS or m == "boundary_f1"]
    topology_names = [m for m in out if m in TOPOLOGY_METRICS and m != "boundary_f1"]
    if lesion_names:
        pred_masks, target_masks = class_masks(pred, target, roi, num_classes)
        ratios = lesion_ratios(lesion_counts(pred_masks, target_masks, settings.lesions), settings.empty)
        for m in lesion_names:
            out[m][cases] = ratios[m]
    if topology_names:
        pred_masks, target_masks = class_masks(pred, target, roi, num_classes)
        for m, values in topology_metrics(topology_names, pred_masks, target_masks, settings.topology, settings.empty,
                                          batch.sides[cases]).items():
            out[m][cases] = values
    counts, bits = _pixel_passes(pred, target, roi, num_classes, per_block, count=bool(counted), pack=bool(distances))
    for m in counted:
        out[m][cases] = getattr(counts, m) if m in COUNTS else overlap_metric(m, counts, settings.empty)
    if distances:
        # Cases x classes become image pairs, pair = case * k + class.
        per_pair = batch.spacing[cases].repeat_interleave(k, 0)
        sd = distances_between(frame_boundaries(bits, (height, width), per_pair, settings.convention),
                               settings.convention)
        # Not torch.hypot, whose vectorized CPU kernel rounds some elements of a batch differently.
        side = batch.sides[cases].repeat_interleave(k, 0)
        diagonal = sqrt_rn((side[:, 0] * per_pair[:, 0]) ** 2 + (side[:, 1] * per_pair[:, 1]) ** 2)
        for m in distances:
            values = distance_metric(m, sd, settings.convention, percentile=settings.percentile,
                                     tolerance=settings.tolerance)
            out[m][cases] = apply_empty_policy(m, values, sd, diagonal, settings.empty).view(-1, k)


def _pixel_passes(pred: torch.Tensor, target: torch.Tensor, roi: torch.Tensor | None, num_classes: int,
                  per_block: int, *, count: bool, pack: bool) -> tuple[ConfusionCounts | None, torch.Tensor | None]:
    """The passes over the pixels of a chunk of cases: its confusion counts and its masks packed in a
    frame (:func:`~medseg_eval.metrics.boundaries.empty_frame`; pair = case * K + class), as asked.

    Both run on ``per_block`` cases at a time: the class masks, the counts and the packing then read
    bytes the previous pass left in the cache, rather than the whole chunk's from memory each time.
    """
    batch, height, width = pred.shape
    k = num_classes - 1
    bits = empty_frame(batch * k, height, width, pred.device) if pack else None
    counts = []
    for start in range(0, batch, per_block):
        block = slice(start, start + per_block)
        pred_masks, target_masks = class_masks(pred[block], target[block], None if roi is None else roi[block],
                                               num_classes)
        if pack:
            frame_pairs(bits, start * k, pred_masks.flatten(0, 1), target_masks.flatten(0, 1))
        if count:
            counted = (torch.full((len(pred_masks),), height * width, device=pred.device) if roi is None
                       else pixel_counts(roi[block]))
            if pack and compiled.used(bits):  # the packed bits, an eighth of the bytes, still in the cache
                ones = packed_counts(bits, start * k, (start + len(pred_masks)) * k).view(-1, k, 3)
                counts.append(ConfusionCounts.of(ones[..., 2], ones[..., 0], ones[..., 1], counted))
            else:
                counts.append(confusion_counts(pred_masks, target_masks, counted))
    return (ConfusionCounts.cat(counts) if count else None), bits
