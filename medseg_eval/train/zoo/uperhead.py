"""UPerHead, the decoder shared by the InternImage and TransNeXt segmenters of the study.

The head follows the UPerNet decoder as mmsegmentation configures it for both backbones (the founding study's
predecessor code uses exactly that configuration): a pyramid pooling module (PPM) on the coarsest feature map,
an FPN (1x1 lateral convolutions, top-down addition, 3x3 output convolutions), concatenation of all levels at the
finest resolution, a 3x3 bottleneck, dropout and a 1x1 classifier. Every convolution but the classifier is
conv (no bias) + BatchNorm + ReLU, with 512 channels.

References
----------
T. Xiao, Y. Liu, B. Zhou, Y. Jiang, J. Sun, "Unified Perceptual Parsing for Scene Understanding", ECCV 2018,
arXiv:1807.10221.

Notes
-----
Departures from mmsegmentation: plain ``BatchNorm2d`` where mmseg uses SyncBN on several GPUs (convert with
``nn.SyncBatchNorm.convert_sync_batchnorm`` under DDP); the auxiliary FCN head of mmseg's training recipes is not
part of the model. As in mmseg, the 1x1 pooling branch of the PPM normalises one value per channel and sample, so
training needs batches of at least two images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution without bias (BatchNorm supplies it), BatchNorm and ReLU, size-preserving."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    """PPM + FPN decoder over a 4-level feature pyramid (strides 4, 8, 16, 32).

    Parameters
    ----------
    in_channels
        Channels of the backbone's feature maps, finest first.
    out_channels
        Logit channels.
    channels
        Width of every decoder convolution.
    pool_scales
        Output sizes of the PPM's adaptive average pools.
    dropout
        Channel dropout (``Dropout2d``) before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, *, channels: int = 512,
                 pool_scales: Sequence[int] = (1, 2, 3, 6), dropout: float = 0.1) -> None:
        super().__init__()
        *fine, coarsest = in_channels
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(scale), ConvBNReLU(coarsest, channels, 1))
                                 for scale in pool_scales)
        self.ppm_bottleneck = ConvBNReLU(coarsest + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(ConvBNReLU(c, channels, 1) for c in fine)
        self.fpn_convs = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in fine)
        self.fpn_bottleneck = ConvBNReLU(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(channels, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # mmseg's small-std classifier init keeps the initial logits near zero.
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: Sequence[torch.Tensor], output_size: Sequence[int]) -> torch.Tensor:
        """Logits ``[B, out_channels, *output_size]`` from the feature maps (finest first)."""
        *fine, coarsest = features
        pooled = [_resize(branch(coarsest), coarsest.shape[2:]) for branch in self.ppm]
        laterals = [conv(f) for conv, f in zip(self.lateral_convs, fine)]
        laterals.append(self.ppm_bottleneck(torch.cat([coarsest, *pooled], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(lat) for conv, lat in zip(self.fpn_convs, laterals)] + [laterals[-1]]
        size = outs[0].shape[2:]
        fused = self.fpn_bottleneck(torch.cat([outs[0], *(_resize(o, size) for o in outs[1:])], dim=1))
        return _resize(self.classifier(self.dropout(fused)), output_size)


class UPerNet(nn.Module):
    """A backbone returning four feature maps (strides 4 to 32, NCHW) followed by a :class:`UPerHead`.

    Parameters
    ----------
    backbone
        Module mapping ``[B, 3, H, W]`` to four feature maps, finest first.
    in_channels
        The backbone's feature channels, finest first.
    out_channels
        Logit channels.
    """

    def __init__(self, backbone: nn.Module, in_channels: Sequence[int], out_channels: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.decode_head = UPerHead(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` at the input's size."""
        return self.decode_head(self.backbone(x), x.shape[2:])
