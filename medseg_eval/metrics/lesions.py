"""Lesion-level metrics: connected components on the device, lesion matching, small-lesion recall.

Lesions are the connected components of each foreground class of the ground truth; predicted
objects are those of the prediction. Components are labelled by union-find on tensors over the
horizontal runs of foreground pixels: runs that touch across neighbouring rows are paired by
binary search, then each round hooks the larger root of every pair onto the smaller (a
scatter-min) and compresses paths by pointer jumping. Trees merge along whole components at once,
so the number of rounds stays small however long a component is: a serpentine that plain
max-pool propagation needs tens of thousands of iterations for takes a handful. The same code
runs on CPU and CUDA, and costs per run of foreground, not per pixel of the image.

A ground-truth lesion is *detected* when the prediction (same class) covers at least
``min_overlap`` of its area, and at least one pixel (so the default ``0`` means any overlap, as
ISLES'22 counts lesions); with ``criterion="iou"`` it must instead be matched one-to-one to a
predicted object with IoU >= ``iou_threshold`` (>= 0.5, where the match is unique; panoptica's
rule).
A predicted object *hits* when it touches a lesion of its class (or is matched, under IoU).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from ._validation import as_binary, as_label_tensor, as_roi, as_spacing, check_num_classes, check_same_shape, is_real
from .conventions import EmptyPolicy
from .errors import OptionError, ShapeMismatchError
from .overlap import class_masks

#: Size bins (pixels) of :func:`small_lesion_recall` when none are given.
DEFAULT_SIZE_BINS: tuple[float, ...] = (0.0, 64.0, 256.0, 1024.0, math.inf)


@dataclass(frozen=True)
class LesionCriteria:
    """How lesions are found and counted as detected; recorded with every result.

    Examples
    --------
    >>> LesionCriteria().as_dict()
    {'connectivity': 8, 'min_overlap': 0.0, 'criterion': 'overlap', 'iou_threshold': 0.5}
    """

    connectivity: Literal[4, 8] = 8
    min_overlap: float = 0.0
    criterion: Literal["overlap", "iou"] = "overlap"
    iou_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not (isinstance(self.connectivity, numbers.Integral) and is_real(self.connectivity)
                and self.connectivity in (4, 8)):
            raise OptionError(f"`connectivity` must be 4 or 8, but got {self.connectivity!r}.")
        if not (is_real(self.min_overlap) and 0.0 <= self.min_overlap <= 1.0):
            raise OptionError(f"`min_overlap` is a fraction of the lesion's area in [0, 1], but got {self.min_overlap!r}.")
        if self.criterion not in ("overlap", "iou"):
            raise OptionError(f"`criterion` must be 'overlap' or 'iou', but got {self.criterion!r}.")
        if not (is_real(self.iou_threshold) and 0.5 <= self.iou_threshold <= 1.0):
            raise OptionError("`iou_threshold` must lie in [0.5, 1] (below 0.5 one lesion could match several objects), "
                              f"but got {self.iou_threshold!r}.")
        # Plain Python numbers, so that provenance records hold no NumPy scalars.
        for field, kind in (("connectivity", int), ("min_overlap", float), ("iou_threshold", float)):
            object.__setattr__(self, field, kind(getattr(self, field)))

    def as_dict(self) -> dict[str, object]:
        """Plain values, for provenance."""
        return asdict(self)


def _run_edges(run_start: torch.Tensor, run_end: torch.Tensor, h: int, w: int,
               connectivity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs of horizontal runs that touch across neighbouring rows of one image.

    Runs are given by the flat indices of their first and last pixels, in flat order. A run
    touches the runs of the next row whose columns overlap its own, widened by one on each side
    for 8-connectivity; those form one contiguous range of runs, found by two binary searches.
    """
    line = run_start // w  # image * h + row
    stride = w + 2  # room for the widened columns -1 and w
    start_key = line * stride + run_start % w + 1
    end_key = line * stride + run_end % w + 1
    grow = 1 if connectivity == 8 else 0
    low = (line + 1) * stride + run_start % w + 1 - grow
    high = (line + 1) * stride + run_end % w + 1 + grow
    first = torch.searchsorted(end_key, low)
    last = torch.searchsorted(start_key, high, right=True) - 1
    count = (last - first + 1).clamp(min=0) * (line % h < h - 1)
    source = torch.repeat_interleave(torch.arange(run_start.numel(), device=run_start.device), count)
    offset = torch.arange(source.numel(), device=run_start.device) - (count.cumsum(0) - count)[source]
    return source, first[source] + offset


def _component_roots(mask: torch.Tensor, connectivity: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Union-find over a bool batch ``[B, H, W]``: (foreground flat indices, root of each of them).

    The nodes are the horizontal runs of foreground pixels (found in one pass) and the edges join
    runs that touch across neighbouring rows. Each round hooks, for every edge between two trees,
    the larger root onto the smaller (a scatter-min), and jumps every run to its root; edges
    inside one tree are dropped; it stops when none is left. A component's root is its run with
    the smallest flat index, whose first pixel is the component's first pixel in row-major order.
    """
    _, h, w = mask.shape
    foreground = mask.flatten().nonzero().flatten()
    starts = torch.ones_like(foreground, dtype=torch.bool)
    starts[1:] = (foreground[1:] != foreground[:-1] + 1) | (foreground[1:] % w == 0)
    ends = torch.ones_like(starts)
    ends[:-1] = starts[1:]
    run_start, run_end = foreground[starts], foreground[ends]
    u, v = _run_edges(run_start, run_end, h, w, connectivity)
    parent = torch.arange(run_start.numel(), device=mask.device)
    while u.numel():
        ru, rv = parent[u], parent[v]
        parent.scatter_reduce_(0, torch.maximum(ru, rv), torch.minimum(ru, rv), reduce="amin")
        while True:  # pointer jumping: every run straight to its root
            jumped = parent[parent]
            if torch.equal(jumped, parent):
                break
            parent = jumped
        keep = parent[u] != parent[v]
        u, v = u[keep], v[keep]
    run_of_pixel = starts.cumsum(0) - 1
    return foreground, run_start[parent][run_of_pixel]


def label_components(mask: torch.Tensor, connectivity: int = 8) -> torch.Tensor:
    """Connected components of a batch of binary masks, labelled ``1..n`` per image (0 = background).

    Labels follow the order of each component's first pixel in row-major order, as
    ``scipy.ndimage.label`` and ``skimage.measure.label`` number them.

    Parameters
    ----------
    mask
        Bool (or 0/1) ``[B, H, W]`` or ``[H, W]``, a tensor on any device or a NumPy array; other
        values (probabilities, 0/255) are refused, not thresholded.
    connectivity
        8 (default: diagonal neighbours connect) or 4.

    Examples
    --------
    >>> m = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 1]], dtype=torch.bool)
    >>> label_components(m).tolist()
    [[[1, 1, 0, 0], [0, 0, 0, 2], [3, 0, 2, 2]]]
    >>> label_components(m, connectivity=4)[0, 2].tolist()
    [3, 0, 2, 2]
    """
    LesionCriteria(connectivity=connectivity)  # checks it
    mask = as_binary(mask, "mask")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise ShapeMismatchError(f"`mask` must be [H, W] or [B, H, W], but got shape {tuple(mask.shape)}.")
    mask = mask.bool()
    b, h, w = mask.shape
    foreground, roots = _component_roots(mask, connectivity)
    out = torch.zeros(b * h * w, dtype=torch.long, device=mask.device)
    if foreground.numel():
        unique, inverse = torch.unique(roots, return_inverse=True)
        first_of_image = torch.searchsorted(unique, torch.arange(b, device=mask.device) * (h * w))
        out[foreground] = inverse - first_of_image[foreground // (h * w)] + 1
    return out.view(b, h, w)


@dataclass
class Components:
    """Every component of a batch of images, numbered globally ``1..count``.

    ``pixels`` are the foreground's flat indices (sorted) and ``ids`` their components; per component:
    ``image`` (which of the N images), ``local`` (its label in that image, as
    :func:`label_components`), ``area`` (pixels), ``top, left, bottom, right`` (inclusive box).
    """

    pixels: torch.Tensor
    ids: torch.Tensor
    count: int
    image: torch.Tensor
    local: torch.Tensor
    area: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    bottom: torch.Tensor
    right: torch.Tensor

    def id_of(self, pixels: torch.Tensor) -> torch.Tensor:
        """Component of each of ``pixels`` (flat indices of foreground pixels)."""
        return self.ids[torch.searchsorted(self.pixels, pixels)]


def components(mask: torch.Tensor, connectivity: int) -> Components:
    """The components of a bool batch ``[N, H, W]`` with their sizes and boxes."""
    n, h, w = mask.shape
    foreground, roots = _component_roots(mask, connectivity)
    unique, inverse = torch.unique(roots, return_inverse=True)
    count = unique.numel()
    image = unique // (h * w)
    first = torch.searchsorted(unique, torch.arange(n, device=mask.device) * (h * w))
    local = torch.arange(count, device=mask.device) - first[image] + 1
    area = torch.bincount(inverse, minlength=count)
    row, col = (foreground // w) % h, foreground % w
    box = [torch.full((count,), fill, dtype=torch.long, device=mask.device) for fill in (h, w, -1, -1)]
    for target, values, reduce in zip(box, (row, col, row, col), ("amin", "amin", "amax", "amax")):
        target.scatter_reduce_(0, inverse, values, reduce=reduce)
    return Components(foreground, inverse + 1, count, image, local, area, *box)


@dataclass
class Detection:
    """Lesions (ground-truth components) and predicted objects of a batch, matched."""

    lesions: Components
    objects: Components
    covered: torch.Tensor  # [lesions] pixels of each lesion inside the prediction
    best_iou: torch.Tensor  # [lesions] largest IoU with one predicted object
    detected: torch.Tensor  # [lesions] bool
    hits: torch.Tensor  # [objects] bool: touches (or, under IoU, is matched to) a lesion


def detect(pred: torch.Tensor, target: torch.Tensor, criteria: LesionCriteria) -> Detection:
    """Match lesions of ``target`` to objects of ``pred``, both bool ``[N, H, W]`` (one class per image)."""
    lesions = components(target, criteria.connectivity)
    objects = components(pred, criteria.connectivity)
    both = (pred & target).flatten().nonzero().flatten()
    lesion_of, object_of = lesions.id_of(both), objects.id_of(both)
    covered = torch.bincount(lesion_of - 1, minlength=lesions.count)[: lesions.count]
    # Intersections of every overlapping (lesion, object) pair.
    keys, inter = torch.unique(lesion_of * (objects.count + 1) + object_of, return_counts=True)
    g, p = keys // (objects.count + 1) - 1, keys % (objects.count + 1) - 1
    iou = inter.double() / (lesions.area[g] + objects.area[p] - inter).double()
    best_iou = torch.zeros(lesions.count, dtype=torch.float64, device=pred.device)
    best_iou.scatter_reduce_(0, g, iou, reduce="amax")
    if criteria.criterion == "overlap":
        detected = (covered > 0) & (covered >= criteria.min_overlap * lesions.area)
        hits = torch.zeros(objects.count, dtype=torch.bool, device=pred.device)
        hits[p] = True
    else:
        # With a threshold of at least 0.5 a lesion and an object match at most one partner each;
        # keeping only mutual best pairs also settles exact ties at 0.5.
        ok = iou >= criteria.iou_threshold
        best_object = torch.zeros(objects.count, dtype=torch.float64, device=pred.device)
        best_object.scatter_reduce_(0, p[ok], iou[ok], reduce="amax")
        keep = ok & (iou == best_iou[g]) & (iou == best_object[p])
        detected = torch.zeros(lesions.count, dtype=torch.bool, device=pred.device)
        detected[g[keep]] = True
        hits = torch.zeros(objects.count, dtype=torch.bool, device=pred.device)
        hits[p[keep]] = True
    return Detection(lesions, objects, covered, best_iou, detected, hits)


def lesion_counts(pred_masks: torch.Tensor, target_masks: torch.Tensor, criteria: LesionCriteria) -> dict[str, torch.Tensor]:
    """Per case and class ``[B, K]``: lesions, detected lesions, predicted objects, objects that hit."""
    b, k, h, w = pred_masks.shape
    found = detect(pred_masks.reshape(b * k, h, w), target_masks.reshape(b * k, h, w), criteria)

    def per_image(index: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        counts = torch.bincount(index, weights=None if weights is None else weights.double(), minlength=b * k)
        return counts.double().view(b, k)

    return {
        "lesions": per_image(found.lesions.image),
        "detected": per_image(found.lesions.image, found.detected),
        "objects": per_image(found.objects.image),
        "hits": per_image(found.objects.image, found.hits),
    }


def lesion_ratios(counts: dict[str, torch.Tensor], empty: EmptyPolicy) -> dict[str, torch.Tensor]:
    """Per-case lesion recall, precision, F1 and false-positive objects from :func:`lesion_counts`.

    A case with neither lesions nor objects takes ``empty.both_empty``; with only one of them, the
    ratio that has no denominator takes ``empty.one_empty`` (0 when worst).
    """
    lesions, detected, objects, hits = counts["lesions"], counts["detected"], counts["objects"], counts["hits"]
    best = 1.0 if empty.both_empty == "best" else math.nan
    worst = 0.0 if empty.one_empty == "worst" else math.nan

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        value = num / den.clamp(min=1)
        value = torch.where(den == 0, torch.full_like(value, worst), value)
        return torch.where((lesions == 0) & (objects == 0), torch.full_like(value, best), value)

    recall, precision = ratio(detected, lesions), ratio(hits, objects)
    f1 = torch.where(recall + precision > 0, 2 * recall * precision / (recall + precision), torch.zeros_like(recall))
    f1 = torch.where(recall.isnan() | precision.isnan(), torch.full_like(f1, math.nan), f1)
    f1 = torch.where((lesions == 0) & (objects == 0), torch.full_like(f1, best), f1)
    return {"lesion_recall": recall, "lesion_precision": precision, "lesion_f1": f1, "fp_objects": objects - hits}


def _class_masks(pred, target, num_classes: int, roi) -> tuple[torch.Tensor, torch.Tensor]:

    num_classes = check_num_classes(num_classes)
    pred_t = as_label_tensor(pred, "pred", num_classes)
    target_t = as_label_tensor(target, "target", num_classes).to(pred_t.device)
    check_same_shape(pred_t, target_t)
    return class_masks(pred_t, target_t, as_roi(roi, pred_t.shape, pred_t.device), num_classes)


def lesion_records(pred, target, num_classes: int = 2, criteria: LesionCriteria | None = None, spacing=None,
                   roi=None) -> dict[str, torch.Tensor | None]:
    """One entry per ground-truth lesion, as tensors: where it is, how large, how much the prediction covers,
    detected or not (the tables of :mod:`medseg_eval.lesion_tables` are built from these).

    Parameters
    ----------
    pred, target
        Label maps ``[B, H, W]`` (or ``[H, W]``) as for :func:`medseg_eval.metrics.compute`.
    num_classes, roi
        As for :func:`~medseg_eval.metrics.compute`; lesions are found per foreground class.
    criteria
        How a lesion counts as detected (default :class:`LesionCriteria`).
    spacing
        ``(sy, sx)`` or ``[B, 2]``: adds ``area_mm2`` (area in squared spacing units).

    Returns
    -------
    dict
        ``case`` (batch index), ``class``, ``lesion`` (its label in :func:`label_components` order),
        ``area`` (pixels), ``area_mm2`` (``None`` without spacing), ``top, left, bottom, right``
        (inclusive box), ``covered`` (pixels inside the prediction), ``overlap`` (covered / area),
        ``best_iou``, ``detected``: one value per lesion each, in labelling order.

    Examples
    --------
    >>> t = torch.zeros(1, 8, 8, dtype=torch.long); t[0, 1:3, 1:3] = 1; t[0, 5:8, 5:8] = 1
    >>> p = torch.zeros_like(t); p[0, 6:8, 6:8] = 1
    >>> r = lesion_records(p, t)
    >>> r["area"].tolist(), r["detected"].tolist()
    ([4, 9], [False, True])
    """
    criteria = criteria if criteria is not None else LesionCriteria()
    pred_masks, target_masks = _class_masks(pred, target, num_classes, roi)
    b, k, h, w = pred_masks.shape
    found = detect(pred_masks.reshape(b * k, h, w), target_masks.reshape(b * k, h, w), criteria)
    lesions = found.lesions
    case = lesions.image // k
    area = lesions.area.double()
    area_mm2 = area * as_spacing(spacing, b).to(area.device)[case].prod(1) if spacing is not None else None
    return {
        "case": case, "class": lesions.image % k + 1, "lesion": lesions.local, "area": lesions.area,
        "area_mm2": area_mm2, "top": lesions.top, "left": lesions.left, "bottom": lesions.bottom,
        "right": lesions.right, "covered": found.covered, "overlap": found.covered / area.clamp(min=1),
        "best_iou": found.best_iou, "detected": found.detected,
    }
