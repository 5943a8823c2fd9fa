"""evaluate() around the engine: ground truth loaded once per process, memory bounded by the batches, progress in cases."""

from __future__ import annotations

import hashlib
import importlib
import shutil
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import tqdm.auto
from PIL import Image

from medseg_eval import batching, evaluate, predictions
from medseg_eval.datasets import canonical_dir, truth
from medseg_eval.evaluate import GroundTruthMismatchError
from tests.support.canonical_edit import flip_mask_pixel
from tests.support.real_data import ROOT

evaluate_module = importlib.import_module("medseg_eval.evaluate")  # the package's `evaluate` is the function
SECOND = ROOT / "drive" / "DRIVE" / "test" / "2nd_manual"


@pytest.fixture()
def decodes(monkeypatch):
    """The cases of each split loaded from its shards from now on, and the images decoded (the cache emptied first)."""
    truth.clear_cache()
    seen = SimpleNamespace(loads=[], images=0)
    load, decode = truth._load_split, truth._decode_image

    def counting_load(ds):
        stored = load(ds)
        seen.loads.append(len(stored[0]))
        return stored

    def counting_decode(feature, value):
        seen.images += 1
        return decode(feature, value)

    monkeypatch.setattr(truth, "_load_split", counting_load)
    monkeypatch.setattr(truth, "_decode_image", counting_decode)
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
    assert decodes.loads == [20] and decodes.images == 40 and again.per_case.equals(first.per_case)  # masks, rois
    assert again.provenance["manifest_sha256"] == first.provenance["manifest_sha256"]


def test_a_changed_build_is_decoded_again_and_checked(drive_copy, decodes):
    evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    flip_mask_pixel(canonical_dir("drive"), "test", "12_test", 300, 300)
    with pytest.raises(GroundTruthMismatchError, match="12_test"):
        evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    assert decodes.loads == [20, 20]


def test_ground_truth_first_used_unverified_is_still_verified_when_asked(drive_copy, decodes):
    flip_mask_pixel(canonical_dir("drive"), "test", "12_test", 300, 300)
    evaluate(str(SECOND), "drive", split="test", metrics=["dice"], verify_ground_truth=False, progress=False)
    with pytest.raises(GroundTruthMismatchError, match="12_test"):
        evaluate(str(SECOND), "drive", split="test", metrics=["dice"], progress=False)
    assert decodes.loads == [20] and decodes.images == 40  # the masks decoded unverified are checked, not decoded again


def test_the_cache_keeps_the_last_splits_used_and_shares_no_writable_arrays(drive_copy, decodes, monkeypatch):
    monkeypatch.setattr(truth, "CACHE_SPLITS", 1)
    test = truth.split_truth("drive", "test")
    assert truth.split_truth("drive", "test") is test
    truth.split_truth("drive", "train")
    test_again = truth.split_truth("drive", "test")
    assert test_again is not test and decodes.loads == [20, 20, 20]
    test = test_again
    (mask, roi), = test.read(["01_test"], verify=True)[0]
    assert not mask.flags.writeable and not roi.flags.writeable and roi.dtype == bool
    assert test.spacing["01_test"] == (1.0, 1.0) and test.shapes["01_test"] == mask.shape
    monkeypatch.setattr(truth, "CACHE_SPLITS", 2)
    monkeypatch.setattr(truth, "DECODED_BYTES", test.decoded_bytes)  # one split's decoded masks fit, not two
    train = truth.split_truth("drive", "train")
    assert truth.split_truth("drive", "train") is train
    assert truth.split_truth("drive", "test") is test and decodes.loads == [20, 20, 20, 20]  # now the latest
    before = decodes.images
    for _ in range(2):
        test.read(test.ids, verify=False)
    assert decodes.images == before + 40  # the latest split's decoded masks are kept
    for _ in range(2):
        train.read(train.ids, verify=False)
    assert decodes.images == before + 40 + 80  # the other's are decoded again each time


def test_ground_truth_held_decoded_is_a_few_batches_when_it_does_not_fit(drive_copy, decodes, monkeypatch):
    kept = evaluate(str(SECOND), "drive", split="test", metrics=["dice", "hd95"], progress=False)
    truth.clear_cache()
    monkeypatch.setattr(truth, "DECODED_BYTES", 0)
    monkeypatch.setattr(batching, "PIXELS_PER_BATCH", 2 * 584 * 565)  # DRIVE's masks two at a time
    alive = _count_alive(monkeypatch, truth.SplitTruth, "_decode", lambda case: case[0])
    first = evaluate(str(SECOND), "drive", split="test", metrics=["dice", "hd95"], progress=False)
    again = evaluate(str(SECOND), "drive", split="test", metrics=["dice", "hd95"], progress=False)
    assert alive.made == 40 and alive.most <= 5  # 20 masks decoded per call, a window (2) and a batch (2) at most
    assert first.per_case.equals(kept.per_case) and again.per_case.equals(kept.per_case)


def _count_alive(monkeypatch, owner, name, array_of):
    """Wrap ``owner.name`` to count the arrays it returns that are still alive, and the most at once."""
    alive = SimpleNamespace(now=0, most=0, made=0)
    original = getattr(owner, name)

    def dropped():
        alive.now -= 1

    def counting(*args, **kwargs):
        out = original(*args, **kwargs)
        array = array_of(out)
        alive.now, alive.made = alive.now + 1, alive.made + 1
        alive.most = max(alive.most, alive.now)
        weakref.finalize(array, dropped)
        return out

    monkeypatch.setattr(owner, name, counting)
    return alive


def test_prediction_and_target_files_held_decoded_are_a_few_batches_not_all_cases(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    masks = {"pred": {}, "gt": {}}
    for kind, cases in masks.items():
        (tmp_path / kind).mkdir()
        for i in range(48):
            cases[f"c{i:02d}"] = (rng.random((32, 40)) > 0.7).astype(np.uint8) * 255
            Image.fromarray(cases[f"c{i:02d}"]).save(tmp_path / kind / f"c{i:02d}.png")
    in_memory = evaluate(masks["pred"], targets=masks["gt"], metrics=["dice", "hd95"], progress=False)
    monkeypatch.setattr(batching, "PIXELS_PER_BATCH", 4 * 32 * 40)  # 4 cases a window and a batch
    alive = _count_alive(monkeypatch, predictions, "to_labels", lambda mask: mask)
    read = evaluate(str(tmp_path / "pred"), targets=str(tmp_path / "gt"), metrics=["dice", "hd95"], progress=False)
    # 48 targets read to count classes, then 48 targets (read with 256 classes, then 2) and 48
    # predictions scored; 4 of each kind in a window, and the last case of the window before.
    assert alive.made == 4 * 48 and alive.most <= 12
    assert read.per_case.equals(in_memory.per_case)
    digest = hashlib.sha256()  # the hash's definition: each case in sorted order, its id, shape and labels
    for case_id in sorted(masks["pred"]):
        digest.update(f"{case_id}\n{masks['pred'][case_id].shape}\n".encode())
        digest.update((masks["pred"][case_id] // 255).astype(np.uint8))
    assert read.provenance["predictions_sha256"] == in_memory.provenance["predictions_sha256"] == digest.hexdigest()
    assert read.provenance["targets_sha256"] == in_memory.provenance["targets_sha256"]
    assert read.provenance["prediction_rules"] == in_memory.provenance["prediction_rules"]


def _shape_truth(shapes):
    return {f"c{i:02d}": shape for i, shape in enumerate(shapes)}


def _batches(shapes, num_classes, batch_size):
    return [ids for _, batches in batching.plan(shapes, num_classes, batch_size) for ids in batches]


def test_batches_hold_at_most_a_pixel_budget_and_batch_size_cases():
    budget = batching.PIXELS_PER_BATCH
    isic = _shape_truth([(4439, 6688)] * 3)
    assert _batches(isic, 2, 16) == [["c00"], ["c01"], ["c02"]]
    small = _shape_truth([(512, 512)] * 100)
    assert [len(ids) for ids in _batches(small, 2, 16)] == [16] * 6 + [4]
    assert [len(ids) for ids in _batches(small, 2, 1000)] == [budget // 512**2] * 1 + [36]
    assert [len(ids) for ids in _batches(small, 5, 1000)] == [16] * 6 + [4]  # 4 classes each
    mixed = _shape_truth([(8, 8), (70, 9), (9, 9), (8, 8)])  # sizes of one bucket share a batch
    assert _batches(mixed, 2, 16) == [["c00", "c02", "c03"], ["c01"]]


def test_cases_waiting_for_their_batch_are_scored_early_when_too_many_pixels_wait():
    budget = batching.PIXELS_PER_BATCH
    shapes = _shape_truth([(512, 512 + i % 97) for i in range(400)])  # 97 shapes, interleaved in case order
    plan = batching.plan(shapes, 2, 16)
    assert sorted(c for _, batches in plan for ids in batches for c in ids) == sorted(shapes)
    waiting = set()
    for window, batches in plan:
        assert sum(shapes[c][0] * shapes[c][1] for c in window) <= budget
        waiting |= set(window)
        waiting -= {c for ids in batches for c in ids}
        assert sum(shapes[c][0] * shapes[c][1] for c in waiting) <= budget
        assert all(len({batching.bucket(shapes[c]) for c in ids}) == 1 for ids in batches)


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
    monkeypatch.setattr(batching, "PIXELS_PER_BATCH", 3 * 24 * 30)
    split = evaluate(preds, targets=targets, metrics=["dice", "hd95", "lesion_recall"], progress=True)
    assert split.per_case.equals(whole.per_case) and split.lesions.equals(whole.lesions)
    assert bars == [(7, "case", [3, 3, 1])]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "8"])
def test_a_bad_batch_size_is_refused(bad):
    targets = {"a": np.eye(4, dtype=np.uint8)}
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer"):
        evaluate(targets, targets=targets, metrics=["dice"], batch_size=bad, progress=False)


def test_cases_of_many_sizes_padded_into_one_batch_score_as_each_alone():
    rng = np.random.default_rng(11)
    sizes = [(int(rng.integers(20, 60)), int(rng.integers(20, 60))) for _ in range(9)]
    targets = {f"s{i}": (rng.random(size) > 0.7).astype(np.uint8) for i, size in enumerate(sizes)}
    preds = {c: (rng.random(t.shape) > 0.7).astype(np.uint8) for c, t in targets.items()}
    preds["s0"][:] = 0  # an empty prediction: by default HD is its own image's diagonal, not the batch's
    names = ["dice", "specificity", "hausdorff", "hd95", "assd", "nsd", "lesion_recall"]
    assert len(batching.plan({c: t.shape for c, t in targets.items()}, 2, 16)[0][1]) == 1  # one batch
    together = evaluate(preds, targets=targets, metrics=names, progress=False)
    alone = evaluate(preds, targets=targets, metrics=names, batch_size=1, progress=False)
    assert together.per_case.equals(alone.per_case) and together.lesions.equals(alone.lesions)
    hd = together.per_case.filter(case_id="s0", metric="hausdorff")["value"].item()
    assert hd == float(np.hypot(*sizes[0]))
