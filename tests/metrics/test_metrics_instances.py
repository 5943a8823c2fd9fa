"""Instance metrics: GlaS object F1/Dice/Hausdorff, AJI and PQ against slow implementations of the published
code, and PQ against torchmetrics, on random and crafted instance maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import EmptyPolicy, LabelError, OptionError, ShapeMismatchError, instance_metrics
from tests.support import instance_reference as ref

NAMES = list(metrics.INSTANCE_METRICS)
REFERENCE = {
    "object_f1": lambda p, g: ref.glas_f1(p, g),
    "object_dice": lambda p, g: ref.glas_object_dice(p, g),
    "object_hausdorff": lambda p, g: ref.glas_object_hausdorff(p, g),
    "aji": lambda p, g: ref.aji(g, p),
    "pq": lambda p, g: ref.panoptic(g, p)[0],
    "sq": lambda p, g: ref.panoptic(g, p)[1],
    "rq": lambda p, g: ref.panoptic(g, p)[2],
}


def _box(shape, *boxes: tuple[int, int, int, int, int]) -> np.ndarray:
    out = np.zeros(shape, np.int64)
    for i, y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = i
    return out


S = (12, 15)
CRAFTED = {
    "identical": (_box(S, (1, 1, 5, 1, 5), (2, 6, 11, 7, 14)), _box(S, (4, 1, 5, 1, 5), (9, 6, 11, 7, 14))),
    "touching": (_box(S, (1, 0, 6, 0, 7), (2, 0, 6, 7, 15)), _box(S, (1, 0, 6, 0, 8), (2, 0, 6, 8, 15))),
    "split": (_box(S, (3, 2, 9, 2, 6), (4, 2, 9, 6, 12)), _box(S, (1, 2, 9, 2, 12))),
    "merged": (_box(S, (5, 2, 9, 2, 12)), _box(S, (1, 2, 9, 2, 6), (2, 2, 9, 7, 12))),
    "one_pixel": (_box(S, (1, 3, 4, 3, 4)), _box(S, (1, 3, 4, 3, 4), (2, 8, 9, 8, 9))),
    "border": (_box(S, (1, 0, 3, 0, 15), (2, 9, 12, 12, 15)), _box(S, (1, 0, 2, 0, 15), (3, 10, 12, 11, 15))),
    "no_overlap": (_box(S, (1, 0, 2, 0, 2), (2, 10, 12, 13, 15)), _box(S, (7, 5, 7, 5, 8))),
    "half_exactly": (_box(S, (1, 0, 2, 0, 4)), _box(S, (1, 0, 2, 0, 8))),  # covers exactly 50%: not a GlaS TP
    "iou_exactly_half": (_box(S, (1, 0, 1, 0, 4)), _box(S, (1, 0, 1, 0, 8))),  # IoU 0.5: no PQ match
    "large_ids": (_box(S, (2**39, 1, 5, 1, 5)), _box(S, (1, 1, 5, 2, 6))),
}


def _check(pred: np.ndarray, gt: np.ndarray, out: dict[str, torch.Tensor], index: int, label: str) -> None:
    for name in NAMES:
        want, got = REFERENCE[name](pred, gt), out[name][index].item()
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), f"{label} {name}: ours {got}, reference {want}"


@pytest.mark.parametrize("name", list(CRAFTED))
def test_instance_metrics_match_the_published_code_on_crafted_maps(name: str) -> None:
    pred, gt = CRAFTED[name]
    _check(pred, gt, instance_metrics(pred, gt), 0, name)


def test_instance_metrics_match_the_published_code_on_random_maps() -> None:
    rng = np.random.default_rng(29)
    gts = [ref.random_instances(rng, (24, 30), int(rng.integers(1, 9))) for _ in range(60)]
    preds = [ref.perturbed(rng, g) for g in gts]
    gts = [g for g, p in zip(gts, preds) if g.any() and p.any()]  # both non-empty: the empty rules are tested apart
    preds = [p for p in preds if p.any()][: len(gts)]
    assert len(gts) > 40
    out = instance_metrics(np.stack(preds), np.stack(gts))
    assert all(v.shape == (len(gts),) and v.dtype == torch.float64 for v in out.values())
    for i, (p, g) in enumerate(zip(preds, gts)):
        _check(p, g, out, i, f"case {i}")
    # The cases really exercise the rules: misses, false objects, and partial scores.
    assert (out["object_f1"] < 1).any() and (out["pq"] > 0).any() and (out["object_hausdorff"] > 0).any()


def test_a_case_scores_the_same_alone_and_in_a_batch() -> None:
    rng = np.random.default_rng(3)
    gts = np.stack([ref.random_instances(rng, (20, 20), 5) for _ in range(4)])
    preds = np.stack([ref.perturbed(rng, g) for g in gts])
    batch = instance_metrics(preds, gts)
    for i in range(4):
        alone = instance_metrics(preds[i], gts[i])
        for name in NAMES:
            assert torch.equal(alone[name], batch[name][i:i + 1]) or (alone[name].isnan() & batch[name][i].isnan())


def test_pq_matches_torchmetrics_panoptic_quality() -> None:
    had_inf = hasattr(np, "Inf")
    try:
        from torchmetrics.functional.detection import panoptic_quality
    finally:
        if not had_inf and hasattr(np, "Inf"):
            del np.Inf  # torchmetrics sets numpy.Inf process-wide; other tests must not depend on import order

    def encode(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        return torch.stack([(t > 0).long(), t], -1)[None]

    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(40):
        gt = ref.random_instances(rng, (20, 24), int(rng.integers(1, 7)))
        pred = ref.perturbed(rng, gt)
        if not (gt.any() and pred.any()):
            continue
        theirs = panoptic_quality(encode(pred), encode(gt), things={1}, stuffs={0}, return_sq_and_rq=True,
                                  return_per_class=True)[0]  # row 0: the thing class
        ours = instance_metrics(pred, gt, ["pq", "sq", "rq"])
        for k, name in enumerate(("pq", "sq", "rq")):
            # torchmetrics sums IoUs in float32
            assert math.isclose(ours[name].item(), theirs[k].item(), rel_tol=1e-6, abs_tol=1e-7), (name, ours, theirs)
        checked += 1
    assert checked > 25


def test_empty_maps_follow_the_glas_code_and_the_policy() -> None:
    blob = _box(S, (3, 2, 6, 2, 6))
    empty = np.zeros(S, np.int64)
    pred, gt = np.stack([empty, empty, blob]), np.stack([empty, blob, empty])
    out = instance_metrics(pred, gt)
    diagonal = math.hypot(*S)
    # GlaS: both empty 1 (F1, Dice) and 0 (Hausdorff); one empty 0 and infinity, here the image diagonal.
    assert out["object_f1"].tolist() == [1.0, 0.0, 0.0] and out["object_dice"].tolist() == [1.0, 0.0, 0.0]
    assert out["object_hausdorff"].tolist() == [0.0, diagonal, diagonal]
    assert out["aji"].tolist() == [1.0, 0.0, 0.0] and out["pq"].tolist() == [1.0, 0.0, 0.0]
    as_glas = instance_metrics(pred, gt, ["object_hausdorff"], empty=EmptyPolicy(worst_distance="inf"))
    assert as_glas["object_hausdorff"].tolist() == [0.0, math.inf, math.inf]
    assert ref.glas_object_hausdorff(blob, empty) == math.inf
    undefined = instance_metrics(pred, gt, ["aji", "pq"], empty=EmptyPolicy(both_empty="nan"))
    assert math.isnan(undefined["aji"][0]) and math.isnan(ref.aji(empty, empty))
    assert undefined["pq"][1:].tolist() == [0.0, 0.0]


def test_semantic_masks_become_their_connected_components() -> None:
    rng = np.random.default_rng(11)
    gt_mask = ref.random_instances(rng, (24, 24), 6) > 0
    pred_mask = ref.perturbed(rng, ref.label_8(gt_mask)) > 0
    pred, gt = metrics.label_components(pred_mask), metrics.label_components(gt_mask)
    assert np.array_equal(gt[0].numpy(), ref.label_8(gt_mask))
    _check(ref.label_8(pred_mask), ref.label_8(gt_mask), instance_metrics(pred, gt), 0, "components")


def test_object_hausdorff_takes_the_spacing() -> None:
    pred, gt = CRAFTED["no_overlap"]
    unit = instance_metrics(pred, gt, ["object_hausdorff"])["object_hausdorff"].item()
    doubled = instance_metrics(pred, gt, ["object_hausdorff"], spacing=(2.0, 2.0))["object_hausdorff"].item()
    assert math.isclose(doubled, 2 * unit, rel_tol=1e-12)


def test_instance_metrics_reject_bad_input() -> None:
    blob = _box(S, (1, 2, 6, 2, 6))
    with pytest.raises(LabelError, match="instance ids"):
        instance_metrics(-blob, blob)
    with pytest.raises(OptionError, match="Unknown instance metric"):
        instance_metrics(blob, blob, ["dice"])
    with pytest.raises(ShapeMismatchError):
        instance_metrics(blob, blob[:, :-1])
    with pytest.raises(LabelError):
        instance_metrics(blob + 0.5, blob)
