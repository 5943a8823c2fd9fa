"""Seeded random segmentation cases for the reference comparisons and the benchmark.

Each case is a ground-truth label map and a prediction made from it by a perturbation that real
models produce: a boundary moved in or out, a shift, false-positive blobs, a missed lesion, a noisy
boundary. Kinds cover thin structures, objects on the image border and multi-class maps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

KINDS = ("dilate", "erode", "shift", "fp_blobs", "missed_lesion", "noisy", "thin", "border", "multiclass")


@dataclass
class Case:
    pred: np.ndarray  # int64 [H, W]
    target: np.ndarray  # int64 [H, W]
    num_classes: int
    kind: str


def _ellipses(rng: np.random.Generator, shape: tuple[int, int], count: int, scale: float,
              near_border: bool = False) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros(shape, bool)
    for _ in range(count):
        if near_border:
            cy = rng.choice([rng.uniform(-0.05, 0.1), rng.uniform(0.9, 1.05)]) * h
            cx = rng.uniform(0, 1) * w
        else:
            cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        ay, ax = rng.uniform(0.4, 1.0, 2) * scale * np.array([h, w]) + 0.5
        theta = rng.uniform(0, np.pi)
        y, x = yy - cy, xx - cx
        u = x * np.cos(theta) + y * np.sin(theta)
        v = -x * np.sin(theta) + y * np.cos(theta)
        mask |= (u / ax) ** 2 + (v / ay) ** 2 <= 1
    return mask


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius**2


def _thin_lines(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        n = 4 * max(h, w)
        t = np.linspace(0, 1, n)
        y0, x0, y1, x1 = rng.uniform(0, 1, 4) * [h, w, h, w]
        bend = rng.uniform(-0.3, 0.3) * min(h, w)
        ys = np.clip(np.round(y0 + (y1 - y0) * t + bend * np.sin(np.pi * t)), 0, h - 1).astype(int)
        xs = np.clip(np.round(x0 + (x1 - x0) * t), 0, w - 1).astype(int)
        mask[ys, xs] = True
    if rng.random() < 0.5:
        mask = ndimage.binary_dilation(mask)
    return mask


def _perturb(rng: np.random.Generator, gt: np.ndarray, kind: str) -> np.ndarray:
    if kind == "dilate":
        return ndimage.binary_dilation(gt, _disk(int(rng.integers(1, 4))))
    if kind == "erode":
        return ndimage.binary_erosion(gt, _disk(int(rng.integers(1, 3))))
    if kind == "shift":
        dy, dx = rng.integers(-5, 6, 2)
        return np.roll(gt, (dy, dx), (0, 1))
    if kind == "fp_blobs":
        return gt | _ellipses(rng, gt.shape, int(rng.integers(1, 4)), 0.06)
    if kind == "missed_lesion":
        labels, n = ndimage.label(gt)
        if n > 1:
            return gt & (labels != rng.integers(1, n + 1))
        return ndimage.binary_erosion(gt)
    noise = rng.random(gt.shape) < 0.15
    boundary = gt ^ ndimage.binary_erosion(gt)
    return gt ^ (noise & ndimage.binary_dilation(boundary, iterations=2))


def random_case(rng: np.random.Generator, kind: str, shape: tuple[int, int] | None = None) -> Case:
    """One random case of ``kind`` (see :data:`KINDS`), with a random non-square shape by default."""
    if shape is None:
        shape = (int(rng.integers(24, 97)), int(rng.integers(24, 97)))
    if kind == "multiclass":
        target = np.zeros(shape, np.int64)
        pred = np.zeros(shape, np.int64)
        for label in (1, 2, 3):
            gt = _ellipses(rng, shape, int(rng.integers(1, 3)), 0.2)
            target[gt] = label
            pred[_perturb(rng, gt, str(rng.choice(KINDS[:6])))] = label
        return Case(pred, target, 4, kind)
    if kind == "thin":
        gt = _thin_lines(rng, shape)
        pred = _perturb(rng, gt, str(rng.choice(["shift", "dilate", "noisy"])))
    elif kind == "border":
        gt = _ellipses(rng, shape, int(rng.integers(1, 4)), 0.35, near_border=True)
        pred = _perturb(rng, gt, str(rng.choice(KINDS[:6])))
    else:
        gt = _ellipses(rng, shape, int(rng.integers(1, 4)), 0.3)
        if kind == "missed_lesion":
            gt |= _ellipses(rng, shape, int(rng.integers(1, 3)), 0.04)
        pred = _perturb(rng, gt, kind)
    return Case(pred.astype(np.int64), gt.astype(np.int64), 2, kind)


def random_cases(n: int, seed: int, shape: tuple[int, int] | None = None) -> list[Case]:
    """``n`` cases cycling through :data:`KINDS`, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [random_case(rng, KINDS[i % len(KINDS)], shape) for i in range(n)]
