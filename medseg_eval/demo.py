"""The offline demo: two classical segmenters on the synthetic-lesions dataset, evaluated and compared.

Runs on a fresh machine without network: the dataset is generated, the segmenters are
scikit-image's Otsu threshold and the same followed by a morphological opening and small-object
removal (a real trade-off: fewer false-positive specks, more missed small lesions).
"""

from __future__ import annotations

import numpy as np

from .datasets import build, canonical_dir, load_dataset, verify
from .evaluate import evaluate
from .results import Results

DATASET = "synthetic-lesions"


def otsu(image: np.ndarray) -> np.ndarray:
    """Foreground where the image is brighter than its Otsu threshold."""
    from skimage.filters import threshold_otsu

    return (image > threshold_otsu(image)).astype(np.uint8)


def otsu_opened(image: np.ndarray) -> np.ndarray:
    """Otsu, then an opening with a disk of radius 2 and removal of objects under 20 pixels."""
    from skimage.morphology import disk, opening, remove_small_objects

    cleaned = opening(otsu(image).astype(bool), disk(2))
    return remove_small_objects(cleaned, max_size=19).astype(np.uint8)


SEGMENTERS = {"otsu": otsu, "otsu+opening": otsu_opened}


def run_demo(*, progress: bool = False) -> dict[str, Results]:
    """Build (or reuse) the synthetic dataset, segment its test split both ways, evaluate both.

    Examples
    --------
    >>> results = run_demo()
    >>> sorted(results), results["otsu"].provenance["dataset"]
    (['otsu', 'otsu+opening'], 'synthetic-lesions')
    """
    if not (canonical_dir(DATASET) / "data").is_dir() or not verify(DATASET, progress=False).ok:
        build(DATASET, progress=progress)
    test = load_dataset(DATASET, split="test")
    images = {row["case_id"]: np.asarray(row["image"]) for row in test.select_columns(["case_id", "image"])}
    return {name: evaluate({c: segment(img) for c, img in images.items()}, DATASET, progress=progress)
            for name, segment in SEGMENTERS.items()}
