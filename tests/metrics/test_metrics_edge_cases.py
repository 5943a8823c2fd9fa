"""Edge cases: empty masks (the policy), single pixels, the image border, full images, the ROI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import EmptyPolicy
from medseg_eval.metrics.surface import sqrt_rn
from tests.support.references import REFERENCES

CONVENTIONS = ["surface-distance", "monai", "medpy"]
SPACINGS = [(1.0, 1.0), (0.5, 0.8)]
DISTANCES = ["hausdorff", "hd95", "assd", "masd", "nsd"]


def _mask(shape=(24, 30), **boxes) -> np.ndarray:
    m = np.zeros(shape, bool)
    for ys, xs in boxes.values():
        m[ys, xs] = True
    return m


def _disk(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


SHAPE = (24, 30)
NON_EMPTY_CASES = {
    "identical": (_disk(SHAPE, 12, 15, 6), _disk(SHAPE, 12, 15, 6)),
    "pixel_same": (_mask(a=(5, 7)), _mask(a=(5, 7))),
    "pixel_apart": (_mask(a=(3, 4)), _mask(a=(20, 25))),
    "pixel_vs_disk": (_mask(a=(12, 15)), _disk(SHAPE, 12, 15, 4)),
    "corner_pixel": (_mask(a=(0, 0)), _mask(a=(1, 2))),
    "border_touch": (_disk(SHAPE, 0, 10, 7), _disk(SHAPE, 1, 11, 7)),
    "border_corner": (_mask(a=(slice(0, 6), slice(0, 7))), _mask(a=(slice(0, 5), slice(0, 9)))),
    "full_image": (np.ones(SHAPE, bool), np.ones(SHAPE, bool)),
    "full_vs_blob": (np.ones(SHAPE, bool), _disk(SHAPE, 12, 15, 3)),
    "two_components": (_mask(a=(slice(2, 6), slice(2, 6)), b=(slice(15, 20), slice(20, 28))),
                       _mask(a=(slice(2, 7), slice(3, 6)))),
}


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("name", list(NON_EMPTY_CASES))
def test_edge_case_matches_reference(name: str, convention: str, spacing) -> None:
    pred, gt = NON_EMPTY_CASES[name]
    ours = metrics.compute(pred, gt, list(metrics.METRICS), spacing=spacing, convention=convention)
    ref = REFERENCES[convention](pred, gt, spacing, 95.0, 2.0)
    for metric, value in ref.items():
        if math.isnan(value):
            continue  # undefined in the reference (e.g. specificity of a full mask): the policy decides
        got = ours[metric.split("@")[0]].item()
        assert math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9), f"{name} {metric}: ours {got}, ref {value}"


def _empty_pair(which: str) -> tuple[np.ndarray, np.ndarray]:
    blob = _disk(SHAPE, 10, 10, 4)
    empty = np.zeros(SHAPE, bool)
    return {"pred": (empty, blob), "target": (blob, empty), "both": (empty, empty)}[which]


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("spacing", SPACINGS)
def test_default_empty_policy_scores_best_and_worst(convention: str, spacing) -> None:
    diagonal = math.hypot(SHAPE[0] * spacing[0], SHAPE[1] * spacing[1])
    names = list(metrics.METRICS)
    for which in ("pred", "target"):
        out = metrics.compute(*_empty_pair(which), names, spacing=spacing, convention=convention)
        assert out["dice"].item() == 0.0 and out["iou"].item() == 0.0 and out["nsd"].item() == 0.0
        for m in ("hausdorff", "hd95", "assd", "masd"):
            assert out[m].item() == pytest.approx(diagonal, rel=1e-12), (which, m)
        # With empty ground truth, the whole image minus the prediction is true negative.
        assert out["specificity"].item() == pytest.approx(1.0 if which == "pred" else 1 - 49 / 720)
    both = metrics.compute(*_empty_pair("both"), names, spacing=spacing, convention=convention)
    for m in names:
        expected = 0.0 if m in ("hausdorff", "hd95", "assd", "masd") else 1.0
        assert both[m].item() == expected, m


def test_nan_and_inf_empty_policies() -> None:
    names = list(metrics.METRICS)
    nan_policy = EmptyPolicy(both_empty="nan", one_empty="nan")
    for which in ("pred", "target", "both"):
        out = metrics.compute(*_empty_pair(which), names, empty=nan_policy)
        for m in ("dice", "iou", "hausdorff", "hd95", "assd", "masd", "nsd"):
            assert math.isnan(out[m].item()), (which, m)
    out = metrics.compute(*_empty_pair("pred"), names, empty=EmptyPolicy(worst_distance="inf"))
    assert out["hausdorff"].item() == math.inf and out["hd95"].item() == math.inf
    assert out["dice"].item() == 0.0


def test_empty_policy_rejects_unknown_values() -> None:
    with pytest.raises(ValueError, match="one_empty"):
        EmptyPolicy(one_empty="zero")  # type: ignore[arg-type]


def test_an_empty_class_does_not_disturb_the_others() -> None:
    pred = np.zeros(SHAPE, np.int64)
    gt = np.zeros(SHAPE, np.int64)
    pred[_disk(SHAPE, 8, 8, 4)] = 1
    gt[_disk(SHAPE, 9, 8, 4)] = 1
    gt[_disk(SHAPE, 18, 22, 3)] = 2  # class 2 missed entirely; class 3 absent from both
    out = metrics.compute(pred, gt, ["dice", "hausdorff"], num_classes=4, spacing=(0.5, 0.8))
    alone = metrics.compute(pred == 1, gt == 1, ["dice", "hausdorff"], spacing=(0.5, 0.8))
    assert out["dice"][0, 0] == alone["dice"][0, 0]
    assert out["hausdorff"][0, 0] == alone["hausdorff"][0, 0]
    assert out["dice"][0, 1].item() == 0.0 and out["dice"][0, 2].item() == 1.0
    assert out["hausdorff"][0, 2].item() == 0.0


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_roi_equals_masking_both_masks(convention: str) -> None:
    rng = np.random.default_rng(3)
    pred = rng.random((4, 40, 50)) < 0.3
    gt = rng.random((4, 40, 50)) < 0.3
    roi = _disk((40, 50), 20, 25, 17)
    names = list(metrics.METRICS)
    with_roi = metrics.compute(pred, gt, names, roi=roi, convention=convention)
    masked = metrics.compute(pred & roi, gt & roi, names, convention=convention)
    for m in ["dice", "iou", "precision", "recall", *DISTANCES]:
        torch.testing.assert_close(with_roi[m], masked[m], rtol=0, atol=0)
    # Specificity counts true negatives inside the ROI only (slow, obvious reference).
    tn = ((~pred) & (~gt) & roi).sum((1, 2))
    fp = (pred & (~gt) & roi).sum((1, 2))
    np.testing.assert_allclose(with_roi["specificity"][:, 0].numpy(), tn / (tn + fp), rtol=1e-12)


def test_input_types_give_identical_results() -> None:
    pred, gt = NON_EMPTY_CASES["two_components"]
    reference = metrics.compute(pred, gt, DISTANCES + ["dice"])
    for p, g in [
        (pred.astype(np.uint8), gt.astype(np.uint8)),
        (torch.from_numpy(pred), torch.from_numpy(gt)),
        (torch.from_numpy(pred).float(), torch.from_numpy(gt).double()),
        (pred.astype(np.int16)[None], gt.astype(np.int32)[None]),
        (torch.from_numpy(pred.T.copy()).T, torch.from_numpy(gt.T.copy()).T),  # non-contiguous views
    ]:
        out = metrics.compute(p, g, DISTANCES + ["dice"])
        for m in reference:
            assert out[m].dtype == torch.float64 and out[m].shape == (1, 1)
            torch.testing.assert_close(out[m], reference[m], rtol=0, atol=0)


def test_per_case_spacing_scales_distances() -> None:
    pred, gt = NON_EMPTY_CASES["border_corner"]
    batch_pred = np.stack([pred, pred]); batch_gt = np.stack([gt, gt])
    out = metrics.hausdorff(batch_pred, batch_gt, spacing=[[1.0, 1.0], [2.0, 2.0]])
    assert out[1, 0].item() == pytest.approx(2 * out[0, 0].item(), rel=1e-12)


def test_hd_is_an_alias_of_hausdorff() -> None:
    pred, gt = NON_EMPTY_CASES["two_components"]
    out = metrics.compute(pred, gt, ["hd", "hausdorff", "dice"])
    assert list(out) == ["hd", "hausdorff", "dice"]
    assert out["hd"].item() == out["hausdorff"].item() > 0


def test_class_ids_beyond_the_input_dtype_are_compared_safely() -> None:
    pred = np.zeros(SHAPE, np.uint8); pred[_disk(SHAPE, 9, 9, 4)] = 5
    gt = pred.copy()
    out = metrics.dice(pred, gt, num_classes=300)
    assert out.shape == (1, 299)
    assert out[0, 4].item() == 1.0 and torch.all(out == 1.0)  # absent classes: both empty
    assert metrics.dice(pred, np.zeros_like(gt), num_classes=300)[0, 4].item() == 0.0


@pytest.mark.parametrize("shape", [(1, 12), (12, 1), (1, 1), (2, 3)])
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_degenerate_image_shapes_match_reference(shape, convention: str) -> None:
    rng = np.random.default_rng(sum(shape))
    pairs = [(rng.random(shape) < 0.5, rng.random(shape) < 0.5) for _ in range(20)]
    for pred, gt in [(p, g) for p, g in pairs if p.any() and g.any()]:
        ours = metrics.compute(pred, gt, list(metrics.METRICS), spacing=(0.7, 1.3), convention=convention)
        for name, value in REFERENCES[convention](pred, gt, (0.7, 1.3), 95.0, 2.0).items():
            if not math.isnan(value):
                got = ours[name.split("@")[0]].item()
                assert math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9), (shape, name, got, value)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_percentile_extremes(convention: str) -> None:
    pred, gt = NON_EMPTY_CASES["two_components"]
    hd = metrics.hausdorff(pred, gt, spacing=(0.5, 0.8), convention=convention)
    assert metrics.hd95(pred, gt, spacing=(0.5, 0.8), convention=convention, percentile=100.0).item() == hd.item()
    assert metrics.hausdorff(pred, gt, spacing=(0.5, 0.8), convention=convention, percentile=100.0).item() == hd.item()
    p0 = metrics.hd95(pred, gt, spacing=(0.5, 0.8), convention=convention, percentile=0.0).item()
    if convention != "monai":  # MONAI returns the maximum for percentile=0 (a falsy test); we do not
        ref = REFERENCES[convention](pred, gt, (0.5, 0.8), 0.0, 2.0)["hd95"]
        assert p0 == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert p0 <= hd.item()


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_zero_tolerance_nsd_counts_exactly_shared_boundary(convention: str) -> None:
    pred, gt = NON_EMPTY_CASES["border_corner"]
    ref = REFERENCES[convention](pred, gt, (1.0, 1.0), 95.0, 0.0)
    nsd_ref = ref.get("nsd", ref.get("nsd@monai"))
    # rel 1e-6: MONAI returns float32.
    assert metrics.nsd(pred, gt, convention=convention, tolerance=0.0).item() == pytest.approx(nsd_ref, rel=1e-6)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_small_objects_in_a_large_image_match_reference(convention: str) -> None:
    # Small objects far apart, near different borders: long searches across mostly empty images.
    shape = (300, 420)
    rng = np.random.default_rng(4)
    batch_pred, batch_gt = [], []
    for _ in range(6):
        pred, gt = np.zeros(shape, bool), np.zeros(shape, bool)
        for _ in range(int(rng.integers(1, 4))):
            cy, cx = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            pred |= _disk(shape, cy, cx, int(rng.integers(1, 6)))
            gt |= _disk(shape, cy + int(rng.integers(-3, 4)), cx + int(rng.integers(-3, 4)), int(rng.integers(1, 6)))
        batch_pred.append(pred)
        batch_gt.append(gt)
    ours = metrics.compute(np.stack(batch_pred), np.stack(batch_gt), list(metrics.METRICS), spacing=(0.6, 1.1),
                           convention=convention)
    for index, (pred, gt) in enumerate(zip(batch_pred, batch_gt)):
        for name, value in REFERENCES[convention](pred, gt, (0.6, 1.1), 95.0, 2.0).items():
            got = ours[name.split("@")[0]][index, 0].item()
            assert math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-9), (index, name, got, value)


def test_counts_are_the_pixel_confusion_matrix_inside_the_roi() -> None:
    rng = np.random.default_rng(11)
    pred, gt = rng.integers(0, 3, (4, 37, 29)), rng.integers(0, 3, (4, 37, 29))
    roi = rng.random((4, 37, 29)) > 0.3
    out = metrics.compute(pred, gt, ["tp", "fp", "fn", "tn", "dice"], num_classes=3, roi=roi)
    for c in (1, 2):
        p, g = (pred == c) & roi, (gt == c) & roi
        expected = {"tp": p & g, "fp": p & ~g, "fn": ~p & g, "tn": ~p & ~g & roi}
        for name, mask in expected.items():
            np.testing.assert_array_equal(out[name][:, c - 1].numpy(), mask.sum((1, 2)))
    tp, fp, fn = out["tp"], out["fp"], out["fn"]
    torch.testing.assert_close(out["dice"], 2 * tp / (2 * tp + fp + fn))


def test_weighted_percentile_follows_numpys_summation_where_a_share_lands_on_the_percentile() -> None:
    """DeepMind divides a cumulative sum by ``np.sum`` (pairwise): a share that should equal q
    exactly lands one ulp off, and the element it picks is the reference's only with the same sum."""
    pred, gt = np.array([[1, 0, 1]], bool), np.array([[0, 1, 0]], bool)
    assert metrics.hd95(pred, gt, percentile=50.0).item() == REFERENCES["surface-distance"](pred, gt, (1, 1), 50.0, 2.0)["hd95"] == 0.0
    rng = np.random.default_rng(12)
    cases = [(rng.random((3, 4)) < 0.4, rng.random((3, 4)) < 0.4) for _ in range(600)]
    cases = [(p, g) for p, g in cases if p.any() and g.any()]
    preds, gts = np.stack([p for p, _ in cases]), np.stack([g for _, g in cases])
    for percentile in (50.0, 95.0):
        ours = metrics.hd95(preds, gts, percentile=percentile, spacing=(1.0, 1.0))[:, 0].tolist()
        ref = [REFERENCES["surface-distance"](p, g, (1.0, 1.0), percentile, 2.0, names=("hd95",))["hd95"] for p, g in cases]
        assert ours == ref, [i for i, (a, b) in enumerate(zip(ours, ref)) if a != b][:5]


@pytest.mark.parametrize("convention", ["monai", "medpy"])
def test_edge_pixel_nsd_compares_float32_distances_with_a_float32_tolerance(convention: str) -> None:
    # 3 px apart at sx = 0.1: 0.30000000000000004 in float64, 0.3 in float32 -- within a tolerance of 0.3 for MONAI.
    pred, gt = np.array([[1, 0, 0, 0]], bool), np.array([[0, 0, 0, 1]], bool)
    ref = REFERENCES["monai"](pred, gt, (1.0, 0.1), 95.0, 0.3, names=("nsd",))["nsd"]
    assert metrics.nsd(pred, gt, spacing=(1.0, 0.1), tolerance=0.3, convention=convention).item() == ref == 1.0


def test_sqrt_is_correctly_rounded() -> None:
    # Torch's vectorized CPU sqrt is one ulp off for ~1% of these; NumPy's and math.sqrt are exact.
    x = np.random.default_rng(13).random(20_000) * 1e4
    assert sqrt_rn(torch.from_numpy(x)).tolist() == [math.sqrt(v) for v in x]


def test_nsd_at_a_tolerance_equal_to_a_distance_matches_surface_distance() -> None:
    # One pixel each, (dy, dx) apart: the corner-to-corner distance sqrt(dy**2 + dx**2) is the tolerance
    # exactly, and one ulp moves it across (torch's CPU sqrt(149) is one ulp high, for one).
    offsets = [(dy, dx) for dy in range(22) for dx in range(dy, 22) if 0 < dy * dy + dx * dx <= 600]
    preds, gts = np.zeros((len(offsets), 24, 24), bool), np.zeros((len(offsets), 24, 24), bool)
    preds[:, 1, 1] = True
    for i, (dy, dx) in enumerate(offsets):
        gts[i, 1 + dy, 1 + dx] = True
    for i, (dy, dx) in enumerate(offsets):
        tolerance = math.sqrt(dy * dy + dx * dx)
        ours = metrics.nsd(preds[i:i + 1], gts[i:i + 1], tolerance=tolerance, convention="surface-distance").item()
        ref = REFERENCES["surface-distance"](preds[i], gts[i], (1.0, 1.0), 95.0, tolerance, names=("nsd",))["nsd"]
        assert ours == pytest.approx(ref, rel=1e-12), (dy, dx)


def test_the_empty_policy_diagonal_does_not_depend_on_the_batch() -> None:
    rng = np.random.default_rng(15)
    spacing = rng.uniform(0.1, 3.0, (40, 2))
    gt = np.zeros((40, 9, 13), bool)
    gt[:, 4, 6] = True
    batch = metrics.hausdorff(np.zeros_like(gt), gt, spacing=spacing)[:, 0].tolist()
    assert batch == [math.sqrt((9 * sy) ** 2 + (13 * sx) ** 2) for sy, sx in spacing]
    assert batch[-1] == metrics.hausdorff(np.zeros_like(gt[-1:]), gt[-1:], spacing=spacing[-1:]).item()
