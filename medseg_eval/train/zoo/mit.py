"""Mix Transformer (MiT) encoder, shared by SegFormer-B3 and VWFormer with MiT-B3.

Written from Xie, Wang, Yu, Anandkumar, Alvarez, Luo, "SegFormer: Simple and Efficient Design for Semantic
Segmentation with Transformers", NeurIPS 2021, arXiv:2105.15203 (Sec. 3.1): four stages of overlapping patch
embeddings (7x7 stride 4, then 3x3 stride 2), efficient self-attention whose keys and values are spatially reduced
by a strided convolution (ratios 8, 4, 2, 1), and Mix-FFN (a 3x3 depthwise convolution between the two linear
layers, which replaces positional encodings). The encoder returns the four feature maps at strides 4, 8, 16, 32.

Departures from the paper
-------------------------
* The softmax attention runs in fp32 even under autocast (``attention_fp32``); the paper's code trains in fp32.
* Parameter names follow this module; :func:`load_imagenet` maps the ImageNet-1k weights of ``IMAGENET_WEIGHTS``
  as transformers' ``SegformerModel`` loads them (keys and values fused into one projection here).
* Block and stage LayerNorms use eps 1e-6 as NVlabs' code does (transformers uses 1e-5 there).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .weights import load_renamed, transformers_state_dict

#: ImageNet-1k MiT-B3 weights on the Hugging Face Hub (NVIDIA Source Code License, research use).
IMAGENET_WEIGHTS = "nvidia/mit-b3"

#: transformers' SegformerModel names -> this module's.
_RENAMES = [(r"patch_embeddings\.proj", "embed"), (r"patch_embeddings\.layer_norm", "embed_norm"),
            (r"layernorm_before", "norm1"), (r"layernorm_after", "norm2"), (r"attention\.q_proj", "attn.q"),
            (r"attention\.o_proj", "attn.proj"), (r"attention\.sequence_reduction\.sequence_reduction", "attn.reduce"),
            (r"attention\.sequence_reduction\.layer_norm", "attn.reduce_norm"), (r"mlp\.dwconv\.dwconv", "ffn.dwconv"),
            (r"mlp\.fc", "ffn.fc"), (r"^(stages\.\d+)\.layer_norm", r"\1.norm")]


def attention_fp32(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Scaled dot-product softmax attention over ``[..., tokens, dim]`` computed in fp32 even under autocast.

    Half-precision logits of long rows lose the softmax's precision (and can overflow); the result is cast back to
    ``v``'s dtype so the surrounding layers keep their autocast dtype.

    Examples
    --------
    >>> q = k = v = torch.ones(1, 2, 3, 4)
    >>> attention_fp32(q, k, v).shape
    torch.Size([1, 2, 3, 4])
    """
    with torch.autocast(device_type=q.device.type, enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float()).to(v.dtype)


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: in training, drop a residual branch for a whole sample with probability ``p``."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class DropPath(nn.Module):
    """:func:`drop_path` as a module."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.p, self.training)


def _tokens_to_map(x: Tensor, size: tuple[int, int]) -> Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *size)


def _map_to_tokens(x: Tensor) -> Tensor:
    return x.flatten(2).transpose(1, 2)


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a map reduced ``sr_ratio`` times per side."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.reduce = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio) if sr_ratio > 1 else None
        self.reduce_norm = nn.LayerNorm(dim) if sr_ratio > 1 else None

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        b, n, c = x.shape
        q = self.q(x).view(b, n, self.heads, c // self.heads).transpose(1, 2)
        if self.reduce is not None:
            x = self.reduce_norm(_map_to_tokens(self.reduce(_tokens_to_map(x, size))))
        k, v = self.kv(x).view(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(attention_fp32(q, k, v).transpose(1, 2).reshape(b, n, c))


class MixFFN(nn.Module):
    """Linear, 3x3 depthwise convolution, GELU, linear: the convolution leaks the position the encoder needs."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = _map_to_tokens(self.dwconv(_tokens_to_map(self.fc1(x), size)))
        return self.fc2(F.gelu(x))


class MiTBlock(nn.Module):
    """Pre-norm transformer block: efficient self-attention and Mix-FFN, each with a stochastic-depth residual."""

    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EfficientSelfAttention(dim, heads, sr_ratio)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.ffn = MixFFN(dim, mlp_ratio * dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), size))
        return x + self.drop_path(self.ffn(self.norm2(x), size))


class MiTStage(nn.Module):
    """Overlapping patch embedding (a strided convolution wider than its stride), blocks, and a final LayerNorm."""

    def __init__(self, in_channels: int, dim: int, *, patch: int, stride: int, depth: int, heads: int,
                 sr_ratio: int, mlp_ratio: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.embed = nn.Conv2d(in_channels, dim, patch, stride=stride, padding=patch // 2)
        self.embed_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(MiTBlock(dim, heads, sr_ratio, mlp_ratio, drop_paths[i]) for i in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        size = (x.shape[2], x.shape[3])
        x = self.embed_norm(_map_to_tokens(x))
        for block in self.blocks:
            x = block(x, size)
        return _tokens_to_map(self.norm(x), size)


class MixTransformer(nn.Module):
    """The MiT encoder: four stages returning feature maps at strides 4, 8, 16 and 32.

    Parameters
    ----------
    embed_dims, depths, heads, sr_ratios
        Per-stage width, number of blocks, attention heads and key/value reduction ratio (defaults: MiT-B3).
    mlp_ratio
        Hidden width of Mix-FFN relative to the stage width.
    drop_path_rate
        Stochastic-depth rate of the last block, rising linearly from 0 over all blocks (SegFormer uses 0.1).
    in_channels
        Input image channels.

    Examples
    --------
    >>> encoder = MixTransformer(depths=(1, 1, 1, 1))
    >>> [tuple(f.shape) for f in encoder(torch.zeros(1, 3, 64, 64))]
    [(1, 64, 16, 16), (1, 128, 8, 8), (1, 320, 4, 4), (1, 512, 2, 2)]
    """

    def __init__(self, *, embed_dims: Sequence[int] = (64, 128, 320, 512), depths: Sequence[int] = (3, 4, 18, 3),
                 heads: Sequence[int] = (1, 2, 5, 8), sr_ratios: Sequence[int] = (8, 4, 2, 1), mlp_ratio: int = 4,
                 drop_path_rate: float = 0.1, in_channels: int = 3) -> None:
        super().__init__()
        rates = torch.linspace(0.0, drop_path_rate, sum(depths)).tolist()
        self.channels = tuple(embed_dims)
        self.stages = nn.ModuleList()
        previous, first = in_channels, 0
        for i, (dim, depth, head, sr) in enumerate(zip(embed_dims, depths, heads, sr_ratios)):
            self.stages.append(MiTStage(previous, dim, patch=7 if i == 0 else 3, stride=4 if i == 0 else 2,
                                        depth=depth, heads=head, sr_ratio=sr, mlp_ratio=mlp_ratio,
                                        drop_paths=rates[first:first + depth]))
            previous, first = dim, first + depth
        self.apply(_init_weights)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def _init_weights(module: nn.Module) -> None:
    # SegFormer's initialisation: truncated normal linears, fan-out normal convolutions.
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, std=(2.0 / fan_out) ** 0.5)
        nn.init.zeros_(module.bias)


def load_imagenet(encoder: MixTransformer, source: str = IMAGENET_WEIGHTS, *, model: str = "mit-b3") -> None:
    """Load MiT ImageNet weights into ``encoder`` from ``source`` (Hub repo id or local folder), via transformers.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had,
    and torch's error where they do not fit ``encoder`` (another MiT size).
    """
    def fuse_kv(state: dict[str, Tensor]) -> dict[str, Tensor]:
        for key in [k for k in state if ".attention.k_proj." in k]:
            fused = key.replace("attention.k_proj", "attn.kv")
            state[fused] = torch.cat([state.pop(key), state.pop(key.replace("k_proj", "v_proj"))])
        return state

    load_renamed(encoder, transformers_state_dict("SegformerModel", source, model), _RENAMES, merge=fuse_kv)


def mit_b3(*, drop_path_rate: float = 0.1) -> MixTransformer:
    """MiT-B3: depths (3, 4, 18, 3), widths (64, 128, 320, 512), heads (1, 2, 5, 8), reductions (8, 4, 2, 1)."""
    return MixTransformer(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3), heads=(1, 2, 5, 8),
                          sr_ratios=(8, 4, 2, 1), drop_path_rate=drop_path_rate)
