"""Topology, boundary and agreement metrics against their published definitions: clDice as the authors'
code computes it, Betti numbers by labelling with SciPy, Boundary IoU as the authors' API erodes,
the boundary F-score from DeepMind's own surfels, MCC and balanced accuracy from MONAI."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.morphology import skeletonize

from medseg_eval import metrics
from medseg_eval.metrics import OptionError, TopologyOptions, betti_numbers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import monai.metrics as monai_metrics
    import surface_distance as deepmind

TOPOLOGY = ["cldice", "betti0_error", "betti1_error", "boundary_iou"]


def random_masks(rng: np.random.Generator, n: int, shape: tuple[int, int], density: float = 0.45) -> np.ndarray:
    """Smoothed noise: blobs with holes, thin bridges, diagonal contacts and border contacts."""
    noise = rng.random((n, *shape))
    smooth = np.stack([ndimage.uniform_filter(x, size=3) for x in noise])
    return smooth > np.quantile(smooth, 1 - density, axis=(1, 2), keepdims=True)


# --- the published definitions, one image at a time -------------------------------------------------

def cldice_reference(p: np.ndarray, g: np.ndarray) -> float:
    """jocpae/clDice cldice_metric/cldice.py: cl_score(v, s) = sum(v*s)/sum(s), harmonic mean."""
    tprec = np.sum(p * skeletonize(g)) / np.sum(skeletonize(g))
    tsens = np.sum(g * skeletonize(p)) / np.sum(skeletonize(p))
    return 0.0 if tprec + tsens == 0 else 2 * tprec * tsens / (tprec + tsens)


def betti_reference(m: np.ndarray, fg: int = 8) -> tuple[int, int]:
    structure = {8: np.ones((3, 3)), 4: ndimage.generate_binary_structure(2, 1)}
    b0 = ndimage.label(m, structure=structure[fg])[1]
    b1 = ndimage.label(np.pad(~m, 1, constant_values=True), structure=structure[12 - fg])[1] - 1
    return b0, b1


def boundary_reference(m: np.ndarray, ratio: float = 0.02) -> np.ndarray:
    """boundary-iou-api mask_to_boundary: pad by one background pixel, erode with a 3x3 square
    round(ratio * diagonal) times (outside the padded image counts as foreground), subtract."""
    h, w = m.shape
    d = max(1, round(float(ratio * np.sqrt(h**2 + w**2))))
    padded = np.pad(m, 1)
    eroded = ndimage.binary_erosion(padded, structure=np.ones((3, 3)), iterations=d, border_value=1)[1:-1, 1:-1]
    return m & ~eroded


def boundary_iou_reference(p: np.ndarray, g: np.ndarray, ratio: float = 0.02) -> float:
    bp, bg = boundary_reference(p, ratio), boundary_reference(g, ratio)
    return (bp & bg).sum() / (bp | bg).sum()


# --- tests ---------------------------------------------------------------------------------------

def test_topology_metrics_match_the_published_definitions_on_random_masks() -> None:
    rng = np.random.default_rng(29)
    pred, gt = random_masks(rng, 24, (31, 40)), random_masks(rng, 24, (31, 40))
    out = metrics.compute(pred, gt, TOPOLOGY)
    for i in range(len(pred)):
        p, g = pred[i], gt[i]
        (p0, p1), (g0, g1) = betti_reference(p), betti_reference(g)
        want = {"cldice": cldice_reference(p, g), "betti0_error": abs(p0 - g0), "betti1_error": abs(p1 - g1),
                "boundary_iou": boundary_iou_reference(p, g)}
        for name, value in want.items():
            assert math.isclose(out[name][i, 0].item(), value, rel_tol=1e-12, abs_tol=1e-12), (i, name)
    assert (out["betti1_error"] > 0).any() and (out["betti0_error"] > 0).any() and (out["cldice"] < 1).all()


@pytest.mark.parametrize("fg", [8, 4])
def test_betti_numbers_match_scipy_labelling(fg: int) -> None:
    rng = np.random.default_rng(fg)
    masks = random_masks(rng, 30, (17, 23), density=0.5)
    b0, b1 = betti_numbers(torch.from_numpy(masks), fg, 12 - fg)
    want = np.array([betti_reference(m, fg) for m in masks])
    assert np.array_equal(b0.numpy(), want[:, 0]) and np.array_equal(b1.numpy(), want[:, 1])
    assert want[:, 1].max() >= 2  # several holes somewhere


def test_betti_connectivity_decides_diagonal_contacts() -> None:
    diamond = np.zeros((5, 5), bool)
    diamond[[1, 2, 2, 3], [2, 1, 3, 2]] = True  # four pixels touching diagonally around a background pixel
    m = torch.from_numpy(diamond)[None]
    assert [t.item() for t in betti_numbers(m, 8, 4)] == [1, 1]  # one 8-connected ring around a 4-connected hole
    assert [t.item() for t in betti_numbers(m, 4, 8)] == [4, 0]  # four pixels; the centre leaks out diagonally
    ring = np.ones((6, 6), bool)
    ring[2:4, 2:4] = False
    out = metrics.compute(np.zeros((6, 6), np.int64), ring, ["betti0_error", "betti1_error"])
    assert out["betti0_error"].item() == 1 and out["betti1_error"].item() == 1  # defined on an empty prediction
    with pytest.raises(OptionError, match="complementary"):
        TopologyOptions(foreground_connectivity=8, background_connectivity=8)


def test_skeletons_of_a_batch_equal_those_of_each_image() -> None:
    rng = np.random.default_rng(5)
    masks = random_masks(rng, 12, (19, 26), density=0.6)
    masks[0] = True  # the image border counts as background
    batch = metrics.topology.skeletons(torch.from_numpy(masks)).numpy()
    assert all(np.array_equal(batch[i], skeletonize(masks[i])) for i in range(len(masks)))


def test_cldice_sees_a_broken_vessel_that_dice_barely_does() -> None:
    vessel = np.zeros((40, 40), bool)
    vessel[19:22, 2:38] = True
    broken = vessel.copy()
    broken[:, 19:21] = False
    out = metrics.compute(broken, vessel, ["dice", "cldice", "betti0_error"])
    assert out["dice"].item() > 0.95 and out["betti0_error"].item() == 1
    assert out["cldice"].item() == pytest.approx(cldice_reference(broken, vessel), abs=1e-12)


@pytest.mark.parametrize("ratio", [0.02, 0.1])
def test_boundary_iou_matches_the_authors_erosion_on_non_square_images(ratio: float) -> None:
    rng = np.random.default_rng(int(ratio * 100))
    pred, gt = random_masks(rng, 6, (60, 23)), random_masks(rng, 6, (60, 23))
    out = metrics.compute(pred, gt, ["boundary_iou"], topology=TopologyOptions(boundary_dilation=ratio))
    want = [boundary_iou_reference(p, g, ratio) for p, g in zip(pred, gt)]
    assert np.allclose(out["boundary_iou"][:, 0].numpy(), want, rtol=1e-12)


def test_boundary_iou_of_padded_cases_uses_each_cases_own_size() -> None:
    rng = np.random.default_rng(1)
    small_p, small_g = random_masks(rng, 1, (20, 30))[0], random_masks(rng, 1, (20, 30))[0]
    big_p, big_g = random_masks(rng, 1, (70, 64))[0], random_masks(rng, 1, (70, 64))[0]
    pred, gt = np.zeros((2, 70, 64), bool), np.zeros((2, 70, 64), bool)
    pred[0, :20, :30], gt[0, :20, :30], pred[1], gt[1] = small_p, small_g, big_p, big_g
    out = metrics.compute(pred, gt, ["boundary_iou", "cldice"], sizes=[[20, 30], [70, 64]])
    assert out["boundary_iou"][0, 0].item() == pytest.approx(boundary_iou_reference(small_p, small_g), abs=1e-12)
    assert out["boundary_iou"][1, 0].item() == pytest.approx(boundary_iou_reference(big_p, big_g), abs=1e-12)
    assert out["cldice"][0, 0].item() == pytest.approx(cldice_reference(small_p, small_g), abs=1e-12)


def test_topology_metrics_per_class_and_empty_classes() -> None:
    rng = np.random.default_rng(2)
    a, b = random_masks(rng, 2, (30, 30))
    pred = a.astype(np.int64) + 2 * (b & ~a)
    gt = np.roll(pred, 1, axis=0)
    gt[gt == 2] = 0  # class 2 missing from the ground truth
    out = metrics.compute(pred, gt, TOPOLOGY, num_classes=3)
    assert all(v.shape == (1, 2) for v in out.values())
    assert out["cldice"][0, 1].item() == 0.0 and out["boundary_iou"][0, 1].item() == 0.0  # one empty: worst
    assert out["cldice"][0, 0].item() == pytest.approx(cldice_reference(pred == 1, gt == 1), abs=1e-12)
    nan = metrics.compute(pred, gt, ["cldice"], num_classes=3, empty=metrics.EmptyPolicy(one_empty="nan"))
    assert math.isnan(nan["cldice"][0, 1].item())


def test_boundary_f1_matches_deepmind_surfels_and_edge_pixel_counts() -> None:
    rng = np.random.default_rng(9)
    pred, gt = random_masks(rng, 8, (25, 33)), random_masks(rng, 8, (25, 33))
    spacing, tolerance = (0.8, 1.3), 1.5
    ours = {c: metrics.compute(pred, gt, ["boundary_f1"], spacing=spacing, tolerance=tolerance, convention=c)
            ["boundary_f1"][:, 0] for c in ("surface-distance", "medpy")}
    for i, (p, g) in enumerate(zip(pred, gt)):
        sd = deepmind.compute_surface_distances(g, p, spacing_mm=spacing)
        precision = sd["surfel_areas_pred"][sd["distances_pred_to_gt"] <= tolerance].sum() / sd["surfel_areas_pred"].sum()
        recall = sd["surfel_areas_gt"][sd["distances_gt_to_pred"] <= tolerance].sum() / sd["surfel_areas_gt"].sum()
        assert ours["surface-distance"][i].item() == pytest.approx(2 * precision * recall / (precision + recall), rel=1e-9)
        edges = [m & ~ndimage.binary_erosion(m) for m in (p, g)]
        to = [ndimage.distance_transform_edt(~e, sampling=spacing) for e in edges]
        precision, recall = (to[1][edges[0]] <= tolerance).mean(), (to[0][edges[1]] <= tolerance).mean()
        assert ours["medpy"][i].item() == pytest.approx(2 * precision * recall / (precision + recall), rel=1e-9)


def _tensor(m: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(m.astype(np.float32))[None, None]


def test_agreement_metrics_match_monai_and_their_formulas() -> None:
    rng = np.random.default_rng(4)
    pred, gt = random_masks(rng, 20, (16, 16), 0.3), random_masks(rng, 20, (16, 16), 0.5)
    pred[0] = gt[0]  # perfect agreement
    pred[1] = ~gt[1]  # perfect disagreement
    out = metrics.compute(pred, gt, ["mcc", "kappa", "balanced_accuracy", "volume_similarity"])
    for i, (p, g) in enumerate(zip(pred, gt)):
        cm = monai_metrics.get_confusion_matrix(_tensor(p), _tensor(g), include_background=True)
        for name, monai_name in (("mcc", "mcc"), ("balanced_accuracy", "balanced accuracy")):
            want = monai_metrics.compute_confusion_matrix_metric(monai_name, cm).item()
            assert out[name][i, 0].item() == pytest.approx(want, rel=1e-5), (i, name)  # MONAI counts in float32
        n = p.size
        po = (p == g).mean()
        pe = (p.sum() * g.sum() + (~p).sum() * (~g).sum()) / n**2
        assert out["kappa"][i, 0].item() == pytest.approx((po - pe) / (1 - pe), rel=1e-12)
        assert out["volume_similarity"][i, 0].item() == pytest.approx(
            1 - abs(int(p.sum()) - int(g.sum())) / (p.sum() + g.sum()), rel=1e-12)
    assert out["mcc"][0, 0].item() == pytest.approx(1.0) and out["mcc"][1, 0].item() == pytest.approx(-1.0)
    assert out["kappa"][1, 0].item() < 0


def test_agreement_metrics_where_a_mask_fills_the_image() -> None:
    full, half = np.ones((4, 4), bool), np.zeros((4, 4), bool)
    half[:2] = True
    out = metrics.compute(np.stack([full, full]), np.stack([full, half]), ["mcc", "kappa", "balanced_accuracy"])
    assert out["mcc"][:, 0].tolist() == [1.0, 0.0] and out["kappa"][:, 0].tolist() == [1.0, 0.0]
    assert out["balanced_accuracy"][:, 0].tolist() == [1.0, 0.5]


def test_topology_options_are_recorded_with_the_skeleton_version() -> None:
    import skimage

    record = TopologyOptions(4, 8, 0.05).as_dict()
    assert record["foreground_connectivity"] == 4 and record["background_connectivity"] == 8
    assert skimage.__version__ in record["skeleton"]
    with pytest.raises(OptionError, match="boundary_dilation"):
        TopologyOptions(boundary_dilation=0)
    with pytest.raises(OptionError):
        metrics.compute(np.zeros((4, 4), np.int64), np.zeros((4, 4), np.int64), ["cldice"], topology={"x": 1})
