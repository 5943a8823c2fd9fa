"""The CPU's compiled kernels against the torch code that CUDA runs, run on the CPU (``compiled.ON_CPU``
False): packed counts against mask counts, and the whole engine, bit for bit."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import compiled, element_lists, feature_transform, sorted_rows
from medseg_eval.metrics import packed_counts as packed
from medseg_eval.metrics.boundaries import framed_bits
from medseg_eval.metrics.overlap import pixel_counts
from medseg_eval.metrics.packed_counts import packed_counts
from tests.support.cases import random_cases


@pytest.mark.parametrize("width", [1, 7, 8, 9, 30, 64, 100, 513])  # frame rows of every length mod 8
@pytest.mark.parametrize("pairs", [1, 2, 3])  # pair offsets of every alignment
def test_packed_counts_equal_mask_counts(width: int, pairs: int) -> None:
    rng = np.random.default_rng(width * 10 + pairs)
    pred = torch.from_numpy(rng.random((pairs, 37, width)) < rng.random((pairs, 1, 1)))
    target = torch.from_numpy(rng.random((pairs, 37, width)) < rng.random((pairs, 1, 1)))
    pred[0] = True  # a full mask: every bit of the packed rows, none of the frame
    want = torch.stack([pixel_counts(pred), pixel_counts(target), pixel_counts(pred & target)], 1)
    bits = framed_bits(pred, target)
    assert torch.equal(packed_counts(bits, 0, pairs), want)
    assert torch.equal(packed_counts(bits, pairs - 1, pairs), want[pairs - 1:])


@pytest.mark.parametrize("convention", ["surface-distance", "monai", "medpy"])
@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 2.0)])
@pytest.mark.parametrize("region", [None, "roi", "sizes"])
def test_kernels_and_torch_code_give_the_same_metrics(convention: str, spacing: tuple[float, float],
                                                      region: str | None, monkeypatch) -> None:
    """Counting, listing, transform and ordering on both paths: the same bits at spacings whose products are
    exact, where the transform and the search agree; with a region of interest and with padded sizes."""
    cases = random_cases(24, seed=5, shape=(96, 80))
    num_classes = max(c.num_classes for c in cases)
    pred = np.stack([c.pred for c in cases]).astype(np.uint8)
    target = np.stack([c.target for c in cases]).astype(np.uint8)
    rng = np.random.default_rng(1)
    options = {}
    if region == "roi":
        options["roi"] = rng.random(pred.shape) < 0.9
    elif region == "sizes":
        options["sizes"] = np.stack([rng.integers(40, 97, len(cases)), rng.integers(30, 81, len(cases))], 1)
    names = ["dice", "iou", "precision", "recall", "specificity", "hausdorff", "hd95", "assd", "masd", "nsd",
             "boundary_f1"]
    out = {}
    for on_cpu in (True, False):
        monkeypatch.setattr(compiled, "ON_CPU", on_cpu)
        out[on_cpu] = metrics.compute(pred, target, names, num_classes=num_classes, spacing=spacing,
                                      convention=convention, **options)
    for name in names:
        np.testing.assert_array_equal(out[True][name].numpy(), out[False][name].numpy(), err_msg=name)


def test_kernels_give_the_same_bits_in_any_number_of_threads(monkeypatch) -> None:
    """Each task of a kernel writes only its own outputs: 1 thread and 2 (every call split, however small)."""
    for module, name in ((element_lists, "_WORTH_ELEMENTS"),
                         (feature_transform, "_WORTH_PIXELS"), (packed, "_WORTH_BYTES"),
                         (sorted_rows, "_WORTH_ELEMENTS")):
        monkeypatch.setattr(module, name, 0)
    cases = random_cases(16, seed=9, shape=(120, 90))
    pred = np.stack([c.pred for c in cases]).astype(np.uint8)
    target = np.stack([c.target for c in cases]).astype(np.uint8)
    num_classes = max(c.num_classes for c in cases)
    names = ["dice", "hausdorff", "hd95", "assd", "nsd"]
    threads = torch.get_num_threads()
    out = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            out.append(metrics.compute(pred, target, names, num_classes=num_classes, spacing=(0.7, 1.3)))
    finally:
        torch.set_num_threads(threads)
    for name in names:
        np.testing.assert_array_equal(out[0][name].numpy(), out[1][name].numpy(), err_msg=name)


def _score_in_two_threads(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    torch.set_num_threads(2)
    return metrics.compute(pred, target, ["hd95", "assd"])["assd"].numpy()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kernels_run_in_a_forked_process_after_the_parent_used_their_threads(monkeypatch) -> None:
    """A forked process (a DataLoader worker, a process pool) has no copy of the kept threads: it must make
    its own rather than wait on the parent's forever."""
    for module, name in ((element_lists, "_WORTH_ELEMENTS"), (feature_transform, "_WORTH_PIXELS"),
                         (packed, "_WORTH_BYTES"), (sorted_rows, "_WORTH_ELEMENTS")):
        monkeypatch.setattr(module, name, 0)
    cases = random_cases(8, seed=3, shape=(64, 64))
    pred = np.stack([c.pred > 0 for c in cases]).astype(np.uint8)
    target = np.stack([c.target > 0 for c in cases]).astype(np.uint8)
    threads = torch.get_num_threads()
    try:
        want = _score_in_two_threads(pred, target)  # the parent keeps a helper thread
        assert compiled._pool is not None and compiled._pool[0] == os.getpid()
        with multiprocessing.get_context("fork").Pool(1) as pool:
            got = pool.apply_async(_score_in_two_threads, (pred, target)).get(timeout=120)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(got, want)
