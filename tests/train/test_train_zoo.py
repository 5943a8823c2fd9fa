"""The contract every architecture of the zoo keeps: the study's parameter count, logits at the input's size,
a finite gradient for every parameter, and a clear error naming where its ImageNet weights live."""

from __future__ import annotations

from functools import cache

import pytest
import torch

from medseg_eval.train.zoo import PretrainedUnavailableError, build_model, list_models, model_info

MODELS = list_models()
#: What each error message must name: where the ImageNet weights live (U-KAN has none).
#: Models whose ImageNet weights are not wired: the error names where they live. (segformer-b3 and both VWFormers
#: load theirs through transformers: tests/train/test_train_pretrained.py.)
# Models whose ImageNet weights have no loader here (the others': tests/train/test_train_pretrained.py).
WEIGHTS_NAMED = {
    "swin-umamba": "vmamba_tiny_e292.pth", "ukan-l": "trained from scratch",
}


@cache
def _three_class(name: str) -> torch.nn.Module:
    """One seeded 3-logit model per architecture, shared by the tests that run it (building them is slow)."""
    torch.manual_seed(0)
    return build_model(name, 3)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_is_within_ten_percent_of_the_study(name):
    count = sum(p.numel() for p in build_model(name, 1).parameters())
    expected = model_info(name).parameters_m * 1e6
    assert abs(count - expected) <= 0.1 * expected, f"{name}: {count / 1e6:.2f} M parameters"


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_gives_input_sized_finite_logits_and_a_gradient_for_every_parameter(name):
    model = _three_class(name).train()
    model.zero_grad(set_to_none=True)
    logits = model(torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    # Every parameter reaches the logits (the authors' dead branches are left out or wired in: module docstrings).
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"{name}: non-finite gradient for {bad}"


@pytest.mark.parametrize("size", [(64, 96), (96, 160)])
@pytest.mark.parametrize("name", MODELS)
def test_non_square_input_gives_logits_at_its_size(name, size):
    model = _three_class(name).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(2)))
    assert logits.shape == (1, 3, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", sorted(WEIGHTS_NAMED))
def test_pretrained_request_raises_and_names_the_weights(name):
    with pytest.raises(PretrainedUnavailableError, match=WEIGHTS_NAMED[name]):
        build_model(name, 1, pretrained=True)
