"""ConvNeXt encoder (ConvNeXt-S by default), used by VWFormer with ConvNeXt-S.

Written from Liu, Mao, Wu, Feichtenhofer, Darrell, Xie, "A ConvNet for the 2020s", CVPR 2022, arXiv:2201.03545:
a 4x4 stride-4 "patchify" stem, four stages separated by LayerNorm + 2x2 stride-2 downsampling convolutions, and
blocks of 7x7 depthwise convolution, LayerNorm, an inverted-bottleneck MLP (4x, GELU), layer scale and stochastic
depth. As in the paper's segmentation backbones, each stage output passes through its own LayerNorm and the
encoder returns the four feature maps at strides 4, 8, 16, 32 (the classification head is dropped).

Departures from the paper
-------------------------
* Layer scale starts at the paper's 1e-6; the VWFormer configs set 1.0, which only mattered there because the
  ImageNet checkpoint overwrites it.
* Parameter names follow this module; :func:`load_imagenet` maps the ImageNet-1k weights of ``IMAGENET_WEIGHTS``
  (the official release, as transformers' ``ConvNextModel`` loads it). The per-stage output LayerNorms are not in
  that classification checkpoint and start fresh, as in the paper's segmentation backbones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mit import DropPath
from .weights import load_renamed, transformers_state_dict

#: transformers' ConvNextModel names -> this module's (its pooled-feature LayerNorm is dropped).
_RENAMES = [(r"^embeddings\.patch_embeddings", "downsamples.0.0"), (r"^embeddings\.layernorm", "downsamples.0.1"),
            (r"^encoder\.stages\.(\d+)\.downsampling_layer", r"downsamples.\1"),
            (r"^encoder\.stages\.(\d+)\.layers\.(\d+)", r"stages.\1.\2"), (r"layer_scale_parameter", "gamma"),
            (r"\.layernorm\.", ".norm."), (r"pwconv1", "fc1"), (r"pwconv2", "fc2")]

#: ImageNet-1k ConvNeXt-S weights of the official release on the Hugging Face Hub (Apache-2.0).
IMAGENET_WEIGHTS = "facebook/convnext-small-224"
#: The same release as the predecessor study loaded it, through mmpretrain.
MMPRETRAIN_WEIGHTS = ("https://download.openmmlab.com/mmclassification/v0/convnext/downstream/"
                      "convnext-small_3rdparty_32xb128-noema_in1k_20220301-303e75e3.pth")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise convolution, LayerNorm, 4x MLP with GELU, layer scale, stochastic-depth residual."""

    def __init__(self, dim: int, drop_path: float, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.fc2(F.gelu(self.fc1(y))) * self.gamma
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class ConvNeXt(nn.Module):
    """ConvNeXt returning its four stage outputs (each LayerNorm-ed) at strides 4, 8, 16 and 32.

    Parameters
    ----------
    depths, dims
        Blocks and width per stage (defaults: ConvNeXt-S).
    drop_path_rate
        Stochastic-depth rate of the last block, rising linearly from 0 over all blocks.
    layer_scale
        Initial value of the per-channel residual scale.
    in_channels
        Input image channels.

    Examples
    --------
    >>> encoder = ConvNeXt(depths=(1, 1, 1, 1))
    >>> [tuple(f.shape) for f in encoder(torch.zeros(1, 3, 64, 64))]
    [(1, 96, 16, 16), (1, 192, 8, 8), (1, 384, 4, 4), (1, 768, 2, 2)]
    """

    def __init__(self, *, depths: Sequence[int] = (3, 3, 27, 3), dims: Sequence[int] = (96, 192, 384, 768),
                 drop_path_rate: float = 0.0, layer_scale: float = 1e-6, in_channels: int = 3) -> None:
        super().__init__()
        rates = torch.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        self.channels = tuple(dims)
        self.downsamples = nn.ModuleList([nn.Sequential(nn.Conv2d(in_channels, dims[0], 4, stride=4),
                                                        LayerNorm2d(dims[0], eps=1e-6))])
        self.downsamples.extend(nn.Sequential(LayerNorm2d(dims[i - 1], eps=1e-6),
                                              nn.Conv2d(dims[i - 1], dims[i], 2, stride=2))
                                for i in range(1, len(dims)))
        self.stages = nn.ModuleList()
        first = 0
        for dim, depth in zip(dims, depths):
            self.stages.append(nn.Sequential(*(ConvNeXtBlock(dim, rates[first + j], layer_scale)
                                               for j in range(depth))))
            first += depth
        self.norms = nn.ModuleList(LayerNorm2d(dim, eps=1e-6) for dim in dims)
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for downsample, stage, norm in zip(self.downsamples, self.stages, self.norms):
            x = stage(downsample(x))
            features.append(norm(x))
        return features


def _init_weights(module: nn.Module) -> None:
    # The paper's initialisation: truncated normal (std 0.02) for every convolution and linear layer.
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


def convnext_s(*, drop_path_rate: float = 0.0) -> ConvNeXt:
    """ConvNeXt-S: depths (3, 3, 27, 3), widths (96, 192, 384, 768)."""
    return ConvNeXt(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768), drop_path_rate=drop_path_rate)


def load_imagenet(encoder: ConvNeXt, source: str = IMAGENET_WEIGHTS, *, model: str = "convnext-s") -> None:
    """Load ConvNeXt ImageNet weights into ``encoder`` from ``source`` (Hub repo id or local folder), via transformers.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had,
    and ``RuntimeError`` where they do not fit ``encoder`` (another ConvNeXt size).
    """
    load_renamed(encoder, transformers_state_dict("ConvNextModel", source, model), _RENAMES, drop=r"^layernorm\.",
                 fresh=r"^norms\.")
