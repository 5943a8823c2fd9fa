"""Slow, obvious implementations of the published instance metrics, one image at a time, object by object,
written from the GlaS MATLAB code (F1score.m, ObjectDice.m, ObjectHausdorff.m), MoNuSeg's
Aggregated_Jaccard_Index_v1_0.m and Kirillov et al.'s PQ, and random instance maps to test on."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def _objects(labels: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(labels) if v != 0]


def _mode_nonzero(values: np.ndarray) -> int | None:
    """MATLAB's mode over the nonzero values: the most frequent, the smallest on ties; None if none."""
    values = values[values != 0]
    if not values.size:
        return None
    ids, counts = np.unique(values, return_counts=True)
    return int(ids[np.argmax(counts)])  # argmax: first maximum, ids ascending


def _pixel_hausdorff(a: np.ndarray, b: np.ndarray) -> float:
    """Hausdorff distance between two pixel sets, all pairs (knnsearch in the MATLAB code)."""
    pa, pb = np.argwhere(a).astype(float), np.argwhere(b).astype(float)
    d = np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1))
    return float(max(d.min(1).max(), d.min(0).max()))


def glas_f1(s: np.ndarray, g: np.ndarray) -> float:
    ls, lg = _objects(s), _objects(g)
    if not ls and not lg:
        return 1.0
    if not ls or not lg:
        return 0.0
    tp = 0
    for i in ls:
        j = _mode_nonzero(g[s == i])
        if j is not None and np.logical_and(s == i, g == j).sum() / (g == j).sum() > 0.5:
            tp += 1
    precision, recall = tp / len(ls), tp / len(lg)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def glas_object_dice(s: np.ndarray, g: np.ndarray) -> float:
    ls, lg = _objects(s), _objects(g)
    if not ls and not lg:
        return 1.0
    if not ls or not lg:
        return 0.0

    def side(own: np.ndarray, other: np.ndarray, labels: list[int]) -> float:
        total = 0.0
        for i in labels:
            a = own == i
            j = _mode_nonzero(other[a])
            b = other == j if j is not None else np.zeros_like(a)
            total += a.sum() / (own > 0).sum() * 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
        return total

    return (side(s, g, ls) + side(g, s, lg)) / 2


def glas_object_hausdorff(s: np.ndarray, g: np.ndarray) -> float:
    ls, lg = _objects(s), _objects(g)
    if not ls and not lg:
        return 0.0
    if not ls or not lg:
        return math.inf

    def side(own: np.ndarray, other: np.ndarray, labels: list[int], other_labels: list[int]) -> float:
        total = 0.0
        for i in labels:
            a = own == i
            j = _mode_nonzero(other[a])
            if j is None:
                j = other_labels[int(np.argmin([_pixel_hausdorff(a, other == o) for o in other_labels]))]
            total += a.sum() / (own > 0).sum() * _pixel_hausdorff(a, other == j)
        return total

    return (side(s, g, ls, lg) + side(g, s, lg, ls)) / 2


def aji(gt: np.ndarray, pred: np.ndarray) -> float:
    """The MoNuSeg loop: every ground-truth nucleus, its best-IoU prediction (first on ties), unused ones."""
    correct = union = 0
    uses = {p: 0 for p in _objects(pred)}
    for gi in _objects(gt):
        g = gt == gi
        overlapping = _objects(pred * g)
        if not overlapping:
            union += g.sum()
            continue
        best, best_ji = None, 0.0
        for pj in overlapping:
            m = pred == pj
            ji = np.logical_and(g, m).sum() / np.logical_or(g, m).sum()
            if ji > best_ji:
                best, best_ji = pj, ji
        m = pred == best
        correct += np.logical_and(g, m).sum()
        union += np.logical_or(g, m).sum()
        uses[best] += 1
    union += sum((pred == p).sum() for p, n in uses.items() if n == 0)
    return correct / union if union else math.nan


def panoptic(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(PQ, SQ, RQ) of Kirillov et al. by looping over all pairs."""
    lg, lp = _objects(gt), _objects(pred)
    ious = []
    for gi in lg:
        for pj in lp:
            a, b = gt == gi, pred == pj
            iou = np.logical_and(a, b).sum() / np.logical_or(a, b).sum()
            if iou > 0.5:
                ious.append(iou)
    tp = len(ious)
    fp, fn = len(lp) - tp, len(lg) - tp
    if tp + fp + fn == 0:
        return math.nan, math.nan, math.nan
    sq = sum(ious) / tp if tp else 0.0
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    return sq * rq, sq, rq


def random_instances(rng: np.random.Generator, shape: tuple[int, int], n: int, *, max_id: int = 50) -> np.ndarray:
    """Random ellipses and boxes with random (non-consecutive) ids; later objects overwrite earlier ones,
    so objects touch, split each other and reach the border."""
    h, w = shape
    out = np.zeros(shape, np.int64)
    yy, xx = np.mgrid[:h, :w]
    ids = rng.choice(np.arange(1, max_id + 1), size=n, replace=False)
    for i in ids:
        cy, cx = rng.uniform(-2, h + 2), rng.uniform(-2, w + 2)
        ry, rx = rng.uniform(0.6, h / 3), rng.uniform(0.6, w / 3)
        if rng.random() < 0.5:
            shape_mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            shape_mask = (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
        out[shape_mask] = i
    return out


def perturbed(rng: np.random.Generator, gt: np.ndarray) -> np.ndarray:
    """A prediction near ``gt``: objects shifted, some dropped, some split or merged, new ones added."""
    pred = np.zeros_like(gt)
    for i in _objects(gt):
        if rng.random() < 0.15:
            continue  # missed
        m = np.roll(gt == i, (int(rng.integers(-2, 3)), int(rng.integers(-2, 3))), axis=(0, 1))
        new = int(rng.integers(1, 500))
        pred[m] = new
        if rng.random() < 0.2:  # split: the left half becomes another object
            cols = np.flatnonzero(m.any(0))
            if cols.size > 1:
                half = m & (np.arange(gt.shape[1]) < cols[cols.size // 2])[None, :]
                pred[half] = new + 500
    if rng.random() < 0.3:  # merge two objects into one id
        present = _objects(pred)
        if len(present) > 1:
            pred[pred == present[1]] = present[0]
    pred[random_instances(rng, gt.shape, int(rng.integers(0, 3))) > 0] = 2000 + int(rng.integers(0, 9))
    return pred


def label_8(mask: np.ndarray) -> np.ndarray:
    return ndimage.label(mask, structure=np.ones((3, 3)))[0]
