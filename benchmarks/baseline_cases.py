"""The case mix of ``../shared/notes/baseline_bench.md`` §3, where the reference timings come from.

Ground truth: 1-3 ellipses (semi-axes 15-90 px x size/512) plus 0-2 small lesions (radius 2-6 px;
1-3 for the lesion kinds). Seven prediction kinds cycle: dilate / erode (disk radius 1-4 px), shift
(+-10 px), fp_blobs (1-4 blobs of radius 2-8 px anywhere), missed_lesions (main objects only,
optionally dilated by 1 px), boundary_noise (boundary moved by a smooth random field of 1-4 px via
the signed distance map), mixed (shifted main objects, lesions dropped, 1-2 blobs).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tests.support.cases import Case

KINDS = ("dilate", "erode", "shift", "fp_blobs", "missed_lesions", "boundary_noise", "mixed")


def _disk(r: int) -> np.ndarray:
    a = np.arange(-r, r + 1)
    return a[:, None] ** 2 + a[None, :] ** 2 <= r * r


def _blobs(rng: np.random.Generator, size: int, count: int, r_low: float, r_high: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((size, size), bool)
    for _ in range(count):
        cy, cx = rng.uniform(0, size, 2)
        out |= (yy - cy) ** 2 + (xx - cx) ** 2 <= rng.uniform(r_low, r_high) ** 2
    return out


def _main_objects(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    out = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ay, ax = rng.uniform(15, 90, 2) * size / 512
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        out |= (u / ax) ** 2 + (v / ay) ** 2 <= 1
    return out


def baseline_case(rng: np.random.Generator, kind: str, size: int) -> Case:
    main = _main_objects(rng, size)
    lesion_kind = kind in ("missed_lesions", "mixed")
    lesions = _blobs(rng, size, int(rng.integers(1, 4) if lesion_kind else rng.integers(0, 3)), 2, 6)
    gt = main | lesions
    if kind == "dilate":
        pred = ndimage.binary_dilation(gt, _disk(int(rng.integers(1, 5))))
    elif kind == "erode":
        pred = ndimage.binary_erosion(gt, _disk(int(rng.integers(1, 5))))
    elif kind == "shift":
        pred = np.roll(gt, tuple(rng.integers(-10, 11, 2)), (0, 1))
    elif kind == "fp_blobs":
        pred = gt | _blobs(rng, size, int(rng.integers(1, 5)), 2, 8)
    elif kind == "missed_lesions":
        pred = ndimage.binary_dilation(main) if rng.random() < 0.5 else main
    elif kind == "boundary_noise":
        signed = ndimage.distance_transform_edt(~gt) - ndimage.distance_transform_edt(gt)
        field = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16)
        field *= rng.uniform(1, 4) / max(np.abs(field).max(), 1e-12)
        pred = signed < field
    else:  # mixed
        pred = np.roll(main, tuple(rng.integers(-10, 11, 2)), (0, 1)) | _blobs(rng, size, int(rng.integers(1, 3)), 2, 8)
    return Case(pred.astype(np.int64), gt.astype(np.int64), 2, kind)


def baseline_cases(n: int, size: int = 512, seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    return [baseline_case(rng, KINDS[i % len(KINDS)], size) for i in range(n)]
