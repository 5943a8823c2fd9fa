"""Lesion metrics: components exactly as scipy/skimage label them, detection as the slow reference says."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch
from scipy import ndimage
from skimage.measure import label as sk_label

from medseg_eval import metrics
from medseg_eval.lesion_tables import lesion_detection, small_lesion_recall
from medseg_eval.metrics import (
    EmptyPolicy,
    LabelError,
    OptionError,
    ShapeMismatchError,
    label_components,
)
from tests.support.lesion_reference import random_lesion_case, reference_lesions


def snake(h: int, w: int) -> np.ndarray:
    """One path folded back and forth over the whole image: the longest component an image holds."""
    g = np.zeros((h, w), bool)
    g[::2] = True
    for i, r in enumerate(range(1, h, 2)):
        g[r, w - 1 if i % 2 == 0 else 0] = True
    return g


def spiral(n: int) -> np.ndarray:
    """A one-pixel path spiralling inwards with one-pixel gaps."""
    g = np.zeros((n, n), bool)
    y = x = d = 0
    steps = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    g[0, 0] = True
    while True:
        for _ in range(4):
            dy, dx = steps[d]
            ny, nx = y + 2 * dy, x + 2 * dx
            if 0 <= ny < n and 0 <= nx < n and not g[ny, nx]:
                g[y + dy, x + dx] = g[ny, nx] = True
                y, x = ny, nx
                break
            d = (d + 1) % 4
        else:
            return g


@pytest.mark.parametrize("connectivity", [4, 8])
def test_labels_equal_scipy_and_skimage_on_random_masks(connectivity):
    rng = np.random.default_rng(connectivity)
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    for trial in range(60):
        shape = (int(rng.integers(1, 40)), int(rng.integers(1, 50)))
        masks = rng.random((4, *shape)) < rng.uniform(0.2, 0.8)
        ours = label_components(torch.from_numpy(masks), connectivity).numpy()
        for i, m in enumerate(masks):
            expected, _ = ndimage.label(m, structure=structure)
            np.testing.assert_array_equal(ours[i], expected, err_msg=f"trial {trial} image {i}")
            np.testing.assert_array_equal(ours[i], sk_label(m, connectivity=1 if connectivity == 4 else 2))


@pytest.mark.parametrize("name, mask", [("snake", snake(96, 101)), ("spiral", spiral(97)),
                                        ("checkerboard", np.indices((33, 35)).sum(0) % 2 == 0)])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_labels_on_worst_cases_for_propagation(name, mask, connectivity):
    expected = sk_label(mask, connectivity=1 if connectivity == 4 else 2)
    np.testing.assert_array_equal(label_components(torch.from_numpy(mask), connectivity)[0].numpy(), expected)


def test_labels_of_empty_and_full_images():
    assert label_components(torch.zeros(2, 5, 6, dtype=torch.bool)).sum() == 0
    assert label_components(torch.ones(2, 5, 6, dtype=torch.bool)).unique().tolist() == [1]


def test_labels_take_numpy_masks_of_any_layout():
    mask = np.indices((7, 9)).sum(0) % 3 == 0
    expected = label_components(torch.from_numpy(mask.copy()))
    for form in (mask, np.flipud(np.flipud(mask).copy()), mask.astype(">i2"), mask.astype(np.float32)):
        assert torch.equal(label_components(form), expected)


@pytest.mark.parametrize("mask, error, message", [
    (np.full((2, 4, 4), 0.5), LabelError, r"`mask` must be boolean \(or 0/1\).*batch index \[0, 1\].*mask > 0"),
    (np.full((4, 4), 255, np.uint8), LabelError, r"must be boolean.*mask > 0"),
    (np.full((4, 4), np.nan), LabelError, "must be boolean"),
    (np.ma.masked_array(np.ones((4, 4), bool)), LabelError, "masked array"),
    (np.ones((1, 1, 4, 4), bool), ShapeMismatchError, r"\[H, W\] or \[B, H, W\]"),
    ([[1, 0], [0, 1]], LabelError, "torch.Tensor or numpy.ndarray"),
])
def test_labels_refuse_what_is_not_a_binary_mask(mask, error, message):
    with pytest.raises(error, match=message):
        label_components(mask)


def test_labels_refuse_an_unknown_connectivity():
    with pytest.raises(OptionError, match="4 or 8"):
        label_components(torch.ones(3, 3, dtype=torch.bool), connectivity=6)


@pytest.mark.parametrize("criterion, min_overlap", [("overlap", 0.0), ("overlap", 0.5), ("iou", 0.5)])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_detection_matches_the_slow_reference(criterion, min_overlap, connectivity):
    rng = np.random.default_rng(100 + connectivity)
    for num_classes in (2, 3):
        cases = [random_lesion_case(rng, num_classes=num_classes) for _ in range(50)]
        pred, target = np.stack([c[0] for c in cases]), np.stack([c[1] for c in cases])
        table = lesion_detection(pred, target, num_classes, connectivity, min_overlap, criterion=criterion)
        rows, counts = reference_lesions(pred, target, num_classes, connectivity, min_overlap, criterion)
        expected = pl.DataFrame(rows).sort("case", "class", "lesion")
        assert table.height == expected.height
        for column in ("case", "class", "lesion", "area", "covered", "top", "left", "bottom", "right", "detected"):
            assert table[column].to_list() == expected[column].to_list(), column
        np.testing.assert_allclose(table["best_iou"].to_numpy(), expected["best_iou"].to_numpy(), rtol=1e-12)

        out = metrics.compute(pred, target, list(metrics.LESION_METRICS), num_classes=num_classes,
                              lesions=metrics.LesionCriteria(connectivity, min_overlap, criterion))
        for (case, cls), (lesions, detected, objects, hits) in counts.items():
            recall = out["lesion_recall"][case, cls - 1].item()
            precision = out["lesion_precision"][case, cls - 1].item()
            if lesions == objects == 0:
                assert recall == precision == out["lesion_f1"][case, cls - 1].item() == 1.0
                continue
            assert recall == (detected / lesions if lesions else 0.0)
            assert precision == (hits / objects if objects else 0.0)
            f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
            assert out["lesion_f1"][case, cls - 1].item() == pytest.approx(f1, rel=1e-12)
            assert out["fp_objects"][case, cls - 1].item() == objects - hits


def test_small_lesion_recall_pools_lesions_over_cases():
    rng = np.random.default_rng(7)
    cases = [random_lesion_case(rng, shape=(64, 64)) for _ in range(40)]
    pred, target = np.stack([c[0] for c in cases]), np.stack([c[1] for c in cases])
    bins = [0, 4, 16, 64, math.inf]
    out = small_lesion_recall(pred, target, size_bins=bins)
    rows, _ = reference_lesions(pred, target, 2)
    for row in out.iter_rows(named=True):
        inside = [r for r in rows if row["bin_low"] <= r["area"] < row["bin_high"]]
        assert row["n_lesions"] == len(inside) and row["n_detected"] == sum(r["detected"] for r in inside)
        if inside:
            assert row["recall"] == pytest.approx(row["n_detected"] / row["n_lesions"])
    assert out["n_lesions"].sum() == len(rows)


def test_empty_bin_is_nan_not_zero():
    t = np.zeros((1, 20, 20), np.uint8)
    t[0, 2:4, 2:4] = 1
    out = small_lesion_recall(t, t, size_bins=[0, 10, 100])
    assert out["n_lesions"].to_list() == [1, 0] and out["recall"][0] == 1.0 and math.isnan(out["recall"][1])


def test_bins_in_mm2_with_spacing():
    t = np.zeros((2, 30, 30), np.uint8)
    t[:, 5:15, 5:15] = 1  # 100 px
    table = lesion_detection(t, t, spacing=[(0.5, 0.5), (2.0, 1.0)])
    assert table["area_mm2"].to_list() == [25.0, 200.0]
    out = small_lesion_recall(t, t, size_bins=[0, 50, 1000], spacing=[(0.5, 0.5), (2.0, 1.0)])
    assert out["n_lesions"].to_list() == [1, 1] and set(out["unit"]) == {"spacing units^2"}


def test_connectivity_decides_whether_diagonal_pixels_form_one_lesion():
    t = np.zeros((1, 6, 6), np.uint8)
    t[0, 1, 1] = t[0, 2, 2] = 1
    assert lesion_detection(t, t, connectivity=8).height == 1
    assert lesion_detection(t, t, connectivity=4).height == 2


def test_empty_masks_follow_the_policy():
    empty, blob = np.zeros((1, 10, 10), np.uint8), np.zeros((1, 10, 10), np.uint8)
    blob[0, 3:6, 3:6] = 1
    names = list(metrics.LESION_METRICS)
    both = metrics.compute(empty, empty, names)
    assert [both[m].item() for m in names] == [1.0, 1.0, 1.0, 0.0]
    missed = metrics.compute(empty, blob, names)
    assert [missed[m].item() for m in names] == [0.0, 0.0, 0.0, 0.0]
    spurious = metrics.compute(blob, empty, names)
    assert [spurious[m].item() for m in names] == [0.0, 0.0, 0.0, 1.0]
    nan = metrics.compute(empty, blob, names, empty=EmptyPolicy(both_empty="nan", one_empty="nan"))
    assert nan["lesion_recall"].item() == 0.0  # defined: one lesion, none found
    assert math.isnan(nan["lesion_precision"].item()) and math.isnan(nan["lesion_f1"].item())


def test_roi_restricts_lesions():
    t = np.zeros((1, 10, 10), np.uint8)
    t[0, 1:3, 1:3] = 1
    t[0, 6:9, 6:9] = 1
    roi = np.zeros((1, 10, 10), bool)
    roi[0, 5:, 5:] = True
    assert lesion_detection(t, t, roi=roi)["area"].to_list() == [9]


@pytest.mark.parametrize("kwargs, message", [
    ({"connectivity": 6}, "connectivity"), ({"min_overlap": 1.5}, "min_overlap"),
    ({"criterion": "dice"}, "criterion"), ({"iou_threshold": 0.3}, "iou_threshold"),
])
def test_bad_lesion_options_are_refused(kwargs, message):
    t = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=message):
        lesion_detection(t, t, **kwargs)


def test_bad_size_bins_are_refused():
    t = np.zeros((1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="size_bins"):
        small_lesion_recall(t, t, size_bins=[0, 100, 50])
