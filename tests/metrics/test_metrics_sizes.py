"""Cases of several sizes padded into one batch (``compute(..., sizes=...)``) score as each case alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics.errors import ShapeMismatchError
from tests.support.cases import KINDS, random_case

NAMES = ["dice", "iou", "specificity", "tn", "fp", "hausdorff", "hd95", "assd", "masd", "nsd",
         "lesion_recall", "lesion_f1", "fp_objects"]


def _padded(arrays: list[np.ndarray], fill: int = 0) -> np.ndarray:
    height, width = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    out = np.full((len(arrays), height, width), fill, dtype=arrays[0].dtype)
    for i, a in enumerate(arrays):
        out[i, :a.shape[0], :a.shape[1]] = a
    return out


@pytest.mark.parametrize("convention", ["surface-distance", "monai", "medpy"])
@pytest.mark.parametrize("seed", range(3))
def test_padded_batch_equals_each_case_alone(convention: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cases = [random_case(rng, KINDS[i % (len(KINDS) - 1)]) for i in range(12)]  # binary kinds, 24-96 px sides
    cases[0].pred[:] = 0  # an empty prediction: the empty-mask rule's diagonal is the case's own
    cases[1].target[:] = 0
    spacing = rng.choice([0.5, 1.0, 1.7], size=(len(cases), 2))
    rois = [rng.random(c.target.shape) < 0.97 for c in cases]
    sizes = np.array([c.target.shape for c in cases])
    # Padding holds foreground, which `sizes` must keep out of every value.
    pred, target = _padded([c.pred for c in cases], fill=1), _padded([c.target for c in cases], fill=1)
    for roi in (None, _padded(rois)):
        batched = metrics.compute(pred, target, NAMES, spacing=spacing, roi=roi, convention=convention, sizes=sizes)
        for i, c in enumerate(cases):
            alone = metrics.compute(c.pred[None], c.target[None], NAMES, spacing=spacing[i],
                                    roi=None if roi is None else rois[i][None], convention=convention)
            for m in NAMES:
                torch.testing.assert_close(batched[m][i], alone[m][0], rtol=0, atol=0, equal_nan=True, msg=m)


def test_sizes_are_checked() -> None:
    masks = np.zeros((2, 4, 5), dtype=np.int64)
    for bad in ([[4, 5]], [[4, 6], [1, 1]], [[0, 5], [4, 5]], [[4.0, 5.0], [4.0, 5.0]]):
        with pytest.raises(ShapeMismatchError, match="sizes"):
            metrics.compute(masks, masks, ["dice"], sizes=np.array(bad))


def test_merged_rows_equal_sorting_the_concatenation() -> None:
    """MedPy's pooled percentile reads the two directions' sorted rows merged: the same rows as a sort."""
    from medseg_eval.metrics.surface import merged_rows

    rng = np.random.default_rng(3)
    for _ in range(100):
        n, la, lb = rng.integers(1, 5), rng.integers(1, 60), rng.integers(1, 60)
        a = np.sort(rng.integers(0, 12, size=(n, la)).astype(np.float64), 1)
        b = np.sort(rng.integers(0, 12, size=(n, lb)).astype(np.float64), 1)
        a[:, la - rng.integers(0, la):] = np.inf  # the padding of rows of fewer elements
        b[:, lb - rng.integers(0, lb):] = np.inf
        a, b = np.sort(a, 1), np.sort(b, 1)
        want = np.sort(np.concatenate([a, b], 1), 1)
        np.testing.assert_array_equal(merged_rows(torch.from_numpy(a), torch.from_numpy(b)).numpy(), want)
