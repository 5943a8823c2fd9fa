"""SegFormer-B3 and VWFormer (MiT-B3, ConvNeXt-S): size, a training step, pretrained weights, VWA's windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from medseg_eval.train.zoo.mit import attention_fp32
from medseg_eval.train.zoo.vwformer import VaryingWindowAttention


def test_context_window_is_centred_on_its_query_window_and_copy_shift_padded_at_the_border():
    attention = VaryingWindowAttention(16, 1, ratio=2)
    context = torch.randn(1, 4, 16, 16)
    windows = attention.context_windows(context, (8, 8)).view(8, 8, 4, 4, 4)  # P = 2, context side RP = 4
    torch.testing.assert_close(windows[3, 5], context[0, :, 5:9, 9:13])
    # The row above the map is the row one context window (RP = 4) further in.
    torch.testing.assert_close(windows[0, 0, :, 0, 1:], context[0, :, 3, 0:3])
    torch.testing.assert_close(windows[0, 0, :, 1:, 1:], context[0, :, 0:3, 0:3])


def test_copy_shift_padding_wraps_around_when_the_context_window_spans_the_map():
    attention = VaryingWindowAttention(64, 1, ratio=8)
    context = torch.randn(1, 1, 8, 8)
    windows = attention.context_windows(context, (8, 8))  # P = 1, context side RP = 8 = map side
    torch.testing.assert_close(windows[0, 0], torch.roll(context[0, 0], (3, 3), dims=(0, 1)))


def test_attention_softmax_runs_in_fp32_under_autocast():
    torch.manual_seed(0)
    q = (100 * torch.randn(1, 2, 16, 8)).bfloat16()
    k, v = q.flip(-2), q.roll(1, dims=-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attention_fp32(q, k, v)
    assert out.dtype == torch.bfloat16
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    torch.testing.assert_close(out, reference.bfloat16())
