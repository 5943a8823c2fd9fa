"""Each library's empty-mask rule as an EmptyPolicy preset, checked against the real library on empty masks."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import EmptyMaskError, EmptyPolicy, OptionError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import medpy.metric.binary as medpy_binary
    import monai.metrics as monai_metrics
    import surface_distance as deepmind

SHAPE = (10, 12)
BLOB = np.zeros(SHAPE, bool)
BLOB[3:7, 2:8] = True
EMPTY = np.zeros(SHAPE, bool)
SITUATIONS = {"both_empty": (EMPTY, EMPTY), "pred_empty": (EMPTY, BLOB), "target_empty": (BLOB, EMPTY)}
TOLERANCE = 1.0


def _t(m: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(m.astype(np.float32))[None, None]


def monai_values(pred: np.ndarray, gt: np.ndarray, ignore_empty: bool) -> dict[str, float]:
    yp, y = _t(pred), _t(gt)
    common = {"include_background": True}
    cm = monai_metrics.get_confusion_matrix(yp, y, include_background=True)
    values = {
        "dice": monai_metrics.DiceMetric(ignore_empty=ignore_empty, **common)(yp, y),
        "iou": monai_metrics.MeanIoU(ignore_empty=ignore_empty, **common)(yp, y),
        "hausdorff": monai_metrics.compute_hausdorff_distance(yp, y, **common),
        "hd95": monai_metrics.compute_hausdorff_distance(yp, y, percentile=95, **common),
        "assd": monai_metrics.compute_average_surface_distance(yp, y, symmetric=True, **common),
        "masd": 0.5 * (monai_metrics.compute_average_surface_distance(yp, y, **common)
                       + monai_metrics.compute_average_surface_distance(y, yp, **common)),
        "nsd": monai_metrics.compute_surface_dice(yp, y, [TOLERANCE], **common),
    }
    for ours, theirs in (("precision", "precision"), ("recall", "sensitivity"), ("specificity", "specificity"),
                         ("balanced_accuracy", "balanced accuracy"), ("mcc", "mcc")):
        values[ours] = monai_metrics.compute_confusion_matrix_metric(theirs, cm)
    return {k: float(v) for k, v in values.items()}


def medpy_values(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | type]:
    calls = {"dice": medpy_binary.dc, "iou": medpy_binary.jc, "precision": medpy_binary.precision,
             "recall": medpy_binary.recall, "specificity": medpy_binary.specificity, "hausdorff": medpy_binary.hd,
             "hd95": medpy_binary.hd95, "assd": medpy_binary.assd,
             "masd": lambda a, b: 0.5 * (medpy_binary.asd(a, b) + medpy_binary.asd(b, a))}
    out: dict[str, float | type] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, call in calls.items():
            try:
                out[name] = float(call(pred, gt))
            except RuntimeError:
                out[name] = RuntimeError
    return out


def surface_distance_values(pred: np.ndarray, gt: np.ndarray, monkeypatch) -> dict[str, float]:
    # PyPI 0.1 still spells np.Inf and np.NaN, which NumPy 2 removed; GitHub 1f805ce spells np.inf and runs the same code.
    monkeypatch.setattr(np, "Inf", np.inf, raising=False)
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sd = deepmind.compute_surface_distances(gt, pred, spacing_mm=(1.0, 1.0))
        dg, dp = sd["distances_gt_to_pred"], sd["distances_pred_to_gt"]
        wg, wp = sd["surfel_areas_gt"], sd["surfel_areas_pred"]
        return {
            "hausdorff": deepmind.compute_robust_hausdorff(sd, 100),
            "hd95": deepmind.compute_robust_hausdorff(sd, 95),
            "masd": float(np.mean(deepmind.compute_average_surface_distance(sd))),
            "assd": float((np.sum(dg * wg) + np.sum(dp * wp)) / (np.sum(wg) + np.sum(wp))),
            "nsd": float(deepmind.compute_surface_dice_at_tolerance(sd, TOLERANCE)),
            "dice": float(deepmind.compute_dice_coefficient(gt, pred)),
        }


def ours(pred: np.ndarray, gt: np.ndarray, names: list[str], policy: EmptyPolicy, convention: str) -> dict[str, float]:
    out = metrics.compute(pred, gt, names, empty=policy, convention=convention, tolerance=TOLERANCE)
    return {k: v.item() for k, v in out.items()}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b or math.isclose(a, b, rel_tol=1e-6)


@pytest.mark.parametrize("ignore_empty", [True, False])
@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_monai_preset_reproduces_monai_on_empty_masks(situation: str, ignore_empty: bool) -> None:
    pred, gt = SITUATIONS[situation]
    theirs = monai_values(pred, gt, ignore_empty)
    got = ours(pred, gt, list(theirs), EmptyPolicy.monai(ignore_empty=ignore_empty), "monai")
    for name, value in theirs.items():
        assert _same(got[name], value), f"{situation} {name}: ours {got[name]}, MONAI {value}"


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_surface_distance_preset_reproduces_deepmind_on_empty_masks(situation: str, monkeypatch) -> None:
    pred, gt = SITUATIONS[situation]
    theirs = surface_distance_values(pred, gt, monkeypatch)
    got = ours(pred, gt, list(theirs), EmptyPolicy.surface_distance(), "surface-distance")
    for name, value in theirs.items():
        assert _same(got[name], value), f"{situation} {name}: ours {got[name]}, surface-distance {value}"


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_medpy_preset_reproduces_medpy_and_raises_where_it_raises(situation: str) -> None:
    pred, gt = SITUATIONS[situation]
    theirs = medpy_values(pred, gt)
    for name, value in theirs.items():
        if value is RuntimeError:
            with pytest.raises(EmptyMaskError, match="medpy"):
                ours(pred, gt, [name], EmptyPolicy.medpy(), "medpy")
        else:
            got = ours(pred, gt, [name], EmptyPolicy.medpy(), "medpy")[name]
            assert _same(got, value), f"{situation} {name}: ours {got}, MedPy {value}"
    assert any(v is RuntimeError for v in theirs.values())


@pytest.mark.parametrize("policy", [EmptyPolicy.monai(), EmptyPolicy.surface_distance(), EmptyPolicy.medpy()])
def test_presets_leave_cases_without_empty_masks_alone(policy: EmptyPolicy) -> None:
    other = np.roll(BLOB, 1, axis=1)
    names = list(metrics.METRICS) + list(metrics.AGREEMENT_METRICS) + ["cldice", "boundary_iou"]
    assert ours(other, BLOB, names, policy, "medpy") == ours(other, BLOB, names, EmptyPolicy(), "medpy")


def test_presets_are_recorded_by_name_and_rebuilt_from_the_record() -> None:
    assert EmptyPolicy().as_dict() == {"both_empty": "best", "one_empty": "worst", "worst_distance": "diagonal"}
    for policy in (EmptyPolicy.monai(), EmptyPolicy.monai(ignore_empty=False), EmptyPolicy.surface_distance(),
                   EmptyPolicy.medpy()):
        record = json.loads(json.dumps(policy.as_dict()))
        assert record["preset"] == policy.preset and EmptyPolicy(**record) == policy
    assert EmptyPolicy.monai(ignore_empty=False).preset == "monai-keep-empty"


def test_a_preset_name_cannot_label_other_rules() -> None:
    record = EmptyPolicy.monai().as_dict()
    with pytest.raises(OptionError, match=r"EmptyPolicy\.monai\(\)"):
        EmptyPolicy(**{**record, "rules": []})
    with pytest.raises(OptionError, match="custom"):
        EmptyPolicy(rules=[("dice", "both_empty", "nan")])
    with pytest.raises(OptionError, match="outcome"):
        EmptyPolicy(preset="custom", rules=[("dice", "both_empty", "zero")])
    with pytest.raises(OptionError, match="Unknown EmptyPolicy preset"):
        EmptyPolicy(preset="nnunet")


def test_custom_rules_apply_to_one_metric_and_situation() -> None:
    policy = EmptyPolicy(preset="custom", rules=[("dice", "target_empty", "nan"), ("hausdorff", "pred_empty", "raise")])
    out = metrics.compute(np.stack([BLOB, EMPTY]), np.stack([EMPTY, EMPTY]), ["dice", "iou"], empty=policy)
    assert math.isnan(out["dice"][0, 0]) and out["dice"][1, 0] == 1.0 and out["iou"][0, 0] == 0.0
    with pytest.raises(EmptyMaskError):
        metrics.compute(EMPTY, BLOB, ["hausdorff"], empty=policy)
    assert metrics.compute(BLOB, EMPTY, ["hausdorff"], empty=policy)["hausdorff"].item() == pytest.approx(
        math.hypot(*SHAPE))


def test_instance_metrics_take_the_presets() -> None:
    out = metrics.instance_metrics(np.stack([EMPTY, EMPTY]), np.stack([EMPTY, BLOB]).astype(np.int64),
                                   ["aji", "object_hausdorff"], empty=EmptyPolicy.monai())
    assert math.isnan(out["aji"][0]) and out["aji"][1] == 0.0
    assert math.isnan(out["object_hausdorff"][0]) and out["object_hausdorff"][1] == math.inf
