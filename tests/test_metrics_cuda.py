"""The same code on CUDA gives the CPU's numbers (which the reference tests pin to the libraries).

Skipped where no GPU is present (CI has none); run on a GPU machine with
``python -m pytest tests/test_metrics_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from tests.cases import random_cases

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


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
