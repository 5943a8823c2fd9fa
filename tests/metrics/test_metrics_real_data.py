"""The conventions against their libraries on real masks: DRIVE vessels and Kvasir-SEG polyps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg_eval import metrics
from tests.support.real_data import drive_test_pairs, kvasir_masks
from tests.support.references import REFERENCES

CONVENTIONS = ["surface-distance", "monai", "medpy"]
NAMES = list(metrics.METRICS)


def _assert_matches(pred, gt, spacing, convention, ours, index, label, skip=()) -> None:
    ref = REFERENCES[convention](pred, gt, spacing, 95.0, 2.0)
    for name, value in ref.items():
        if name in skip:
            continue
        got = ours[name.split("@")[0]][index, 0].item()
        assert math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9), f"{label} {name}: ours {got}, ref {value}"


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_drive_second_observer_within_field_of_view(convention: str) -> None:
    pairs = drive_test_pairs()
    assert len(pairs) == 20
    second = np.stack([p[1] for p in pairs]); first = np.stack([p[2] for p in pairs])
    fov = np.stack([p[3] for p in pairs])
    spacing = (1.0, 1.0)
    ours = metrics.compute(second, first, NAMES, roi=fov, spacing=spacing, convention=convention)
    # Human observers agree well on vessels: a sanity anchor besides the exact comparison below.
    assert 0.7 < ours["dice"].mean().item() < 0.85
    for index, (case, pred, gt, roi) in enumerate(pairs):
        # The references see the masked images whole; our specificity counts negatives in the FOV only.
        _assert_matches(pred & roi, gt & roi, spacing, convention, ours, index, f"DRIVE {case}", skip={"specificity"})
        tn, fp = (~pred & ~gt & roi).sum(), (pred & ~gt & roi).sum()
        assert ours["specificity"][index, 0].item() == pytest.approx(tn / (tn + fp), rel=1e-12)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_kvasir_polyps_moved_and_eroded(convention: str) -> None:
    rng = np.random.default_rng(0)
    for case, gt in kvasir_masks(12):
        dy, dx = rng.integers(-8, 9, 2)
        pred = np.roll(gt, (dy, dx), (0, 1))
        pred[: gt.shape[0] // 3] = False  # a missed upper part: a long, lopsided error
        spacing = tuple(rng.uniform(0.5, 1.5, 2))
        ours = metrics.compute(pred, gt, NAMES, spacing=spacing, convention=convention)
        _assert_matches(pred, gt, spacing, convention, ours, 0, f"Kvasir {case} {gt.shape}")
