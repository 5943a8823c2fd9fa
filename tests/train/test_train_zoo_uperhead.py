"""The UPerHead segmenters (InternImage-T, TransNeXt-Tiny): size, gradients, weights policy, and their operators."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medseg_eval.train.zoo.internimage import DCNv3, dcnv3
from medseg_eval.train.zoo.transnext import AggregatedAttention, FullAttention, _cpb_coordinates
from medseg_eval.train.zoo.uperhead import UPerHead


def test_uperhead_returns_logits_at_the_requested_size():
    torch.manual_seed(0)
    head = UPerHead([8, 16, 32, 64], 2, channels=16).eval()
    features = [torch.randn(2, c, 32 // 2 ** i, 32 // 2 ** i) for i, c in enumerate([8, 16, 32, 64])]
    assert head(features, (128, 128)).shape == (2, 2, 128, 128)


def _shifted(value: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``out[:, y, x] = value[:, y + dy, x + dx]``, zero where that falls outside (channels-last input)."""
    h, w = value.shape[1:3]
    padded = F.pad(value, (0, 0, 1, 1, 1, 1))
    return padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


@pytest.mark.parametrize(("point", "dx", "dy"), [(4, 0, 0), (7, 1, 0), (1, -1, 0), (5, 0, 1), (3, 0, -1), (8, 1, 1)])
def test_dcnv3_with_zero_offsets_and_a_one_hot_mask_returns_that_tap_of_the_input(point, dx, dy):
    # Points are ordered x-tap outer, y-tap inner (the official layout): point = 3 * (dx + 1) + (dy + 1).
    torch.manual_seed(0)
    value = torch.randn(2, 5, 6, 8)
    mask = F.one_hot(torch.full((2, 5, 6, 2), point), 9).float().flatten(3)
    out = dcnv3(value, torch.zeros(2, 5, 6, 2 * 9 * 2), mask, groups=2)
    torch.testing.assert_close(out, _shifted(value, dx, dy), atol=1e-6, rtol=0)


def test_dcnv3_integer_offsets_shift_each_group_independently():
    torch.manual_seed(0)
    value = torch.randn(1, 6, 7, 8)
    offset = torch.zeros(1, 6, 7, 2, 9, 2)
    offset[..., 1, 4, :] = torch.tensor([1.0, -1.0])  # group 1, centre point: one pixel right and one up
    centre = F.one_hot(torch.full((1, 6, 7, 2), 4), 9).float().flatten(3)
    out = dcnv3(value, offset.flatten(3), centre, groups=2)
    torch.testing.assert_close(out[..., :4], value[..., :4], atol=1e-6, rtol=0)
    torch.testing.assert_close(out[..., 4:], _shifted(value, 1, -1)[..., 4:], atol=1e-6, rtol=0)


def test_dcnv3_module_starts_as_a_box_filter_of_the_projected_input():
    # Zero-initialised offset and mask layers give zero offsets and a uniform 1/9 weight on every tap.
    torch.manual_seed(0)
    layer = DCNv3(16, 4)
    layer.reset_parameters()
    x = torch.randn(2, 5, 5, 16)
    projected = layer.input_proj(x).permute(0, 3, 1, 2)
    box = F.conv2d(projected, torch.full((16, 1, 3, 3), 1 / 9), padding=1, groups=16).permute(0, 2, 3, 1)
    torch.testing.assert_close(layer(x), layer.output_proj(box), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["aggregated", "full"])
def test_attention_output_of_a_sample_does_not_depend_on_the_rest_of_the_batch(kind):
    torch.manual_seed(0)
    # TransNeXt-Tiny's first-stage aggregated attention and its last-stage full attention.
    attention = AggregatedAttention(72, 3, pool_ratio=8, stage=0) if kind == "aggregated" else FullAttention(576, 24, 3)
    attention.eval()
    size = (16, 16)
    batch = torch.randn(3, size[0] * size[1], attention.proj.in_features)
    with torch.no_grad():
        together = attention(batch, size)
        alone = attention(batch[1:2], size)
    torch.testing.assert_close(alone, together[1:2], atol=1e-5, rtol=1e-5)


def test_attention_trains_after_its_position_tables_were_first_built_under_inference_mode():
    # The relative-position tables are cached per size; a cache filled under inference_mode must not poison training.
    torch.manual_seed(0)
    attention = AggregatedAttention(24, 3, pool_ratio=2, stage=1)
    x, size = torch.randn(1, 8 * 12, 24), (8, 12)
    with torch.inference_mode():
        attention(x, size)
    attention(x, size).sum().backward()
    assert torch.isfinite(attention.cpb_fc1.weight.grad).all()


def test_cpb_table_reproduces_the_pairwise_log_spaced_coordinates():
    query, key, grid = (12, 10), (3, 5), 14
    table, index = _cpb_coordinates(query, key, (grid, grid), torch.device("cpu"))
    rows, cols = (torch.arange(float(n)) for n in query)
    key_rows, key_cols = (F.adaptive_avg_pool1d(a[None], k)[0] for a, k in zip((rows, cols), key))
    qy, qx = (t.reshape(-1, 1) for t in torch.meshgrid(rows, cols, indexing="ij"))
    ky, kx = (t.reshape(1, -1) for t in torch.meshgrid(key_rows, key_cols, indexing="ij"))
    relative = torch.stack([qy - ky, qx - kx], dim=-1) * 8 / (grid - 1)
    expected = torch.sign(relative) * torch.log2(relative.abs() + 1) / 3
    torch.testing.assert_close(table[index], expected)
