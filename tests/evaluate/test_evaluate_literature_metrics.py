"""evaluate() scores each dataset the way its literature does: instance metrics on GlaS and MoNuSeg,
DRIVE's pixel and topology set inside the field of view, and the standard set elsewhere."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import medseg_eval
from medseg_eval import evaluate, metrics
from medseg_eval.datasets import UnpinnedManifestWarning, build, get_spec, list_datasets, load_dataset
from medseg_eval.evaluate import DEFAULT_METRICS
from medseg_eval.metrics import INSTANCE_METRICS, OptionError, TopologyOptions, compute, instance_metrics
from medseg_eval.stats.pairing import PairingError
from tests.support.dataset_layouts import MAKERS, drive

BUILD = importlib.import_module("medseg_eval.datasets.build")
LAYOUT = importlib.import_module("medseg_eval.datasets.layout")


def _built(name: str, tmp_path: Path):
    """Build the tiny release of ``name``; its test split's instance maps and masks by case id."""
    MAKERS[name](tmp_path / "release")
    with pytest.warns(UnpinnedManifestWarning):
        build(name, tmp_path / "release", progress=False)
    rows = list(load_dataset(name, split="test"))
    return ({r["case_id"]: np.asarray(r["instances"]).astype(np.int64) for r in rows},
            {r["case_id"]: np.asarray(r["mask"]) for r in rows})


def _instance_predictions(truth: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ground truth's objects with other ids (some above 255), one dropped, one shifted a pixel."""
    preds = {}
    for i, (case, ids) in enumerate(sorted(truth.items())):
        pred = np.where(ids > 0, ids * 97 + 200, 0)
        pred[ids == ids.max()] = 0
        pred = np.roll(pred, i % 2, axis=1)
        preds[case] = pred
    return preds


def _direct(preds: dict[str, np.ndarray], truth: dict[str, np.ndarray], names) -> dict[str, dict[str, float]]:
    return {c: {m: float(v) for m, v in zip(names, (instance_metrics(preds[c], truth[c], names)[m][0] for m in names))}
            for c in truth}


def _values(res, metric: str) -> dict[str, float]:
    return dict(res.per_case.filter(metric=metric).select("case_id", "value").rows())


def test_instance_predictions_give_the_numbers_of_instance_metrics(tmp_path, home):
    truth, _ = _built("glas", tmp_path)
    preds = _instance_predictions(truth)
    res = evaluate(preds, "glas", instances=True, metrics=[*INSTANCE_METRICS, "dice"], progress=False)
    expected = _direct(preds, truth, list(INSTANCE_METRICS))
    for metric in INSTANCE_METRICS:
        assert _values(res, metric) == pytest.approx({c: v[metric] for c, v in expected.items()}, rel=1e-12), metric
    assert any(v["aji"] < 1 for v in expected.values())  # the perturbations are seen
    for case, dice in _values(res, "dice").items():
        p, t = preds[case] > 0, truth[case] > 0
        assert dice == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()), rel=1e-12)
    assert res.provenance["instances"] == {"instances_from": "predictions"}


def test_instance_predictions_read_from_16_bit_png_files(tmp_path, home):
    truth, _ = _built("glas", tmp_path)
    preds = _instance_predictions(truth)
    folder = tmp_path / "preds"
    folder.mkdir()
    for case, ids in preds.items():
        assert ids.max() > 255
        Image.fromarray(ids.astype(np.uint16)).save(folder / f"{case}.png")
    from_files = evaluate(folder, "glas", instances=True, progress=False)
    from_arrays = evaluate(preds, "glas", instances=True, progress=False)
    assert from_files.per_case.equals(from_arrays.per_case)


def test_semantic_predictions_are_scored_by_their_connected_components(tmp_path, home):
    truth, masks = _built("monuseg", tmp_path)
    preds = {c: m.copy() for c, m in masks.items()}
    case = min(preds)
    preds[case][:, :3] = 1  # a band touching some nuclei: they merge into one component
    res = evaluate(preds, "monuseg", progress=False)
    assert res.provenance["instances"] == {"instances_from": "connected_components", "connectivity": 8}
    for c in truth:
        components = metrics.label_components(torch.from_numpy(preds[c] == 1), connectivity=8)
        direct = instance_metrics(components, truth[c], ["aji", "pq"])
        assert _values(res, "aji")[c] == pytest.approx(float(direct["aji"][0]), rel=1e-12)
        assert _values(res, "pq")[c] == pytest.approx(float(direct["pq"][0]), rel=1e-12)
    # Scored as instance maps, the same masks are one object per nucleus region the mask happens to hold.
    as_ids = evaluate({c: m.astype(np.int64) for c, m in preds.items()}, "monuseg", instances=True, progress=False)
    assert _values(as_ids, "aji")[case] != pytest.approx(_values(res, "aji")[case])


def test_each_case_has_one_row_per_instance_metric_for_class_1(tmp_path, home):
    truth, masks = _built("glas", tmp_path)
    res = evaluate(masks, "glas", progress=False)
    rows = res.per_case
    assert rows.height == len(truth) * 3
    assert set(rows["metric"]) == {"object_f1", "object_dice", "object_hausdorff"}
    assert set(rows["class"]) == {"gland"} and set(rows["class_id"]) == {1}
    assert sorted(rows.group_by("case_id").len()["len"].to_list()) == [3] * len(truth)
    exact = evaluate(truth, "glas", instances=True, progress=False)  # the truth's own instances: every gland found
    assert _values(exact, "object_f1") == dict.fromkeys(truth, 1.0) and exact.per_case.height == rows.height
    assert set(res.summary()["metric"]) >= {"object_f1", "object_dice", "object_hausdorff"}


@pytest.mark.parametrize("name", ["glas", "monuseg"])
def test_the_default_metrics_are_the_datasets_literature_set(name, tmp_path, home):
    _, masks = _built(name, tmp_path)
    res = evaluate(masks, name, progress=False)
    assert res.provenance["metrics"] == list(get_spec(name).literature_metrics)
    assert set(res.per_case["metric"]) == set(get_spec(name).literature_metrics)


def test_literature_sets_are_those_the_papers_report():
    assert get_spec("drive").literature_metrics == ("accuracy", "recall", "specificity", "dice", "cldice",
                                                      "betti0_error", "betti1_error")
    assert get_spec("glas").literature_metrics == ("object_f1", "object_dice", "object_hausdorff")
    assert get_spec("monuseg").literature_metrics == ("aji", "pq", "dice")
    others = set(list_datasets()) - {"drive", "glas", "monuseg"}
    assert others and all(get_spec(n).literature_metrics == DEFAULT_METRICS for n in others)
    known = set(metrics.METRICS + metrics.AGREEMENT_METRICS + metrics.TOPOLOGY_METRICS + metrics.LESION_METRICS
                + INSTANCE_METRICS)
    for name in list_datasets():
        spec = get_spec(name)
        assert set(spec.literature_metrics) <= known, name
        assert spec.metric_references and all(len(r) > 40 for r in spec.metric_references), name
        instance_names = set(spec.literature_metrics) & set(INSTANCE_METRICS)
        assert not instance_names or spec.instances, name


def test_own_targets_keep_the_standard_default():
    targets = {"a": np.pad(np.ones((4, 4), np.uint8), 3)}
    res = evaluate(targets, targets=targets, progress=False)
    assert res.provenance["metrics"] == list(DEFAULT_METRICS) and res.provenance["topology_options"] is None
    assert res.provenance["instances"] is None


@pytest.fixture()
def tiny_drive(tmp_path, home, monkeypatch):
    """The tiny DRIVE release built with the shipped manifests out of the way (it is not the real one)."""
    layout = drive(tmp_path / "release")
    empty = tmp_path / "no-manifests"
    empty.mkdir()
    monkeypatch.setattr(LAYOUT, "MANIFESTS", empty)
    with pytest.warns(UnpinnedManifestWarning):
        build("drive", tmp_path / "release", progress=False)
    return layout


def test_drive_is_scored_with_its_set_inside_the_field_of_view(tiny_drive):
    rng = np.random.default_rng(5)
    test = sorted(c for c, s in tiny_drive.splits.items() if s == "test")
    preds = {}
    for case in test:
        pred = tiny_drive.masks[case].copy()
        flip = rng.random(pred.shape) < 0.08  # errors inside and outside the field of view
        preds[case] = np.where(flip, 1 - pred, pred).astype(np.uint8)
    res = evaluate(preds, "drive", progress=False)
    assert res.provenance["metrics"] == list(get_spec("drive").literature_metrics)
    assert res.provenance["topology_options"] == TopologyOptions().as_dict()
    for case in test:
        fov, gt, pred = tiny_drive.roi[case], tiny_drive.masks[case] > 0, preds[case] > 0
        assert (pred & ~fov).any()  # errors outside the field of view that must not count
        tp, fp = (pred & gt & fov).sum(), (pred & ~gt & fov).sum()
        fn, tn = (~pred & gt & fov).sum(), (~pred & ~gt & fov).sum()
        direct = {"accuracy": (tp + tn) / fov.sum(), "recall": tp / (tp + fn), "specificity": tn / (tn + fp),
                  "dice": 2 * tp / (2 * tp + fp + fn)}
        got = {m: _values(res, m)[case] for m in ("accuracy", "recall", "specificity", "dice", "cldice",
                                                  "betti0_error", "betti1_error")}
        for metric, value in direct.items():
            assert got[metric] == pytest.approx(value, rel=1e-12), (case, metric)
        inside = compute(torch.from_numpy(pred & fov).long()[None], torch.from_numpy(gt & fov).long()[None],
                         ["cldice", "betti0_error", "betti1_error"])
        for metric, value in inside.items():
            assert got[metric] == pytest.approx(float(value[0, 0]), rel=1e-12), (case, metric)


def test_accuracy_matches_monai_and_a_direct_count_inside_the_roi():
    from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix

    rng = np.random.default_rng(11)
    pred = torch.from_numpy(rng.integers(0, 3, (6, 17, 23)))
    target = torch.from_numpy(rng.integers(0, 3, (6, 17, 23)))
    roi = torch.from_numpy(rng.random((6, 17, 23)) < 0.7)
    ours = compute(pred, target, ["accuracy"], num_classes=3, roi=roi)["accuracy"]
    for b in range(6):
        inside_p, inside_t = pred[b][roi[b]], target[b][roi[b]]
        one_hot = [torch.stack([x == k for k in range(3)]).float()[None] for x in (inside_p, inside_t)]
        reference = compute_confusion_matrix_metric("accuracy", get_confusion_matrix(*one_hot, include_background=False))
        for k in (1, 2):
            direct = ((inside_p == k) == (inside_t == k)).double().mean()
            assert float(ours[b, k - 1]) == pytest.approx(float(direct), rel=1e-12)
            assert float(ours[b, k - 1]) == pytest.approx(float(reference[0, k - 1]), rel=1e-6)


def test_compare_refuses_results_scored_with_other_topology_options():
    gt = {"a": np.pad(np.ones((5, 5), np.uint8), 4), "b": np.pad(np.ones((3, 6), np.uint8), 4)}
    one = evaluate(gt, targets=gt, metrics=["cldice"], progress=False)
    other = evaluate(gt, targets=gt, metrics=["cldice"], progress=False)
    medseg_eval.compare({"one": one, "other": other}, "cldice")
    other.provenance["topology_options"] = {**other.provenance["topology_options"], "boundary_dilation": 0.05}
    with pytest.raises(PairingError, match="topology_options"):
        medseg_eval.compare({"one": one, "other": other}, "cldice")


def test_instance_scoring_needs_instance_ground_truth(tmp_path, home):
    targets = {"a": np.pad(np.ones((4, 4), np.uint8), 3)}
    with pytest.raises(OptionError, match=r"\['aji'\] need instance ground truth.*glas, monuseg"):
        evaluate(targets, targets=targets, metrics=["aji"], progress=False)
    with pytest.raises(OptionError, match="kvasir-seg keeps no instance ids"):
        evaluate(targets, "kvasir-seg", instances=True, progress=False)
    with pytest.raises(OptionError, match="Unknown metric"):
        evaluate(targets, targets=targets, metrics=["object_f2"], progress=False)


def test_a_copy_built_without_instances_asks_for_a_rebuild(tmp_path, home, monkeypatch):
    import dataclasses

    from medseg_eval.datasets import SourceFormatError
    from medseg_eval.datasets import registry as registry_module

    spec = get_spec("glas")
    MAKERS["glas"](tmp_path / "release")
    with monkeypatch.context() as before:  # as builder version 1 wrote it: no instances column, no hash
        before.setitem(registry_module._REGISTRY, "glas", dataclasses.replace(spec, instances=None, builder_version=1))
        with pytest.warns(UnpinnedManifestWarning):
            build("glas", tmp_path / "release", progress=False)
    masks = {r["case_id"]: np.asarray(r["mask"]) for r in load_dataset("glas", split="test")}
    with pytest.raises(SourceFormatError, match="holds no instance maps.*rebuild it"):
        evaluate(masks, "glas", progress=False)
    assert evaluate(masks, "glas", metrics=["dice"], progress=False).per_case.height == len(masks)


def test_cases_of_several_sizes_are_scored_at_their_own_size(tmp_path, home):
    """An empty prediction's object Hausdorff is its own image's diagonal, not that of a padded batch."""
    MAKERS["glas"](tmp_path / "release")
    folder = tmp_path / "release" / "Warwick QU Dataset (Released 2016_07_08)"
    ids = np.zeros((30, 20), np.uint8)
    ids[3:9, 4:12], ids[15:25, 2:7] = 1, 2
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(folder / "testB_1.bmp")
    Image.fromarray(ids).save(folder / "testB_1_anno.bmp")
    with pytest.warns(UnpinnedManifestWarning):
        build("glas", tmp_path / "release", progress=False)
    truth = {r["case_id"]: np.asarray(r["instances"]).astype(np.int64) for r in load_dataset("glas", split="test")}
    preds = {c: v.copy() for c, v in truth.items()}
    preds["testB_1"][:] = 0
    res = evaluate(preds, "glas", instances=True, progress=False)
    hausdorff = _values(res, "object_hausdorff")
    assert hausdorff["testB_1"] == pytest.approx(np.hypot(30, 20), rel=1e-12)
    assert hausdorff["testA_1"] == 0.0 and _values(res, "object_f1")["testB_1"] == 0.0


def test_object_f1_and_dice_of_a_batch_without_any_object_follow_the_empty_policy():
    target = torch.zeros(2, 8, 8, dtype=torch.long)
    target[0, 2:5, 2:5] = 1
    none = torch.zeros_like(target)
    for pred, gt in ((none, target), (target, none)):
        out = instance_metrics(pred, gt, ["object_f1", "object_dice"])
        assert out["object_f1"].tolist() == [0.0, 1.0] and out["object_dice"].tolist() == [0.0, 1.0]
