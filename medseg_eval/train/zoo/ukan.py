"""U-KAN-L: a U-Net whose two deepest stages are tokenized Kolmogorov-Arnold-network (KAN) blocks.

Reference
---------
C. Li, X. Liu, W. Li, C. Wang, H. Liu, Y. Liu, Z. Chen, Y. Yuan, "U-KAN Makes Strong Backbone for Medical
Image Segmentation and Generation", AAAI 2025, arXiv:2406.02918.

Layout as in the paper and its segmentation code: three conv stages (two 3x3 conv-BN-ReLU, 2x2 max-pool;
widths C/8, C/4, C), two tokenized KAN stages (an overlapping 3x3 stride-2 patch embedding with LayerNorm,
then a KAN block: LayerNorm and three KANLinear layers, each followed by a depthwise 3x3 conv-BN-ReLU, as a
residual; then LayerNorm), and a mirrored decoder (conv block, bilinear x2, ReLU, additive skip) with KAN
blocks at its two deepest levels.

Widths: ``embed_dims = (256, 320, 512)``, the default of the authors' ``UKAN`` class, gives 25.4 M
parameters at one output, the study's 25 M; the training script's default (128, 160, 256) gives 6.4 M. So
"U-KAN-L" is read as the (256, 320, 512) setting.

Departures from the paper
-------------------------
* KANLinear (efficient-KAN style: grid 5, cubic B-splines on [-1, 1] extended by three knots each side,
  SiLU base branch, a per-edge spline scaler) initialises its spline coefficients with small uniform noise
  (``scale_noise / grid_size``) directly, instead of fitting the coefficients to noisy curves by least squares;
  both give near-zero splines at the start. The grid stays fixed (no grid update), as in the authors' training.
* The whole KANLinear runs in fp32 under autocast: the Cox-de Boor recursion divides by knot differences and
  subtracts nearly equal numbers.
* The authors train the KAN layers with a 100x larger learning rate (1e-2 vs 1e-4); the study trains every
  model with one learning rate, so nothing here marks parameter groups.

Pretrained weights
------------------
U-KAN is trained from scratch; no ImageNet weights exist, so ``pretrained=True`` raises
:class:`~medseg_eval.train.zoo.registry.PretrainedUnavailableError`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import PretrainedUnavailableError, register

#: Token widths of the last conv stage, the first KAN stage and the bottleneck KAN stage (U-KAN-L).
EMBED_DIMS = (256, 320, 512)


class KANLinear(nn.Module):
    """A KAN layer: ``y = W_base SiLU(x) + sum_k (W_spline * scaler)[:, :, k] B_k(x)``, edge by edge.

    ``B_k`` are the B-spline bases of order ``spline_order`` on a uniform grid of ``grid_size`` intervals over
    ``grid_range``, extended by ``spline_order`` knots on each side so that inside ``grid_range`` every point
    is covered by ``spline_order + 1`` bases that sum to one.

    Parameters
    ----------
    in_features, out_features
        Input and output widths.
    grid_size
        Grid intervals over ``grid_range``.
    spline_order
        B-spline order (3: cubic).
    grid_range
        Range the grid covers.
    scale_noise
        Scale of the spline coefficients' initial noise.

    Examples
    --------
    >>> bases = KANLinear(4, 2).b_splines(torch.linspace(-1, 1, 5)[:, None].expand(5, 4))
    >>> bases.shape, bool(torch.allclose(bases.sum(-1), torch.ones(5, 4)))
    (torch.Size([5, 4, 8]), True)
    """

    def __init__(self, in_features: int, out_features: int, *, grid_size: int = 5, spline_order: int = 3,
                 grid_range: tuple[float, float] = (-1.0, 1.0), scale_noise: float = 0.1) -> None:
        super().__init__()
        self.spline_order = spline_order
        step = (grid_range[1] - grid_range[0]) / grid_size
        knots = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float32) * step + grid_range[0]
        self.register_buffer("grid", knots.expand(in_features, -1).contiguous())
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, grid_size + spline_order))
        self.spline_scaler = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.spline_scaler, a=math.sqrt(5))
        nn.init.uniform_(self.spline_weight, -scale_noise / (2 * grid_size), scale_noise / (2 * grid_size))

    def b_splines(self, x: torch.Tensor) -> torch.Tensor:
        """B-spline bases ``[N, in_features, grid_size + spline_order]`` of ``x`` ``[N, in_features]``, in fp32."""
        grid = self.grid
        x = x.float().unsqueeze(-1)
        # Order 0: indicators of the half-open knot intervals; the recursion raises the order one step at a time.
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).float()
        for k in range(1, self.spline_order + 1):
            left = (x - grid[:, :-(k + 1)]) / (grid[:, k:-1] - grid[:, :-(k + 1)])
            right = (grid[:, k + 1:] - x) / (grid[:, k + 1:] - grid[:, 1:-k])
            bases = left * bases[..., :-1] + right * bases[..., 1:]
        return bases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., in_features] -> [..., out_features]``, computed in fp32 and returned in ``x``'s dtype."""
        shape = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.reshape(-1, shape[-1]).float()
            base = F.linear(F.silu(flat), self.base_weight)
            weight = (self.spline_weight * self.spline_scaler.unsqueeze(-1)).flatten(1)
            spline = F.linear(self.b_splines(flat).flatten(1), weight)
        return (base + spline).reshape(*shape[:-1], -1).to(x.dtype)


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def _conv_block(in_channels: int, out_channels: int, *, mid_channels: int) -> nn.Sequential:
    return nn.Sequential(*_conv_bn_relu(in_channels, mid_channels), *_conv_bn_relu(mid_channels, out_channels))


class _KANBlock(nn.Module):
    """``x + [KANLinear -> depthwise 3x3 conv-BN-ReLU] x 3 (LayerNorm(x))`` on tokens of an ``H x W`` map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.kans = nn.ModuleList(KANLinear(dim, dim) for _ in range(3))
        self.convs = nn.ModuleList(nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.BatchNorm2d(dim),
                                                 nn.ReLU(inplace=True)) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        y = self.norm(tokens)
        for kan, conv in zip(self.kans, self.convs):
            y = conv(kan(y).transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return (tokens + y).transpose(1, 2).reshape(b, c, h, w)


class _TokenNorm(nn.LayerNorm):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class UKAN(nn.Module):
    """U-KAN with token widths ``embed_dims``.

    Parameters
    ----------
    out_channels
        Logit channels.
    embed_dims
        Widths of the last conv stage, the first KAN stage and the bottleneck; the conv stages before them
        are ``embed_dims[0] // 8`` and ``embed_dims[0] // 4`` wide.

    Examples
    --------
    >>> UKAN(2, embed_dims=(32, 40, 64))(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
    """

    def __init__(self, out_channels: int, embed_dims: tuple[int, int, int] = EMBED_DIMS) -> None:
        super().__init__()
        c0, c1, c2 = embed_dims
        self.encoder = nn.ModuleList([_conv_block(3, c0 // 8, mid_channels=c0 // 8),
                                      _conv_block(c0 // 8, c0 // 4, mid_channels=c0 // 4),
                                      _conv_block(c0 // 4, c0, mid_channels=c0)])
        # Overlapping patch embeddings: 3x3 conv, stride 2, then LayerNorm over the tokens.
        self.embed = nn.ModuleList([nn.Sequential(nn.Conv2d(c0, c1, 3, stride=2, padding=1), _TokenNorm(c1)),
                                    nn.Sequential(nn.Conv2d(c1, c2, 3, stride=2, padding=1), _TokenNorm(c2))])
        self.kan_encoder = nn.ModuleList([nn.Sequential(_KANBlock(c1), _TokenNorm(c1)),
                                          nn.Sequential(_KANBlock(c2), _TokenNorm(c2))])
        # Decoder conv blocks keep their input width in the first conv, as in the authors' code.
        self.decoder = nn.ModuleList(_conv_block(a, b, mid_channels=a)
                                     for a, b in [(c2, c1), (c1, c0), (c0, c0 // 4), (c0 // 4, c0 // 8),
                                                  (c0 // 8, c0 // 8)])
        self.kan_decoder = nn.ModuleList([nn.Sequential(_KANBlock(c1), _TokenNorm(c1)),
                                          nn.Sequential(_KANBlock(c0), _TokenNorm(c0))])
        self.head = nn.Conv2d(c0 // 8, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` for images ``[B, 3, H, W]`` (``H``, ``W`` multiples of 32)."""
        skips = []
        for block in self.encoder:
            x = F.max_pool2d(block(x), 2)
            skips.append(x)
        for embed, stage in zip(self.embed, self.kan_encoder):
            x = stage(embed(x))
            skips.append(x)
        skips.pop()  # the bottleneck is the decoder's input, not a skip
        for i, block in enumerate(self.decoder):
            x = F.relu(F.interpolate(block(x), scale_factor=2, mode="bilinear", align_corners=False))
            if skips:
                x = x + skips.pop()
            if i < len(self.kan_decoder):
                x = self.kan_decoder[i](x)
        return self.head(x)


@register("ukan-l", family="specialized", parameters_m=25,
          paper="Li, Liu, Li, Wang, Liu, Liu, Chen, Yuan, U-KAN Makes Strong Backbone for Medical Image "
                "Segmentation and Generation, AAAI 2025, arXiv:2406.02918")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """U-KAN-L (``embed_dims = (256, 320, 512)``) with ``out_channels`` logits, initialised from scratch."""
    if pretrained:
        raise PretrainedUnavailableError(
            "ukan-l: U-KAN is trained from scratch and no ImageNet weights for it exist (the authors publish none "
            "at https://github.com/CUHK-AIM-Group/U-KAN); build it with pretrained=False.")
    return UKAN(out_channels)
