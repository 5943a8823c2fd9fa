"""SegNeXt-L and Swin-UMamba: size, gradients, pretrained requests, the selective scan and the Hamburger's NMF."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch
import torch.nn.functional as F

from medseg_eval.train.zoo import model_info
from medseg_eval.train.zoo.segnext import NMF2D, nmf_step
from medseg_eval.train.zoo.swin_umamba import selective_scan_chunked, selective_scan_sequential


def test_registry_entries_carry_family_and_the_studys_precision():
    assert (model_info("segnext-l").family, model_info("segnext-l").amp) == ("general", False)
    assert (model_info("swin-umamba").family, model_info("swin-umamba").amp) == ("specialized", True)


def _scan_inputs(generator: torch.Generator, *, batch: int = 2, groups: int = 3, per_group: int = 2, state: int = 4,
                 length: int = 37) -> tuple[torch.Tensor, ...]:
    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    channels = groups * per_group
    # Steps up to ~5 and decay rates up to ~20: some tokens forget their state almost entirely within one step.
    return (randn(batch, channels, length), F.softplus(2 * randn(batch, channels, length)),
            -torch.exp(randn(channels, state)), randn(batch, groups, state, length),
            randn(batch, groups, state, length), randn(channels))


@pytest.mark.parametrize("chunk_size", [1, 4, 5, 8, 16, 36, 37, 64])
def test_chunked_scan_equals_the_sequential_scan(chunk_size):
    inputs = _scan_inputs(torch.Generator().manual_seed(chunk_size))
    expected = selective_scan_sequential(*inputs)
    torch.testing.assert_close(selective_scan_chunked(*inputs, chunk_size=chunk_size), expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("chunk_size", [3, 16])
def test_chunked_scan_gradients_equal_the_sequential_scans(chunk_size):
    # The chunks are recomputed in the backward pass (checkpointing); the gradients must not notice.
    inputs = [t.requires_grad_() for t in _scan_inputs(torch.Generator().manual_seed(10), length=20)]
    weights = torch.randn(2, 6, 20, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    chunked = torch.autograd.grad((selective_scan_chunked(*inputs, chunk_size=chunk_size) * weights).sum(), inputs)
    sequential = torch.autograd.grad((selective_scan_sequential(*inputs) * weights).sum(), inputs)
    for got, want in zip(chunked, sequential):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_chunked_scan_rejects_a_non_positive_chunk_size():
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan_chunked(*_scan_inputs(torch.Generator().manual_seed(0)), chunk_size=0)


def test_nmf_updates_keep_factors_non_negative_and_never_increase_the_error():
    generator = torch.Generator().manual_seed(3)
    x = torch.rand(2, 32, 50, generator=generator, dtype=torch.float64)
    bases = F.normalize(torch.rand(2, 32, 8, generator=generator, dtype=torch.float64), dim=1)
    coef = torch.softmax(x.transpose(1, 2) @ bases, dim=-1)
    errors = []
    for _ in range(10):
        bases, coef = nmf_step(x, bases, coef)
        assert (bases >= 0).all() and (coef >= 0).all()
        errors.append(torch.linalg.matrix_norm(x - bases @ coef.transpose(1, 2)).sum().item())
    assert all(later <= earlier * (1 + 1e-9) for earlier, later in pairwise(errors))


def test_nmf_reconstruction_is_non_negative_fp32_and_seeded_in_evaluation():
    nmf = NMF2D(rank=4).eval()
    x = torch.rand(2, 16, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = nmf(x.bfloat16())
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert (y >= 0).all()
    torch.testing.assert_close(nmf(x), nmf(x), rtol=0, atol=0)
