"""The same code on CUDA gives the CPU's numbers (which the reference tests pin to the libraries).

The CUDA tests are skipped where no GPU is present (CI has none); run them on a GPU machine with
``python -m pytest tests/metrics/test_metrics_cuda.py``. The first test runs everywhere: it checks, on the
CPU, that the engine makes every tensor on its inputs' device.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval import lesion_tables, metrics
from tests.support.cases import random_cases

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_every_tensor_is_made_on_the_inputs_device() -> None:
    """Device placement, checked without a GPU: under a default device of "meta" (tensors without
    data), a tensor the engine makes without naming its device lands there and fails the first
    operation it shares with the CPU inputs, as it would land on the CPU and fail beside CUDA inputs.
    The cases reach every path: all conventions, a region of interest, per-case spacing, lesion
    metrics, far misses (the column search) and length shares exactly at the percentile (NumPy's
    pairwise totals)."""
    pytest.importorskip("polars")  # for the lesion tables; absent on the GPU machine, where the CUDA tests run
    cases = random_cases(120, seed=7, shape=(96, 128))
    pred = torch.from_numpy(np.stack([c.pred for c in cases]))
    target = torch.from_numpy(np.stack([c.target for c in cases]))
    spacing = torch.from_numpy(np.random.default_rng(7).uniform(0.3, 2.0, (len(cases), 2)))
    roi = torch.ones(96, 128, dtype=torch.bool)
    roi[:4] = False
    rng = np.random.default_rng(12)
    ties = (torch.from_numpy(rng.random((300, 3, 4)) < 0.4), torch.from_numpy(rng.random((300, 3, 4)) < 0.4))
    far = torch.zeros(4, 200, 200, dtype=torch.bool), torch.zeros(4, 200, 200, dtype=torch.bool)
    far[0][:, 2:6, 2:190:3] = True
    far[1][:, 150:190, 100:140] = True

    def run() -> list:
        out = [metrics.label_components(target > 0)]
        for convention in ("surface-distance", "monai", "medpy"):
            names = [m for m in metrics.METRICS if convention != "medpy" or m != "nsd"]
            out += metrics.compute(pred, target, names + list(metrics.LESION_METRICS), num_classes=4, spacing=spacing,
                                   roi=roi, convention=convention).values()
            out += metrics.compute(*far, ["hd", "hd95", "assd"], convention=convention).values()
        out += metrics.compute(pred, target, ["dice", *metrics.LESION_METRICS], num_classes=4,
                               lesions=metrics.LesionCriteria(criterion="iou")).values()
        out += [metrics.hd95(*ties, percentile=p, convention="surface-distance") for p in (50.0, 95.0)]
        out += [lesion_tables.lesion_detection(pred, target, num_classes=4, spacing=spacing, criterion=c, roi=roi)
                for c in ("overlap", "iou")]
        out.append(lesion_tables.small_lesion_recall(pred, target, num_classes=4, spacing=spacing))
        return out

    expected = run()
    with torch.device("meta"):
        got = run()
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        if isinstance(e, torch.Tensor):
            assert g.device.type == "cpu"
            torch.testing.assert_close(g, e, rtol=0, atol=0, equal_nan=True)
        else:
            assert g.equals(e)


@needs_cuda
@pytest.mark.parametrize("spacing", [(1.0, 1.0), (0.5, 0.8)])
@pytest.mark.parametrize("convention", ["surface-distance", "monai", "medpy"])
def test_cuda_matches_cpu(convention: str, spacing) -> None:
    cases = random_cases(300, seed=5, shape=(96, 128))
    pred = torch.from_numpy(np.stack([c.pred for c in cases]))
    target = torch.from_numpy(np.stack([c.target for c in cases]))
    roi = torch.ones(96, 128, dtype=torch.bool)
    roi[:4] = False
    for kwargs in ({}, {"roi": roi}):
        cpu = metrics.compute(pred, target, list(metrics.METRICS), num_classes=4, spacing=spacing,
                              convention=convention, **kwargs)
        gpu = metrics.compute(pred.cuda(), target.cuda(), list(metrics.METRICS), num_classes=4, spacing=spacing,
                              convention=convention, **{k: v.cuda() for k, v in kwargs.items()})
        for name, values in cpu.items():
            assert gpu[name].device.type == "cuda"
            torch.testing.assert_close(gpu[name].cpu(), values, rtol=1e-12, atol=1e-12, equal_nan=True,
                                       msg=lambda m, name=name, kwargs=kwargs: f"{convention} {name} {kwargs and 'roi'}: {m}")


@needs_cuda
def test_lesion_metrics_and_components_on_cuda_match_cpu() -> None:
    cases = random_cases(200, seed=6, shape=(96, 128))
    pred = torch.from_numpy(np.stack([c.pred for c in cases]))
    target = torch.from_numpy(np.stack([c.target for c in cases]))
    names = list(metrics.LESION_METRICS)
    for criteria in (metrics.LesionCriteria(), metrics.LesionCriteria(4, 0.5), metrics.LesionCriteria(criterion="iou")):
        cpu = metrics.compute(pred, target, names, num_classes=4, lesions=criteria)
        gpu = metrics.compute(pred.cuda(), target.cuda(), names, num_classes=4, lesions=criteria)
        for name in names:
            torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=0, equal_nan=True)
    masks = target > 0
    assert torch.equal(metrics.label_components(masks.cuda()).cpu(), metrics.label_components(masks))


@needs_cuda
@pytest.mark.parametrize("percentile", [50.0, 95.0])
def test_weighted_percentile_ties_on_cuda_match_cpu(percentile: float) -> None:
    """Tiny cases whose length shares land exactly on the percentile (see the edge-case test that
    pins them to DeepMind): the GPU must pick the same element."""
    rng = np.random.default_rng(12)
    pred = torch.from_numpy(rng.random((2000, 3, 4)) < 0.4)
    target = torch.from_numpy(rng.random((2000, 3, 4)) < 0.4)
    cpu = metrics.hd95(pred, target, percentile=percentile)
    gpu = metrics.hd95(pred.cuda(), target.cuda(), percentile=percentile)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0, equal_nan=True)
