"""SegFormer-B3: the MiT-B3 encoder and the all-MLP decoder.

Xie, Wang, Yu, Anandkumar, Alvarez, Luo, "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", NeurIPS 2021, arXiv:2105.15203. The decoder (Sec. 3.2) projects each of the four encoder maps to
768 channels with a linear layer, upsamples them to stride 4, fuses the concatenation with a linear layer and
predicts the classes with another; the logits (stride 4) are upsampled bilinearly to the input size.

Departures from the paper
-------------------------
* The per-stage linear layers are 1x1 convolutions (the same map on every pixel, the same parameters).
* The fusion layer is a 1x1 convolution + BatchNorm + ReLU and the classifier follows a 0.1 channel dropout, as in
  the authors' mmsegmentation head (the paper only says "MLP").
* The encoder's attention softmax runs in fp32 under autocast (see ``mit.attention_fp32``).
* ``pretrained=True`` loads the MiT-B3 encoder's ImageNet-1k weights (``mit.IMAGENET_WEIGHTS``, Hugging Face
  ``nvidia/mit-b3``) through transformers; the decoder starts fresh.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import mit
from .registry import register

PAPER = ("Xie, Wang, Yu, Anandkumar, Alvarez, Luo: SegFormer: Simple and Efficient Design for Semantic Segmentation "
         "with Transformers, NeurIPS 2021, arXiv:2105.15203")


class AllMLPDecoder(nn.Module):
    """SegFormer's decoder: per-stage projection, upsampling to stride 4, fusion, classifier (stride-4 logits).

    Parameters
    ----------
    in_channels
        Channels of the encoder maps, finest first.
    out_channels
        Logit channels.
    embed_dim
        Width of the projections and of the fused map (768 for SegFormer-B2 to B5).
    dropout
        Channel dropout before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, *, embed_dim: int = 768,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.projections = nn.ModuleList(nn.Conv2d(c, embed_dim, 1) for c in in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(len(in_channels) * embed_dim, embed_dim, 1, bias=False),
                                  nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(embed_dim, out_channels, 1)
        nn.init.kaiming_normal_(self.fuse[0].weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        size = features[0].shape[-2:]
        maps = [projection(f) for projection, f in zip(self.projections, features)]
        maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
                for m in maps]
        # Coarsest first, the authors' order, so that their decoder weights keep their layout.
        return self.classifier(self.dropout(self.fuse(torch.cat(maps[::-1], dim=1))))


class SegFormer(nn.Module):
    """MiT-B3 encoder + all-MLP decoder, logits upsampled to the input size."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.encoder = mit.mit_b3()
        self.decoder = AllMLPDecoder(self.encoder.channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.decoder(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("segformer-b3", family="general", parameters_m=47, paper=PAPER, amp=True)
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """SegFormer-B3 with ``out_channels`` logit channels; ``pretrained``: the MiT-B3 encoder's ImageNet-1k weights."""
    model = SegFormer(out_channels)
    if pretrained:
        mit.load_imagenet(model.encoder, model="segformer-b3")
    return model
