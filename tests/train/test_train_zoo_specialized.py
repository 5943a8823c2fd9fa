"""The zoo's specialized (medical) architectures: size, gradients, pretrained requests, KAN spline bases."""

from __future__ import annotations

import torch

from medseg_eval.train.zoo.ukan import KANLinear


def test_kan_spline_bases_are_a_non_negative_partition_of_unity_inside_the_grid():
    layer = KANLinear(6, 4)  # grid 5, cubic, on [-1, 1]
    x = torch.rand(1000, 6, generator=torch.Generator().manual_seed(3)) * 2 - 1
    x[:2] = torch.tensor([-1.0, 1.0])[:, None]  # both ends of the grid range
    bases = layer.b_splines(x)
    assert bases.shape == (1000, 6, 5 + 3)
    assert bases.dtype == torch.float32
    assert (bases >= 0).all()
    torch.testing.assert_close(bases.sum(-1), torch.ones(1000, 6))
    # Local support: a cubic B-spline basis covers four knot intervals, so at most four are non-zero at a point.
    assert ((bases > 0).sum(-1) <= 4).all()


def test_kan_linear_computes_in_fp32_under_autocast_and_returns_the_input_dtype():
    torch.manual_seed(0)
    layer = KANLinear(8, 5)
    x = (torch.rand(16, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, layer(x.float()).bfloat16(), rtol=0, atol=0)
