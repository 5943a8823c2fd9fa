"""evaluate() around the engine: ground truth decoded once per process, batches sized by pixels, progress in cases."""

from __future__ import annotations

import importlib
import shutil

import numpy as np
import pytest
import tqdm.auto

from medseg_eval import evaluate
from medseg_eval.datasets import canonical_dir, truth
from medseg_eval.evaluate import GroundTruthMismatchError

from .canonical_edit import flip_mask_pixel
from .real_data import ROOT

evaluate_module = importlib.import_module("medseg_eval.evaluate")  # the package's `evaluate` is the function
SECOND = ROOT / "drive" / "DRIVE" / "test" / "2nd_manual"


@pytest.fixture()
def decodes(monkeypatch):
    """The number of cases of each split decoded from now on (the cache emptied first)."""
    truth.clear_cache()
    seen = []
    decode = truth._decode_split

    def counting(ds):
        cases = decode(ds)
        seen.append(len(cases))
        return cases

    monkeypatch.setattr(truth, "_decode_split", counting)
    yield seen
    truth.clear_cache()


@pytest.fixture()
def drive_copy(real_home, tmp_path, monkeypatch):
    """A home of its own holding a copy of the DRIVE build, free to edit."""
    home = tmp_path / "home"
    shutil.copytree(real_home / "datasets" / "drive", home / "datasets" / "drive")
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(home))
    return home


def test_a_second_call_on_the_same_split_does_not_decode_it_again(drive_copy, decodes):
    first = evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    again = evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    assert decodes == [20] and again.per_case.equals(first.per_case)
    assert again.provenance["manifest_sha256"] == first.provenance["manifest_sha256"]


def test_a_changed_build_is_decoded_again_and_checked(drive_copy, decodes):
    evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    flip_mask_pixel(canonical_dir("drive"), "test", "12_test", 300, 300)
    with pytest.raises(GroundTruthMismatchError, match="12_test"):
        evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    assert decodes == [20, 20]


def test_ground_truth_first_used_unverified_is_still_verified_when_asked(drive_copy, decodes):
    flip_mask_pixel(canonical_dir("drive"), "test", "12_test", 300, 300)
    evaluate(str(SECOND), "drive", split="test", metrics=["dice"], verify_ground_truth=False, progress=False)
    with pytest.raises(GroundTruthMismatchError, match="12_test"):
        evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    assert decodes == [20]


def test_the_cache_keeps_the_last_splits_used_and_shares_no_writable_arrays(drive_copy, decodes, monkeypatch):
    monkeypatch.setattr(truth, "CACHE_SPLITS", 1)
    test = truth.split_truth("drive", "test")
    assert truth.split_truth("drive", "test") is test
    truth.split_truth("drive", "train")
    assert truth.split_truth("drive", "test") is not test and decodes == [20, 20, 20]
    mask, spacing, roi = test.cases["01_test"]
    assert not mask.flags.writeable and not roi.flags.writeable and roi.dtype == bool and spacing == (1.0, 1.0)
    monkeypatch.setattr(truth, "CACHE_SPLITS", 2)
    monkeypatch.setattr(truth, "CACHE_BYTES", 1)  # only the latest split fits: it stays all the same
    truth.split_truth("drive", "train")
    assert truth.split_truth("drive", "train") is truth.split_truth("drive", "train") and decodes == [20, 20, 20, 20]
    truth.split_truth("drive", "test")
    assert decodes == [20, 20, 20, 20, 20]


def _shape_truth(shapes, roi=None):
    return {f"c{i:02d}": (np.zeros(shape, np.uint8), (1.0, 1.0), roi) for i, shape in enumerate(shapes)}


def test_batches_hold_at_most_a_pixel_budget_and_batch_size_cases():
    budget = evaluate_module.PIXELS_PER_BATCH
    isic = _shape_truth([(4439, 6688)] * 3)
    assert [ids for _, ids in evaluate_module._batches(isic, 2, 16)] == [["c00"], ["c01"], ["c02"]]
    small = _shape_truth([(512, 512)] * 100)
    sizes = [len(ids) for _, ids in evaluate_module._batches(small, 2, 16)]
    assert sizes == [16] * 6 + [4]
    assert [len(ids) for _, ids in evaluate_module._batches(small, 2, 1000)] == [budget // 512**2] * 1 + [36]
    assert [len(ids) for _, ids in evaluate_module._batches(small, 5, 1000)] == [16] * 6 + [4]  # 4 classes each
    mixed = _shape_truth([(8, 8), (9, 9), (8, 8)])
    assert [ids for _, ids in evaluate_module._batches(mixed, 2, 16)] == [["c00", "c02"], ["c01"]]


def test_numbers_do_not_depend_on_the_batches_and_progress_counts_cases(monkeypatch):
    rng = np.random.default_rng(5)
    targets = {f"t{i}": (rng.random((24, 30)) > 0.6).astype(np.uint8) for i in range(7)}
    preds = {c: (rng.random((24, 30)) > 0.6).astype(np.uint8) for c in targets}
    whole = evaluate(preds, targets=targets, metrics=["dice", "hd95", "lesion_recall"], progress=False)
    bars = []

    class Recorder(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append((kwargs["total"], kwargs["unit"], []))

        def update(self, n=1):
            bars[-1][2].append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    monkeypatch.setattr(evaluate_module, "PIXELS_PER_BATCH", 3 * 24 * 30)
    split = evaluate(preds, targets=targets, metrics=["dice", "hd95", "lesion_recall"], progress=True)
    assert split.per_case.equals(whole.per_case) and split.lesions.equals(whole.lesions)
    assert bars == [(7, "case", [3, 3, 1])]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_a_bad_batch_size_is_refused(bad):
    targets = {"a": np.eye(4, dtype=np.uint8)}
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        evaluate(targets, targets=targets, metrics=["dice"], batch_size=bad, progress=False)
