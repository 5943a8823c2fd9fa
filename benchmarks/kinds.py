"""The speed suite's kinds of cases: seeded generators and real masks, each a list of ``(pred, target, spacing)``.

Every kind makes bool masks ``[H, W]`` with both masks non-empty (so that every reference library
returns a number) and spacing ``(1, 1)``, so NSD's tolerance of 2 is 2 px. :data:`KINDS` names them in
the order the suite runs them; each entry also says how many cases the slow references (MONAI,
MedPy) get and which references apply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from scipy import ndimage

Case = tuple[np.ndarray, np.ndarray, tuple[float, float]]
ALL_REFERENCES = ("surface-distance", "monai", "medpy")
ISIC_SHAPE = (4439, 6688)  # ISIC 2018's largest images (6688 wide)
UNIT = (1.0, 1.0)


def _nonempty(pairs: Iterable[tuple[np.ndarray, np.ndarray]], count: int | None = None) -> list[Case]:
    """The first ``count`` pairs whose masks are both non-empty, as bool cases of unit spacing."""
    kept = ((p.astype(bool), t.astype(bool), UNIT) for p, t in pairs if p.any() and t.any())
    return list(islice(kept, count))


def tiny_case() -> Case:
    """Two overlapping 16x16 squares in 32x32: a warm-up that loads what a library loads on its first call."""
    target = np.zeros((32, 32), bool)
    target[4:20, 4:20] = True
    return np.roll(target, 5, (0, 1)), target, UNIT


def ellipse(shape: tuple[int, int], rng: np.random.Generator, scale: tuple[float, float] = (0.2, 0.35)) -> np.ndarray:
    """A rotated ellipse near the centre, semi-axes ``scale`` times the image's sides (float32 to spare memory)."""
    h, w = shape
    cy, cx = rng.uniform(0.4, 0.6, 2) * shape
    ay, ax = rng.uniform(*scale, 2) * shape
    t = rng.uniform(0, np.pi)
    y = np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)
    x = np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)
    u = x * np.float32(np.cos(t)) + y * np.float32(np.sin(t))
    v = y * np.float32(np.cos(t)) - x * np.float32(np.sin(t))
    return (u / np.float32(ax)) ** 2 + (v / np.float32(ay)) ** 2 <= 1


def dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Dilation by a disk of ``radius`` px (pixels within that Euclidean distance of the mask)."""
    return ndimage.distance_transform_edt(~mask) <= radius


def salt(mask: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``mask`` with about ``fraction`` of all pixels, drawn anywhere, set to foreground."""
    out = mask.copy()
    out.flat[rng.integers(0, mask.size, round(fraction * mask.size))] = True
    return out


def speckle(shape: tuple[int, int], count: int, seed: int = 0) -> list[Case]:
    """A smoothed noisy image of an ellipse thresholded at its 67th percentile (a third of the image is
    foreground, speckled all over it) against the clean ellipse: long boundaries everywhere."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        target = ellipse(shape, rng)
        image = ndimage.gaussian_filter(target + rng.normal(0, 1, shape), 1.5)
        cases.append((image > np.quantile(image, 2 / 3), target))
    return _nonempty(cases)


def otsu_demo(count: int) -> list[Case]:
    """The predictions of ``medseg-eval demo``'s Otsu segmenter on the synthetic-lesions images (160x192)."""
    from medseg_eval.datasets.canonical import decode_image
    from medseg_eval.datasets.catalog import synthetic_lesions
    from medseg_eval.demo import otsu

    records = (source.load() for source in islice(synthetic_lesions.cases(()), count))
    return _nonempty((otsu(decode_image(r.image)), r.mask) for r in records)


def noise(size: int, count: int, seed: int = 0) -> list[Case]:
    """Half the pixels drawn at random against a disc: the most boundary an image can hold."""
    rng = np.random.default_rng(seed)
    return _nonempty((rng.random((size, size)) < 0.5, ellipse((size, size), rng, (0.3, 0.3))) for _ in range(count))


def isic(variant: str, shape: tuple[int, int], count: int, seed: int = 0) -> list[Case]:
    """An ISIC-sized ellipse against its 15-px dilation (``dilated``), itself with 0.05% salt noise
    (``salted``), or its blocky copy, downsampled by 16 and upsampled nearest (``blocky``)."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        target = ellipse(shape, rng)
        if variant == "dilated":
            pred = dilate(target, 15)
        elif variant == "salted":
            pred = salt(target, 0.0005, rng)
        else:
            pred = target[::16, ::16].repeat(16, 0).repeat(16, 1)[: shape[0], : shape[1]]
        cases.append((pred, target))
    return _nonempty(cases)


def drive_observers(count: int | None) -> list[Case]:
    """DRIVE's 20 test images: the second observer against the first, both masked by the field of view."""
    from tests.support.real_data import drive_test_pairs

    return _nonempty(((second & fov, first & fov) for _, second, first, fov in drive_test_pairs()), count)


def kvasir_predictions(count: int | None) -> list[Case]:
    """Real predictions: two models of the reduced Kvasir-SEG runs (``leaderboards/kvasir-seg``) on the 120
    test images at their own sizes (up to 1920x1072), against the release's masks; ordered by shape."""
    from tests.support.real_data import kvasir_masks

    with np.load(Path(__file__).parent / "data" / "kvasir_reduced_predictions.npz") as stored:
        predictions = dict(stored)
    truth = dict(kvasir_masks(ids=sorted({k.split("/", 1)[1] for k in predictions})))
    cases = _nonempty((p > 0, truth[k.split("/", 1)[1]]) for k, p in sorted(predictions.items()))
    return sorted(cases, key=lambda c: c[1].shape)[:count]


def synthetic(size: int, count: int, seed: int = 0) -> list[Case]:
    """The tests' case mix (:func:`tests.cases.random_cases`), one class."""
    from tests.support.cases import random_cases

    return _nonempty(((c.pred, c.target) for c in random_cases(count * 2, seed, shape=(size, size))
                      if c.num_classes == 2), count)


def baseline(size: int, count: int, seed: int = 0) -> list[Case]:
    """The case mix of ``../shared/notes/baseline_bench.md`` (:mod:`benchmarks.baseline_cases`)."""
    from benchmarks.baseline_cases import baseline_cases

    return _nonempty(((c.pred, c.target) for c in baseline_cases(count * 2, size, seed)), count)


def kvasir_files(count: int | None) -> list[Case]:
    """Kvasir-SEG's real masks against a copy dilated by 3 px with 0.05% salt noise (for the file round trip)."""
    from tests.support.real_data import kvasir_masks

    rng = np.random.default_rng(0)
    return _nonempty((salt(dilate(mask, 3), 0.0005, rng), mask) for _, mask in kvasir_masks(count))


@dataclass(frozen=True)
class Kind:
    """One row group of the suite.

    ``make(quick, count)`` returns the cases: ``count`` of them (generated kinds make that many, real ones take
    their first ``count``), or the kind's default count when ``None``; tiny sizes and counts when ``quick``.
    ``slow_cap`` is how many of them MONAI and MedPy get; ``references`` are the libraries it applies to;
    ``files`` says the cases go through PNG files and :func:`medseg_eval.evaluate` (end to end).
    """

    name: str
    make: Callable[[bool, int | None], list[Case]]
    slow_cap: int
    references: tuple[str, ...] = ALL_REFERENCES
    files: bool = False


def _generated(make: Callable[[bool, int], list[Case]], default: int, quick_count: int = 4):
    return lambda quick, count: make(quick, count or (quick_count if quick else default))


def _real(make: Callable[[int | None], list[Case]], quick_count: int):
    return lambda quick, count: make(min(count or quick_count, quick_count) if quick else count)


def _isic(variant: str) -> Kind:
    make = _generated(lambda q, n: isic(variant, (555, 836) if q else ISIC_SHAPE, n), 1, 1)
    return Kind(f"isic-{variant}", make, 1)


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("speckle-160x192", _generated(lambda q, n: speckle((160, 192), n), 100), 50),
    Kind("speckle-512", _generated(lambda q, n: speckle((128, 128) if q else (512, 512), n), 20), 10),
    Kind("otsu-demo-160x192", _generated(lambda q, n: otsu_demo(n), 60), 60),
    Kind("noise-2000", _generated(lambda q, n: noise(200 if q else 2000, n), 1, 1), 1),
    _isic("dilated"),
    _isic("salted"),
    _isic("blocky"),
    Kind("drive-observers", _real(drive_observers, 2), 20),
    Kind("kvasir-predictions", _real(kvasir_predictions, 4), 60),
    Kind("synthetic", _generated(lambda q, n: synthetic(128 if q else 512, n), 100), 100),
    Kind("baseline", _generated(lambda q, n: baseline(128 if q else 512, n), 100), 100),
    Kind("evaluate-kvasir-files", _real(kvasir_files, 8), 0, ("surface-distance",), files=True),
)}
