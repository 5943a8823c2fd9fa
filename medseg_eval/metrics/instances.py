"""Instance metrics on instance label maps (0 = background, each object its own id): GlaS's object-level
F1, Dice and Hausdorff, MoNuSeg's AJI, and panoptic quality.

Objects are numbered across the batch and every overlapping (prediction, ground truth) pair is
counted once, in one pass over the pixels; each metric then picks its partners from that table:

- **GlaS** (Sirinukunwattana et al., Medical Image Analysis 2017, and the challenge's MATLAB code
  ``F1score.m``, ``ObjectDice.m``, ``ObjectHausdorff.m``): an object's partner is the object of the
  other map it overlaps most (ties: the smallest id, as MATLAB's ``mode``). A predicted object is a
  true positive when it covers more than 50% of its partner. Object F1 is ``2TP / (nP + nG)``.
  Object Dice is ``(sum_i w_i D(S_i, G(S_i)) + sum_j w'_j D(G_j, S(G_j))) / 2`` with area weights
  ``w_i = |S_i| / sum |S|`` (``w'_j`` likewise over the ground truth) and ``D = 0`` without partner.
  Object Hausdorff has the same form with the Hausdorff distance between the two objects' pixel
  sets; an object without overlap takes as partner the object of the other map at the smallest
  Hausdorff distance (ties: the smallest id).
- **AJI** (Kumar et al., IEEE TMI 2017, MoNuSeg's ``Aggregated_Jaccard_Index_v1_0.m``): each
  ground-truth object is matched to the predicted object of largest IoU among those it overlaps
  (ties: the smallest id; a predicted object may match several). AJI is the summed intersections of
  the matches over their summed unions, plus the areas of unmatched ground-truth objects and of
  predicted objects that match none.
- **PQ, SQ, RQ** (Kirillov et al., CVPR 2019): pairs with IoU > 0.5 match (uniquely); SQ is the mean
  IoU of the matches (0 without any), RQ ``= TP / (TP + FP/2 + FN/2)``, PQ ``= SQ * RQ``.

Where the prediction, the ground truth or both hold no object, the empty-mask policy decides (the
GlaS code returns 1 for both empty and 0, or infinity for the Hausdorff distance, for one; the
default :class:`EmptyPolicy` agrees, with the image diagonal for infinity). For semantic masks,
instances are their connected components: :func:`~medseg_eval.metrics.label_components`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ._validation import ArrayLike, as_label_tensor, as_policy, as_spacing, check_same_shape
from .conventions import INSTANCE_METRICS, EmptyPolicy
from .errors import LabelError, OptionError

# Instance ids are held in int64 with room for the batch index beside them.
_MAX_INSTANCE_ID = (1 << 40) - 1


@dataclass
class _Objects:
    """The objects of one batch of instance maps, numbered ``1..count`` in (image, id) order."""

    dense: torch.Tensor  # [B*H*W] object number of each pixel, 0 = background
    count: int
    image: torch.Tensor  # [count] image of each object
    area: torch.Tensor  # [count] int64 pixels


def _objects(labels: torch.Tensor) -> _Objects:
    flat = labels.flatten()
    fg = (flat > 0).nonzero().flatten()
    pixels = labels[0].numel()
    ids, rank = torch.unique(flat[fg], return_inverse=True)
    keys, number = torch.unique(fg // pixels * max(1, ids.numel()) + rank, return_inverse=True)
    dense = torch.zeros_like(flat)
    dense[fg] = number + 1
    image = keys // max(1, ids.numel())
    area = torch.bincount(number, minlength=keys.numel())
    return _Objects(dense, keys.numel(), image, area)


@dataclass
class _Pairs:
    """Every overlapping (prediction, ground truth) pair: object numbers (0-based) and intersection."""

    pred: torch.Tensor
    target: torch.Tensor
    inter: torch.Tensor


def _pairs(p: _Objects, g: _Objects) -> _Pairs:
    both = ((p.dense > 0) & (g.dense > 0)).nonzero().flatten()
    keys, inter = torch.unique((p.dense[both] - 1) * g.count + g.dense[both] - 1, return_counts=True)
    return _Pairs(keys // max(1, g.count), keys % max(1, g.count), inter)


def _most_overlapped(owner: torch.Tensor, other: torch.Tensor, inter: torch.Tensor, n_owner: int,
                     n_other: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per object of one map: the object of the other it overlaps most (ties: the smallest) and the
    overlap; ``-1`` and 0 without any."""
    score = torch.full((n_owner,), -1, dtype=torch.long, device=inter.device)
    score.scatter_reduce_(0, owner, inter * (n_other + 1) + (n_other - other), reduce="amax")
    has = score >= 0
    partner = torch.where(has, n_other - score % (n_other + 1), -1)
    return partner, torch.where(has, score // (n_other + 1), 0)


def _per_image(image: torch.Tensor, values: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.zeros(batch, dtype=torch.float64, device=values.device).index_add_(0, image, values.double())


def as_instance_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    """Instance label maps ``[B, H, W]`` (or one ``[H, W]``) of ids ``>= 0`` as int64."""
    try:
        return as_label_tensor(x, name, _MAX_INSTANCE_ID + 1).long()
    except LabelError as err:
        raise LabelError(f"`{name}` must hold instance ids 0 (background) to {_MAX_INSTANCE_ID}: {err}") from None


def instance_metrics(pred_instances: ArrayLike, target_instances: ArrayLike,
                     metrics: Sequence[str] = INSTANCE_METRICS, *, spacing: ArrayLike | Sequence[float] | None = None,
                     empty: EmptyPolicy | None = None) -> dict[str, torch.Tensor]:
    """Object-level metrics of instance label maps, one value per case.

    Parameters
    ----------
    pred_instances, target_instances
        Instance label maps ``[B, H, W]`` (or one ``[H, W]``), tensors on any device or NumPy arrays:
        0 is background, every other id one object (ids need not be consecutive).
    metrics
        Names from ``object_f1, object_dice, object_hausdorff`` (GlaS), ``aji`` (MoNuSeg), ``pq, sq,
        rq`` (panoptic quality); all by default. See the module's notes for the definitions.
    spacing
        ``(sy, sx)`` or ``[B, 2]`` for ``object_hausdorff`` (GlaS scores in pixels: the default 1).
    empty
        :class:`EmptyPolicy` where a map holds no object; default ``EmptyPolicy()``.

    Returns
    -------
    dict
        Metric name -> float64 tensor ``[B]`` on the input's device.

    Examples
    --------
    >>> t = torch.zeros(1, 8, 8, dtype=torch.long); t[0, :4, :4] = 1; t[0, 5:, 5:] = 2
    >>> p = torch.zeros_like(t); p[0, :4, :3] = 7; p[0, 6:, 6:] = 9
    >>> out = instance_metrics(p, t, ["object_f1", "aji", "pq"])
    >>> [round(out[m].item(), 4) for m in ("object_f1", "aji", "pq")]
    [0.5, 0.64, 0.375]
    """
    names = _check_names(metrics)
    empty = as_policy(empty, EmptyPolicy, "empty")
    pred_t = as_instance_tensor(pred_instances, "pred_instances")
    target_t = as_instance_tensor(target_instances, "target_instances").to(pred_t.device)
    check_same_shape(pred_t, target_t)
    batch, height, width = pred_t.shape
    spacing_t = as_spacing(spacing, batch)
    p, g = _objects(pred_t), _objects(target_t)
    pairs = _pairs(p, g)
    n_pred = torch.bincount(p.image, minlength=batch)
    n_target = torch.bincount(g.image, minlength=batch)
    values: dict[str, torch.Tensor] = {}
    if {"object_f1", "object_dice"} & set(names):
        values.update(_glas_overlap(p, g, pairs, batch))
    if "aji" in names:
        values["aji"] = _aji(p, g, pairs, batch)
    if {"pq", "sq", "rq"} & set(names):
        values.update(_panoptic(p, g, pairs, n_pred, n_target))
    if "object_hausdorff" in names:
        values["object_hausdorff"] = _object_hausdorff(p, g, pairs, pred_t.shape, spacing_t).to(pred_t.device)
    diagonal = ((height * spacing_t[:, 0]) ** 2 + (width * spacing_t[:, 1]) ** 2).sqrt().to(pred_t.device)
    return {m: empty.apply(m, values[m], n_pred == 0, n_target == 0, diagonal) for m in names}


def _check_names(metrics: Sequence[str]) -> list[str]:
    if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
        raise OptionError(f"`metrics` must be a list of names such as ['aji', 'pq'], but got {metrics!r}.")
    unknown = [m for m in metrics if m not in INSTANCE_METRICS]
    if unknown:
        raise OptionError(f"Unknown instance metric(s) {unknown}; choose from {list(INSTANCE_METRICS)}.")
    return list(dict.fromkeys(metrics))


def _glas_overlap(p: _Objects, g: _Objects, pairs: _Pairs, batch: int) -> dict[str, torch.Tensor]:
    """GlaS's object F1 and object Dice, from each object's most-overlapped partner."""
    g_of_p, inter_p = _most_overlapped(pairs.pred, pairs.target, pairs.inter, p.count, g.count)
    p_of_g, inter_g = _most_overlapped(pairs.target, pairs.pred, pairs.inter, g.count, p.count)
    # Index 0 of the padded areas stands for "no partner" (-1), also where the other map has no object at all.
    partner_area_p = torch.cat([g.area.new_zeros(1), g.area])[g_of_p + 1]
    partner_area_g = torch.cat([p.area.new_zeros(1), p.area])[p_of_g + 1]
    # Strictly more than half of the partner (F1score.m: areaOverlap / areaGTObj > 0.5).
    tp = _per_image(p.image, (2 * inter_p > partner_area_p) & (g_of_p >= 0), batch)
    n_p, n_g = _per_image(p.image, torch.ones_like(p.area), batch), _per_image(g.image, torch.ones_like(g.area), batch)
    f1 = 2 * tp / (n_p + n_g).clamp_min(1)
    dice_p = 2 * inter_p.double() / (p.area + partner_area_p).double()
    dice_g = 2 * inter_g.double() / (g.area + partner_area_g).double()
    area_p, area_g = _per_image(p.image, p.area, batch), _per_image(g.image, g.area, batch)
    side_p = _per_image(p.image, p.area * dice_p, batch) / area_p.clamp_min(1)
    side_g = _per_image(g.image, g.area * dice_g, batch) / area_g.clamp_min(1)
    return {"object_f1": f1, "object_dice": (side_p + side_g) / 2}


def _aji(p: _Objects, g: _Objects, pairs: _Pairs, batch: int) -> torch.Tensor:
    """MoNuSeg's aggregated Jaccard index: every ground-truth object with its best-IoU prediction."""
    union = g.area[pairs.target] + p.area[pairs.pred] - pairs.inter
    iou = pairs.inter.double() / union.double()
    best = torch.zeros(g.count, dtype=torch.float64, device=iou.device).scatter_reduce_(
        0, pairs.target, iou, reduce="amax")
    # Among equally good predictions the smallest id, as the MATLAB code's strict `nJI > JI` keeps the first.
    choice = torch.full((g.count,), p.count, dtype=torch.long, device=iou.device)
    candidate = iou == best[pairs.target]
    choice.scatter_reduce_(0, pairs.target[candidate], pairs.pred[candidate], reduce="amin")
    chosen = candidate & (pairs.pred == choice[pairs.target])
    used = torch.zeros(p.count, dtype=torch.bool, device=iou.device)
    used[pairs.pred[chosen]] = True
    matched = torch.zeros(g.count, dtype=torch.bool, device=iou.device)
    matched[pairs.target[chosen]] = True
    image = g.image[pairs.target[chosen]]
    correct = _per_image(image, pairs.inter[chosen], batch)
    union_total = (_per_image(image, union[chosen], batch) + _per_image(g.image[~matched], g.area[~matched], batch)
                   + _per_image(p.image[~used], p.area[~used], batch))
    return correct / union_total.clamp_min(1)


def _panoptic(p: _Objects, g: _Objects, pairs: _Pairs, n_pred: torch.Tensor,
              n_target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Panoptic, segmentation and recognition quality: matches at IoU > 0.5."""
    batch = n_pred.numel()
    iou = pairs.inter.double() / (g.area[pairs.target] + p.area[pairs.pred] - pairs.inter).double()
    match = iou > 0.5
    image = g.image[pairs.target[match]]
    tp = _per_image(image, torch.ones_like(iou[match]), batch)
    sq = _per_image(image, iou[match], batch) / tp.clamp_min(1)
    rq = tp / (0.5 * (n_pred + n_target).double()).clamp_min(0.5)
    return {"pq": sq * rq, "sq": sq, "rq": rq}


def _object_hausdorff(p: _Objects, g: _Objects, pairs: _Pairs, shape: torch.Size,
                      spacing: torch.Tensor) -> torch.Tensor:
    """GlaS's object Hausdorff distance per case (on the CPU: exact transforms of each pair's bounding box)."""
    batch, height, width = shape
    maps = [o.dense.view(batch, height, width).cpu().numpy() for o in (p, g)]
    partners = [_most_overlapped(pairs.pred, pairs.target, pairs.inter, p.count, g.count)[0].cpu().numpy(),
                _most_overlapped(pairs.target, pairs.pred, pairs.inter, g.count, p.count)[0].cpu().numpy()]
    images, areas = [o.image.cpu().numpy() for o in (p, g)], [o.area.cpu().numpy() for o in (p, g)]
    out = np.zeros(batch)
    for case in range(batch):
        own = [np.flatnonzero(image == case) for image in images]
        if len(own[0]) and len(own[1]):  # else the empty-mask policy decides
            out[case] = _case_object_hausdorff(maps[0][case], maps[1][case], own, partners, areas,
                                               tuple(spacing[case].tolist()))
    return torch.from_numpy(out)


def _case_object_hausdorff(pred: np.ndarray, target: np.ndarray, own: list[np.ndarray], partners: list[np.ndarray],
                           areas: list[np.ndarray], sampling: tuple[float, float]) -> float:
    """One case's object Hausdorff distance; ``pred`` and ``target`` hold the batch's object numbers + 1,
    ``own`` each map's objects in this case, ``partners`` each object's most-overlapped one (-1: none)."""
    from scipy import ndimage

    boxes = (ndimage.find_objects(pred), ndimage.find_objects(target))  # indexed by number; None for other cases'
    cache: dict[tuple[int, int], float] = {}

    def hausdorff(i: int, j: int) -> float:
        """Between prediction object i and ground-truth object j (0-based batch numbers)."""
        if (i, j) not in cache:
            a, b = boxes[0][i], boxes[1][j]
            box = tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
            in_p, in_g = pred[box] == i + 1, target[box] == j + 1
            to_g = ndimage.distance_transform_edt(~in_g, sampling=sampling)
            to_p = ndimage.distance_transform_edt(~in_p, sampling=sampling)
            cache[i, j] = float(max(to_g[in_p].max(), to_p[in_g].max()))
        return cache[i, j]

    total = 0.0
    for side in (0, 1):
        other = own[1 - side]
        weighted = 0.0
        for i in own[side]:
            j = partners[side][i]
            if j < 0:  # no overlap: the nearest object of the other map (ObjectHausdorff.m's min, first on ties)
                j = other[int(np.argmin([hausdorff(*((i, o) if side == 0 else (o, i))) for o in other]))]
            weighted += areas[side][i] * hausdorff(*((i, j) if side == 0 else (j, i)))
        total += weighted / areas[side][own[side]].sum()
    return 0.5 * total
