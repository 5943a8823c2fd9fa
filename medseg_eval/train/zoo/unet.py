"""U-Net, the classic 4-level encoder-decoder with concatenated skips.

Reference
---------
O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
MICCAI 2015, arXiv:1505.04597.

Layout as in the paper: four levels of two 3x3 conv + ReLU blocks (64, 128, 256, 512 channels) with 2x2
max-pooling, a 1024-channel bottleneck, 2x2 transposed-conv up-sampling that halves the channels, the skip
concatenated before each decoder block, and a 1x1 conv to the logits (31.0 M parameters at one output).

Departures from the paper
-------------------------
* Convolutions are zero-padded ("same"), so the output has the input's size and no skip is cropped; the paper
  uses unpadded convolutions with the overlap-tile strategy (an output smaller than the input).
* No normalisation, as in the paper and as in the study authors' predecessor code (whose optional ImageNet
  start maps plain VGG13 convolutions, without batch norm, onto the encoder). Batch norm would change the
  optimisation the study's numbers come from; the paper's He initialisation keeps the 23 plain layers trainable.
* No drop-out at the end of the contracting path (the paper mentions it; the predecessor code has none).

Pretrained weights
------------------
``pretrained=True`` copies the first eight convolutions of torchvision's ``vgg13``
(``VGG13_Weights.IMAGENET1K_V1``) onto the four encoder blocks, as the predecessor code does. They load from
the Hugging Face Hub repo ``timm/vgg13.tv_in1k`` (those weights, ported by timm, torchvision's layout, as
safetensors), so torchvision is not needed; bottleneck and decoder start from scratch.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from .registry import register
from .weights import load_checkpoint, load_renamed

#: torchvision's VGG13 (IMAGENET1K_V1) as a Hub repo.
VGG13_WEIGHTS = "timm/vgg13.tv_in1k"
#: Channels of the four encoder levels; the bottleneck has twice the last.
WIDTHS = (64, 128, 256, 512)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


class UNet(nn.Module):
    """The classic U-Net.

    Parameters
    ----------
    out_channels
        Logit channels.
    in_channels
        Image channels.

    Examples
    --------
    >>> UNet(2)(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
    """

    def __init__(self, out_channels: int, in_channels: int = 3) -> None:
        super().__init__()
        chans = (in_channels, *WIDTHS)
        self.down = nn.ModuleList(_double_conv(a, b) for a, b in pairwise(chans))
        self.bottleneck = _double_conv(WIDTHS[-1], 2 * WIDTHS[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(2 * w, w, 2, stride=2) for w in reversed(WIDTHS))
        self.decode = nn.ModuleList(_double_conv(2 * w, w) for w in reversed(WIDTHS))
        self.head = nn.Conv2d(WIDTHS[0], out_channels, 1)
        self.pool = nn.MaxPool2d(2)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                # The paper's initialisation: Gaussian with std sqrt(2 / N), N the inputs of one output unit,
                # which keeps the activations' scale through the un-normalised ReLU stack. A stride-2, 2x2
                # transposed conv feeds each output pixel from one input pixel per channel.
                taps = m.kernel_size[0] * m.kernel_size[1] // (m.stride[0] * m.stride[1])
                nn.init.normal_(m.weight, std=(2.0 / (m.in_channels * taps)) ** 0.5)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` for images ``[B, in_channels, H, W]`` (``H``, ``W`` multiples of 16)."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decode, reversed(skips)):
            x = block(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


@register("unet", family="specialized", parameters_m=31,
          paper="Ronneberger, Fischer, Brox, U-Net: Convolutional Networks for Biomedical Image Segmentation, "
                "MICCAI 2015, arXiv:1505.04597")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """A U-Net with ``out_channels`` logits; the encoder starts from VGG13's ImageNet weights when ``pretrained``."""
    model = UNet(out_channels)
    if pretrained:
        load_imagenet(model)
    return model


# VGG13's convolutions are features.{0, 2, 5, 7, 10, 12, 15, 17, 20, 22} (ReLU and max-pool between them).
_VGG_RENAMES = [(rf"^features\.{index}\.", f"down.{i // 2}.{2 * (i % 2)}.")
                for i, index in enumerate((0, 2, 5, 7, 10, 12, 15, 17))]


def load_imagenet(model: UNet, source: str = VGG13_WEIGHTS) -> None:
    """Copy VGG13's first eight convolutions onto ``model``'s encoder (``source``: Hub repo id or local folder).

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had.
    """
    load_renamed(model, load_checkpoint(source, "unet"), _VGG_RENAMES, drop=r"^(features|pre_logits|head|classifier)\.",
                 fresh=r"^(bottleneck|up|decode|head)\.")
