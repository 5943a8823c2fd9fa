"""The zoo's specialized (medical) architectures: size, gradients, pretrained requests, KAN spline bases."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from medseg_eval.train.zoo import PretrainedUnavailableError, build_model, model_info
from medseg_eval.train.zoo.ukan import KANLinear

SPECIALIZED = ("unet", "hiformer-b", "missformer", "ukan-l")

#: What each error message must name: where the ImageNet weights live (U-KAN has none).
WEIGHTS_NAMED = {"unet": "VGG13_Weights.IMAGENET1K_V1", "hiformer-b": "swin_tiny_patch4_window7_224",
                 "missformer": "nvidia/mit-b1", "ukan-l": "trained from scratch"}


@cache
def _three_class(name: str) -> torch.nn.Module:
    """One seeded 3-logit model per architecture, shared by the tests that run it (building them is slow)."""
    torch.manual_seed(0)
    return build_model(name, 3)


@pytest.mark.parametrize("name", SPECIALIZED)
def test_parameter_count_is_within_ten_percent_of_the_study(name):
    info = model_info(name)
    count = sum(p.numel() for p in build_model(name, 1).parameters())
    assert info.family == "specialized"
    assert abs(count - info.parameters_m * 1e6) <= 0.1 * info.parameters_m * 1e6, f"{name}: {count:,} parameters"


@pytest.mark.parametrize("name", SPECIALIZED)
def test_forward_backward_gives_input_sized_finite_logits_and_a_gradient_for_every_parameter(name):
    model = _three_class(name).train()
    model.zero_grad(set_to_none=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    logits = model(x)
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    # Every parameter reaches the logits: the authors' dead branches (HiFormer's CLS cross-attention,
    # MISSFormer's deepest decoder blocks) are either left out or wired in, see the module docstrings.
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradient for {bad}"


@pytest.mark.parametrize("name", SPECIALIZED)
def test_non_square_input_gives_logits_at_its_size(name):
    model = _three_class(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(2)))
    assert logits.shape == (1, 3, 96, 160)


@pytest.mark.parametrize("name", SPECIALIZED)
def test_pretrained_request_raises_and_names_the_weights(name):
    with pytest.raises(PretrainedUnavailableError, match=WEIGHTS_NAMED[name]):
        build_model(name, 1, pretrained=True)


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
