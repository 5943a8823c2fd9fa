"""MISSFormer: enhanced transformer encoder, a multi-scale context bridge and a patch-expanding decoder.

Reference
---------
X. Huang, Z. Deng, D. Li, X. Yuan et al., "MISSFormer: An Effective Medical Image Segmentation Transformer",
arXiv:2109.07162; published in IEEE Transactions on Medical Imaging (2022) as "MISSFormer: An Effective
Transformer for 2D Medical Image Segmentation".

Layout as in the paper and its code:

* Encoder: four stages (widths 64, 128, 320, 512; two blocks each; heads 1, 2, 5, 8; key/value spatial
  reduction 8, 4, 2, 1) of overlapping patch embeddings (7x7 stride 4, then 3x3 stride 2) and *enhanced
  transformer blocks*: efficient self-attention, then the Enhanced Mix-FFN (linear, depthwise 3x3 conv with a
  skip, LayerNorm, GELU, linear; hidden width 4x).
* Enhanced transformer context bridge (four layers): the four encoder maps are flattened into 64-wide
  tokens, a ``k * 64``-channel map giving ``k`` tokens per position, and concatenated; one efficient
  self-attention (one head) runs over all of them, keys and values coming from each scale reduced by 8, 4, 2, 1 (a
  strided conv per scale); then the tokens are split back by scale, each scale gets its own Enhanced Mix-FFN at
  its own width, and the results are concatenated again. The split points follow the input size: a scale of
  ``h x w`` positions and ``C`` channels spans ``h * w * C / 64`` tokens (at 224x224: 3136, 1568, 980, 392;
  at 512x512: 16384, 8192, 5120, 2048).
* Decoder: at each level the upsampled tokens are concatenated with the bridge's skip, projected linearly,
  passed through two enhanced transformer blocks and patch-expanded (linear, then a 2x2 pixel shuffle halving
  the width; the last level expands 4x4 to the input's resolution), then a 1x1 conv gives the logits.

Departures from the paper's code
--------------------------------
* The deepest decoder level runs its two enhanced transformer blocks (width 512, 8 heads) on the bridge's
  H/32 tokens before the first patch expanding. The authors' code builds those two blocks (6.4 M) and a concat
  projection (0.5 M) at that level but never calls them, so its 42.5 M parameters (the study's 42 M) include
  7 M that never influence the output; built without them the network has 35.5 M. Running the two blocks makes
  every parameter count (41.8 M here, at one output) and matches the other decoder levels; the concat projection
  has nothing to concatenate there and is not built.
* The authors' spatial reduction in the bridge regroups the reduced channels across positions when it cuts
  them into 64-wide tokens; here reduced maps are cut exactly like the queries (consecutive channels of one
  position), which differs only by a fixed permutation of learnable channels.
* Attention runs in fp32 under autocast (``scaled_dot_product_attention``); the FFN's two unused LayerNorms in
  the authors' code are not built; initialisation follows SegFormer's MiT (truncated normal 0.02 for linear
  layers, He fan-out normal for convolutions) throughout.

Pretrained weights
------------------
The paper trains MISSFormer from scratch; the study's predecessor code optionally starts the encoder from
ImageNet-1k MiT-B1 (Hugging Face ``nvidia/mit-b1``) through a key map, and so does ``pretrained=True``: the
weights load into a MiT-B1 through :func:`~medseg_eval.train.zoo.mit.load_imagenet` and are copied onto the
encoder. The Enhanced Mix-FFN's LayerNorm (MiT has none), the bridge and the decoder start from scratch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import mit
from .registry import register
from .weights import load_renamed

#: MiT-B1, the encoder's ImageNet start (through transformers).
IMAGENET_WEIGHTS = "nvidia/mit-b1"

#: Encoder widths, heads and key/value reduction ratios per stage (MiT-B1 shape, as in the paper).
DIMS = (64, 128, 320, 512)
HEADS = (1, 2, 5, 8)
REDUCTIONS = (8, 4, 2, 1)
#: Decoder levels, deepest first: (concatenated input width or None, width, heads, key/value reduction,
#: output width, expansion). Each level's input is the previous level's output next to the bridge's skip.
DECODER = ((None, 512, 8, 1, 256, 2), (256 + 320, 320, 5, 2, 160, 2), (160 + 128, 128, 2, 4, 64, 2),
           (64 + 64, 64, 1, 8, 64, 4))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    with torch.autocast(device_type=q.device.type, enabled=False):
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    return out.to(q.dtype)


def _to_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``[B, h * w * k, C]`` tokens (``k`` consecutive tokens per position) to a ``[B, k * C, h, w]`` map."""
    return tokens.reshape(tokens.shape[0], h, w, -1).permute(0, 3, 1, 2)


def _to_tokens(x: torch.Tensor, width: int) -> torch.Tensor:
    """A ``[B, C, h, w]`` map to ``[B, h * w * C / width, width]`` tokens, the inverse of :func:`_to_map`."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, width)


class _EfficientAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from the map reduced ``reduction`` times."""

    def __init__(self, dim: int, heads: int, reduction: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reduce = nn.Conv2d(dim, dim, reduction, stride=reduction) if reduction > 1 else None
        self.norm = nn.LayerNorm(dim) if reduction > 1 else None

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        keys = x if self.reduce is None else self.norm(_to_tokens(self.reduce(_to_map(x, h, w)), c))
        q = self.q(x).reshape(b, n, self.heads, -1).transpose(1, 2)
        k, v = self.kv(keys).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class _EnhancedMixFFN(nn.Module):
    """``fc2(GELU(LN(z + dwconv(z))))`` with ``z = fc1(x)``: the paper's Enhanced Mix-FFN."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        z = self.fc1(x)
        z = z + _to_tokens(self.dwconv(_to_map(z, h, w)), z.shape[-1])
        return self.fc2(F.gelu(self.norm(z)))


class _Block(nn.Module):
    """The enhanced transformer block: pre-norm efficient attention and Enhanced Mix-FFN, both residual."""

    def __init__(self, dim: int, heads: int, reduction: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _EfficientAttention(dim, heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _EnhancedMixFFN(dim, 4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class _EncoderStage(nn.Module):
    def __init__(self, in_channels: int, dim: int, heads: int, reduction: int, *, first: bool) -> None:
        super().__init__()
        kernel, stride = (7, 4) if first else (3, 2)
        self.embed = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=kernel // 2)
        self.embed_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(_Block(dim, heads, reduction) for _ in range(2))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        h, w = x.shape[-2:]
        tokens = self.embed_norm(_to_tokens(x, x.shape[1]))
        for block in self.blocks:
            tokens = block(tokens, h, w)
        return _to_map(self.norm(tokens), h, w)


class _BridgeLayer(nn.Module):
    """One layer of the enhanced transformer context bridge over the concatenated multi-scale tokens."""

    def __init__(self, width: int = DIMS[0]) -> None:
        super().__init__()
        self.width = width
        self.norm1 = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.proj = nn.Linear(width, width)
        self.reduce = nn.ModuleList(nn.Conv2d(d, d, r, stride=r) if r > 1 else nn.Identity()
                                    for d, r in zip(DIMS, REDUCTIONS))
        self.reduce_norm = nn.LayerNorm(width)
        self.norm2 = nn.LayerNorm(width)
        self.ffns = nn.ModuleList(_EnhancedMixFFN(d, 4 * d) for d in DIMS)

    def forward(self, x: torch.Tensor, sizes: list[tuple[int, int]]) -> torch.Tensor:
        b = x.shape[0]
        counts = [h * w * d // self.width for (h, w), d in zip(sizes, DIMS)]
        y = self.norm1(x)
        keys = [_to_tokens(reduce(_to_map(part, h, w)), self.width)
                for part, reduce, (h, w) in zip(y.split(counts, dim=1), self.reduce, sizes)]
        k, v = self.kv(self.reduce_norm(torch.cat(keys, dim=1))).unsqueeze(1).chunk(2, dim=-1)
        x = x + self.proj(_attention(self.q(y).unsqueeze(1), k, v).squeeze(1))
        y = self.norm2(x)
        # A position's tokens are consecutive, so regrouping them into one token of the scale's width is a reshape.
        mixed = [ffn(part.reshape(b, -1, d), h, w).reshape(b, -1, self.width)
                 for part, ffn, (h, w), d in zip(y.split(counts, dim=1), self.ffns, sizes, DIMS)]
        return x + torch.cat(mixed, dim=1)


class _PatchExpand(nn.Module):
    """Linear to ``scale**2 * out_dim``, then a ``scale x scale`` pixel shuffle and LayerNorm."""

    def __init__(self, dim: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.expand = nn.Linear(dim, scale * scale * out_dim, bias=False)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, s = x.shape[0], self.scale
        x = self.expand(x).reshape(b, h, w, s, s, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h * s * w * s, -1)
        return self.norm(x)


class _DecoderStage(nn.Module):
    """Concat projection of (upsampled, skip), two enhanced blocks, patch expanding."""

    def __init__(self, in_dim: int | None, dim: int, heads: int, reduction: int, out_dim: int, scale: int) -> None:
        super().__init__()
        self.fuse = nn.Linear(in_dim, dim) if in_dim else nn.Identity()
        self.blocks = nn.ModuleList(_Block(dim, heads, reduction) for _ in range(2))
        self.expand = _PatchExpand(dim, out_dim, scale)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, h: int, w: int) -> torch.Tensor:
        if skip is not None:
            x = self.fuse(torch.cat([x, skip], dim=-1))
        for block in self.blocks:
            x = block(x, h, w)
        return self.expand(x, h, w)


class MISSFormer(nn.Module):
    """MISSFormer.

    Parameters
    ----------
    out_channels
        Logit channels.

    Examples
    --------
    >>> MISSFormer(2)(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
    """

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        chans = (3, *DIMS)
        self.encoder = nn.ModuleList(_EncoderStage(chans[i], DIMS[i], HEADS[i], REDUCTIONS[i], first=i == 0)
                                     for i in range(4))
        self.bridge = nn.ModuleList(_BridgeLayer() for _ in range(4))
        self.decoder = nn.ModuleList(_DecoderStage(*level) for level in DECODER)
        self.head = nn.Conv2d(DECODER[-1][4], out_channels, 1)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` for images ``[B, 3, H, W]`` (``H``, ``W`` multiples of 32)."""
        maps = []
        for stage in self.encoder:
            x = stage(x)
            maps.append(x)
        sizes = [tuple(m.shape[-2:]) for m in maps]
        tokens = torch.cat([_to_tokens(m, DIMS[0]) for m in maps], dim=1)
        for layer in self.bridge:
            tokens = layer(tokens, sizes)
        counts = [h * w * d // DIMS[0] for (h, w), d in zip(sizes, DIMS)]
        parts = tokens.split(counts, dim=1)
        skips = [part.reshape(x.shape[0], h * w, d) for part, (h, w), d in zip(parts, sizes, DIMS)]
        y = skips[3]
        for i, stage in enumerate(self.decoder):
            h, w = sizes[3 - i]
            y = stage(y, skips[3 - i] if i else None, h, w)
        h, w = sizes[0]
        return self.head(_to_map(y, 4 * h, 4 * w))


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_out))
        nn.init.zeros_(m.bias)


@register("missformer", family="specialized", parameters_m=42,
          paper="Huang, Deng, Li, Yuan, MISSFormer: An Effective Medical Image Segmentation Transformer, "
                "IEEE TMI 2022, arXiv:2109.07162")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """MISSFormer with ``out_channels`` logits; the encoder starts from ImageNet MiT-B1 when ``pretrained``."""
    model = MISSFormer(out_channels)
    if pretrained:
        load_imagenet(model)
    return model


def load_imagenet(model: MISSFormer, source: str = IMAGENET_WEIGHTS) -> None:
    """Copy MiT-B1 ImageNet weights (``source``: Hub repo id or local folder) onto ``model``'s encoder.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had.
    """
    encoder = mit.MixTransformer(embed_dims=DIMS, depths=(2, 2, 2, 2), heads=HEADS, sr_ratios=REDUCTIONS)
    mit.load_imagenet(encoder, source, model="missformer")
    load_renamed(model, encoder.state_dict(), [(r"^stages\.", "encoder."), (r"\.attn\.reduce_norm\.", ".attn.norm.")],
                 fresh=r"^(bridge|decoder|head)\.|\.ffn\.norm\.")
