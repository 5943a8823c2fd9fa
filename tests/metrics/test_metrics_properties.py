"""Invariants that hold for every pair of masks, checked on generated masks (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from medseg_eval import metrics

CONVENTIONS = ["surface-distance", "monai", "medpy"]
NAMES = ["dice", "iou", "hausdorff", "hd95", "assd", "masd", "nsd"]

masks = st.integers(4, 20).flatmap(
    lambda h: st.integers(4, 20).flatmap(
        lambda w: st.tuples(arrays(np.bool_, (h, w)), arrays(np.bool_, (h, w)))
    )
)
spacings = st.tuples(st.floats(0.1, 3.0), st.floats(0.1, 3.0))


@settings(max_examples=150, deadline=None)
@given(pair=masks, spacing=spacings, convention=st.sampled_from(CONVENTIONS))
def test_metrics_are_symmetric_and_ordered(pair, spacing, convention) -> None:
    pred, gt = pair
    ab = metrics.compute(pred, gt, NAMES, spacing=spacing, convention=convention)
    ba = metrics.compute(gt, pred, NAMES, spacing=spacing, convention=convention)
    for m in NAMES:
        assert ab[m].item() == ba[m].item(), m
    hd, hd95 = ab["hausdorff"].item(), ab["hd95"].item()
    assert hd >= hd95 >= 0
    assert hd >= ab["assd"].item() >= 0 and hd >= ab["masd"].item() >= 0
    for m in ("dice", "iou", "nsd"):
        assert 0.0 <= ab[m].item() <= 1.0
    assert ab["iou"].item() <= ab["dice"].item() + 1e-15


@settings(max_examples=100, deadline=None)
@given(pair=masks, spacing=spacings, convention=st.sampled_from(CONVENTIONS))
def test_identical_masks_score_perfectly(pair, spacing, convention) -> None:
    mask = pair[0]
    out = metrics.compute(mask, mask, NAMES, spacing=spacing, convention=convention)
    for m in ("dice", "iou", "nsd"):
        assert out[m].item() == 1.0
    for m in ("hausdorff", "hd95", "assd", "masd"):
        assert out[m].item() == 0.0


@settings(max_examples=100, deadline=None)
@given(pair=masks, spacing=spacings, convention=st.sampled_from(CONVENTIONS), pad=st.integers(1, 5))
def test_moving_both_masks_inside_the_image_changes_nothing(pair, spacing, convention, pad) -> None:
    pred, gt = pair
    assume(pred.any() and gt.any())  # an empty mask scores the image diagonal, which padding changes
    # The image border is a boundary, so both versions keep the objects off it; beyond that,
    # results must not depend on where in the image (or in which byte of a packed row) the objects sit.
    a = metrics.compute(np.pad(pred, 1), np.pad(gt, 1), NAMES, spacing=spacing, convention=convention)
    shifted = metrics.compute(np.pad(pred, (pad + 1, 1)), np.pad(gt, (pad + 1, 1)), NAMES, spacing=spacing,
                              convention=convention)
    for m in ("dice", "iou", "hausdorff", "hd95", "assd", "masd", "nsd"):
        assert abs(a[m].item() - shifted[m].item()) <= 1e-12 * max(1.0, abs(a[m].item())), m
