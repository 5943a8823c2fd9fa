"""VWFormer: the varying-window-attention decoder on MiT-B3 and on ConvNeXt-S.

Yan, Wu, Zhang, "Multi-Scale Representations by Varying Window Attention for Semantic Segmentation", ICLR 2024,
arXiv:2404.16573. Encoders: MiT-B3 (``mit``, SegFormer, arXiv:2105.15203) and ConvNeXt-S (``convnext``, Liu et al.,
"A ConvNet for the 2020s", CVPR 2022, arXiv:2201.03545).

The decoder, reconstructed from the paper; where the paper leaves a detail open, the authors' mmsegmentation head
(github.com/yan-hao-tian/VW, ``mmsegmentation-custom/mmseg/models/decode_heads/vw_head.py``) was read as a reference
and the structure below written anew:

1. Multi-layer aggregation: encoder stages 2-4 are projected to 512 channels by linear layers, upsampled to
   stride 8, concatenated and fused (1x1 convolution + BatchNorm + ReLU).
2. Multi-scale representations of the stride-8 map, five branches concatenated and fused (1x1 conv + BN + ReLU): a
   1x1 "short path", global average pooling, and varying window attention (VWA) with context ratios R = 2, 4, 8.
   VWA tiles the map into 8 x 8 query windows of P x P pixels; each window attends to the RP x RP context window
   centred on it. Pre-scaling keeps the cost of plain P x P window attention: densely overlapping patch embedding
   (DOPE) is an R x R convolution of stride 1 over the whole map that divides the channels by R^2, the context
   windows are cut from its output, and each RP x RP x C/R^2 context is rearranged space-to-depth into
   P x P x C tokens. Copy-shift padding (CSP) fills the (R-1)P/2 wide border the centred context windows need with
   the features one context window (RP) further in, so that no context token is zero padding (for R = 8 this wraps
   around the map). Queries, keys and values are 1x1 projections, the output projection is 1x1 conv + BN with the
   BN scale initialised to zero, and the branch input is added back (the authors' ``short_cut=True``).
3. Low-level enhancement: the fused map is upsampled to stride 4 and concatenated with the stride-4 encoder map
   projected to 48 channels, fused (1x1 conv + BN + ReLU), then 0.1 channel dropout and a 1x1 classifier. The
   stride-4 logits are upsampled bilinearly to the input size.

Configuration: 512 decoder channels; 1 attention head with MiT-B3 (the authors' default, also used by the founding
study's predecessor code) and 16 heads with ConvNeXt-S (the authors' ConvNeXt-S config and the predecessor code);
stochastic depth 0.1 in MiT-B3 (SegFormer) and 0.4 in ConvNeXt-S (the authors' config).

Where this reconstruction may differ from the authors' code
-----------------------------------------------------------
* Space-to-depth orders the key/value input channels (channel, row, column), theirs (row, column, channel): the same
  model up to a permutation of the key/value projection's weights, so their weights need that permutation.
* Key and value projections are one 1x1 convolution with 2C outputs (their ``phi`` and ``g``; same parameters).
* Windows per side: theirs are always 8, which needs the stride-8 map divisible by 8 (inputs multiple of 64); here
  the largest divisor of the map side up to 8, so inputs that are multiples of 32 work. Same at 64 and 512 px.
* With an odd window side P (P = 1 at 64 x 64 inputs) the (R-1)P border cannot be split evenly; it is split
  floor/ceil here (their code would give a wrong window count there). Where a context window is larger than the
  map (only with fewer than 8 windows per side), CSP sources outside the map read zero; theirs zero-pads the map to
  the context size first, then copies.
* The attention softmax runs in fp32 even under autocast (``mit.attention_fp32``).
* BatchNorm, not SyncBatchNorm (convert with ``nn.SyncBatchNorm.convert_sync_batchnorm`` for multi-GPU DDP). As in
  theirs, the pooling branch normalises a 1 x 1 map, so training needs batches of at least 2 samples.
* ``pretrained=True`` loads the encoder's ImageNet-1k weights through transformers: ``mit.IMAGENET_WEIGHTS``
  (``nvidia/mit-b3``) or ``convnext.IMAGENET_WEIGHTS`` (``facebook/convnext-small-224``, the official release that
  the predecessor study loaded through mmpretrain as ``convnext.MMPRETRAIN_WEIGHTS``). The decoder starts fresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import convnext, mit
from .registry import register

PAPER = ("Yan, Wu, Zhang: Multi-Scale Representations by Varying Window Attention for Semantic Segmentation, "
         "ICLR 2024, arXiv:2404.16573")


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int = 1) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _resize(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def windows_per_side(size: int, most: int = 8) -> int:
    """Query windows along a map side of ``size`` pixels: the largest divisor of ``size`` up to ``most``.

    Examples
    --------
    >>> windows_per_side(64), windows_per_side(12), windows_per_side(4)
    (8, 6, 4)
    """
    return max(d for d in range(1, min(size, most) + 1) if size % d == 0)


def copy_shift_pad(x: Tensor, dim: int, before: int, after: int, shift: int) -> Tensor:
    """Pad ``x`` along ``dim`` (``-2`` or ``-1``) with copies of its own features ``shift`` positions further in.

    Padded position ``-j`` takes the feature at ``shift - j``, position ``size - 1 + j`` the one at
    ``size - 1 + j - shift``; a source outside the map reads zero.

    Examples
    --------
    >>> copy_shift_pad(torch.arange(6.0).view(1, 6), -1, 2, 2, 4)
    tensor([[2., 3., 0., 1., 2., 3., 4., 5., 2., 3.]])
    """
    size = x.shape[dim]
    position = torch.arange(-before, size + after, device=x.device)
    source = torch.where(position < 0, position + shift, torch.where(position >= size, position - shift, position))
    source = torch.where((source >= 0) & (source < size), source, size)  # ``size`` indexes the zero slice below
    zero_slice = (0, 1) if dim == -1 else (0, 0, 0, 1)
    return F.pad(x, zero_slice).index_select(dim, source)


class VaryingWindowAttention(nn.Module):
    """VWA with context ratio ``ratio``: P x P query windows attend to the RP x RP windows centred on them.

    Parameters
    ----------
    channels
        Width of the map (divisible by ``ratio ** 2`` and by ``heads``).
    heads
        Attention heads.
    ratio
        Context window side relative to the query window side (R).
    """

    def __init__(self, channels: int, heads: int, ratio: int) -> None:
        super().__init__()
        if channels % (ratio * ratio) or channels % heads:
            raise ValueError(f"Expected channels divisible by ratio**2 = {ratio * ratio} and by heads = {heads}, "
                             f"but got {channels}.")
        self.heads, self.ratio = heads, ratio
        self.dope = _conv_bn_relu(channels, channels // ratio**2, ratio)
        self.query = nn.Conv2d(channels, channels, 1)
        self.key_value = nn.Conv2d(channels, 2 * channels, 1)
        self.out = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
        # The authors' non-local initialisation: small queries, and a zero output scale so each branch starts as
        # the identity of the short cut.
        nn.init.normal_(self.query.weight, std=0.01)
        nn.init.zeros_(self.query.bias)
        nn.init.kaiming_normal_(self.key_value.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.key_value.bias)
        nn.init.zeros_(self.out[1].weight)

    def context_windows(self, context: Tensor, windows: tuple[int, int]) -> Tensor:
        """Cut the RP x RP context window centred on each query window, copy-shift padded at the borders.

        ``[B, C', H, W]`` -> ``[B * nh * nw, C', R * H / nh, R * W / nw]``, windows in row-major order.
        """
        b, c, h, w = context.shape
        r, (nh, nw) = self.ratio, windows
        ph, pw = h // nh, w // nw
        for dim, p in ((-2, ph), (-1, pw)):
            border = (r - 1) * p
            context = copy_shift_pad(context, dim, border // 2, border - border // 2, r * p)
        context = F.unfold(context, (r * ph, r * pw), stride=(ph, pw))
        context = context.view(b, c, r * ph, r * pw, nh * nw).permute(0, 4, 1, 2, 3)
        return context.reshape(b * nh * nw, c, r * ph, r * pw)

    def forward(self, x: Tensor, windows: tuple[int, int]) -> Tensor:
        b, c, h, w = x.shape
        (nh, nw), r = windows, self.ratio
        ph, pw = h // nh, w // nw
        query = self.query(x).view(b, c, nh, ph, nw, pw).permute(0, 2, 4, 1, 3, 5).reshape(b * nh * nw, c, ph * pw)
        # DOPE pads pixels asymmetrically so the R x R stride-1 convolution keeps the map size.
        context = self.dope(F.pad(x, ((r - 1) // 2, r // 2, (r - 1) // 2, r // 2)))
        context = F.pixel_unshuffle(self.context_windows(context, windows), r)
        key, value = self.key_value(context).flatten(2).chunk(2, dim=1)

        def split(t: Tensor) -> Tensor:
            return t.reshape(t.shape[0], self.heads, c // self.heads, -1).transpose(-1, -2)

        out = mit.attention_fp32(split(query), split(key), split(value)).transpose(-1, -2)
        out = out.reshape(b, nh, nw, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)
        return x + self.out(out)


class VWDecoder(nn.Module):
    """The VWFormer decoder: multi-layer aggregation, multi-scale VWA, low-level enhancement (stride-4 logits).

    Parameters
    ----------
    in_channels
        Channels of the four encoder maps, finest (stride 4) first.
    out_channels
        Logit channels.
    channels
        Decoder width.
    heads
        Attention heads of each VWA.
    ratios
        Context ratios R of the VWA branches.
    low_level_channels
        Width the stride-4 encoder map is projected to before the low-level fusion.
    dropout
        Channel dropout before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, *, channels: int = 512, heads: int = 1,
                 ratios: Sequence[int] = (2, 4, 8), low_level_channels: int = 48, dropout: float = 0.1) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels[1:])
        self.aggregate = _conv_bn_relu(len(self.projections) * channels, channels)
        self.short_path = _conv_bn_relu(channels, channels)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_bn_relu(channels, channels))
        self.attentions = nn.ModuleList(VaryingWindowAttention(channels, heads, r) for r in ratios)
        self.merge = _conv_bn_relu((len(ratios) + 2) * channels, channels)
        self.low_level = nn.Conv2d(in_channels[0], low_level_channels, 1)
        self.low_level_fuse = _conv_bn_relu(channels + low_level_channels, channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, out_channels, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        low, *deep = features
        size = deep[0].shape[-2:]
        # Coarsest first, the authors' order, so that their decoder weights keep their layout.
        x = self.aggregate(torch.cat([_resize(p(f), size) for p, f in zip(self.projections, deep)][::-1], dim=1))
        windows = (windows_per_side(size[0]), windows_per_side(size[1]))
        branches = [self.short_path(x), self.image_pool(x).expand_as(x)]
        branches += [attention(x, windows) for attention in self.attentions]
        x = self.merge(torch.cat(branches, dim=1))
        x = self.low_level_fuse(torch.cat([_resize(x, low.shape[-2:]), self.low_level(low)], dim=1))
        return self.classifier(self.dropout(x))


class VWFormer(nn.Module):
    """An encoder returning four maps (strides 4-32, widths ``encoder.channels``) + the VW decoder.

    Logits are upsampled bilinearly to the input size.
    """

    def __init__(self, encoder: nn.Module, out_channels: int, *, heads: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = VWDecoder(encoder.channels, out_channels, heads=heads)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("vwformer-mit-b3", family="general", parameters_m=51, paper=PAPER, amp=True)
def build_mit_b3(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """VWFormer on MiT-B3 with ``out_channels`` logit channels; ``pretrained``: the encoder's ImageNet-1k weights."""
    encoder = mit.mit_b3(drop_path_rate=0.1)
    if pretrained:
        mit.load_imagenet(encoder, model="vwformer-mit-b3")
    return VWFormer(encoder, out_channels, heads=1)


@register("vwformer-convnext-s", family="general", parameters_m=57, paper=PAPER, amp=True)
def build_convnext_s(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """VWFormer on ConvNeXt-S with ``out_channels`` logit channels; ``pretrained``: the encoder's ImageNet-1k weights."""
    encoder = convnext.convnext_s(drop_path_rate=0.4)
    if pretrained:
        convnext.load_imagenet(encoder, model="vwformer-convnext-s")
    return VWFormer(encoder, out_channels, heads=16)
