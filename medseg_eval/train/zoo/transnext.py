"""TransNeXt-Tiny with a UPerHead ("transnext-tiny-upernet"), aggregated attention in pure torch.

References
----------
D. Shi, "TransNeXt: Robust Foveal Visual Perception for Vision Transformers", CVPR 2024, arXiv:2311.17132.
Decoder: T. Xiao et al., "Unified Perceptual Parsing for Scene Understanding", ECCV 2018 (see :mod:`.uperhead`).

Configuration is TransNeXt-Tiny: overlapping patch embeddings (7x7 stride 4, then 3x3 stride 2), widths
(72, 144, 288, 576), depths (2, 2, 15, 2), heads (3, 6, 12, 24), convolutional-GLU ratios (8, 8, 4, 4),
pooling ratios (8, 4, 2, 1), qkv bias, stochastic depth rising linearly to 0.4 (the predecessor's segmentation
setting). Stages 1-3 use aggregated attention: each query attends, through one softmax, to its 3x3 neighbourhood
(pixel-focused attention, with a learned per-position bias and query-dependent learnable tokens) and to the
image's average-pooled tokens (pooling ratio ``sr``); queries and keys are L2-normalised and scaled by a learned
temperature times ``log`` of the number of keys (length-scaled cosine attention), a learned query embedding is
added to the queries, and the pooled branch gets a log-spaced continuous positional bias (log-CPB) from a small
MLP. Stage 4 uses the same cosine attention over all tokens. The four stage outputs feed the UPerHead.

Notes
-----
Departures from the official code:

* The neighbourhood gather is ``F.unfold`` (the official "native" path), not the CUDA ``swattention`` kernel.
* Pooled-token grid, padding mask, length scale and CPB table are computed for the actual input size
  (the official extrapolation mode). At 512x512, the predecessor's training size, this gives exactly the
  fixed-size (``is_extrapolation=False``) model; at other sizes the official fixed-size model interpolates the
  512 bias instead. Relative coordinates are normalised by the 224x224 pre-training grid, as upstream.
* Attention logits, softmax and value aggregation run in float32 under autocast.
* Attention and projection dropout are left out (their rate is 0 in the official configuration).
* No SyncBN in the head and no auxiliary FCN head (see :mod:`.uperhead`).

Pretrained weights
------------------
``pretrained=True`` loads the official ImageNet-1k TransNeXt-Tiny (224x224), the file ``transnext_tiny_224_1k.pth``
of the Hugging Face repo ``DaiShiResearch/transnext-tiny-224-1k`` (a plain state dict; the file the official UPerNet
configs start from), onto the backbone; the 1000-class classifier ``head`` is dropped and the UPerHead starts from
scratch. Every backbone tensor maps one to one, by renaming only: ``patch_embed{i}.proj`` / ``.norm`` ->
``stages.{i-1}.patch_embed`` / ``.patch_norm``, ``block{i}`` -> ``stages.{i-1}.blocks``, ``norm{i}`` ->
``stages.{i-1}.norm``, ``mlp.dwconv.dwconv`` -> ``mlp.dwconv``. Nothing is interpolated or skipped, as in the
official segmentation code (mmcv ``load_checkpoint(strict=False)`` of this file into a 512x512 backbone with
``pretrain_size=224``, which leaves out only ``head``): the stored position-related tensors do not depend on the
resolution (the log-CPB is an MLP of continuous coordinates; ``relative_pos_bias_local``, ``learnable_tokens`` and
``learnable_bias`` are per 3x3 neighbour; ``query_embedding`` and ``temperature`` per head), and the
resolution-dependent tables (CPB coordinates and index, padding mask, length scale) are non-persistent buffers
upstream, absent from the file, that we compute for each input size.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .mit import drop_path
from .registry import register
from .uperhead import UPerNet
from .weights import load_checkpoint, load_renamed

#: The official ImageNet-1k TransNeXt-Tiny (224x224): Hugging Face repo and the file in it.
IMAGENET_WEIGHTS = "DaiShiResearch/transnext-tiny-224-1k"
IMAGENET_FILE = "transnext_tiny_224_1k.pth"

CHANNELS = (72, 144, 288, 576)
DEPTHS = (2, 2, 15, 2)
HEADS = (3, 6, 12, 24)
MLP_RATIOS = (8, 8, 4, 4)
POOL_RATIOS = (8, 4, 2, 1)
DROP_PATH_RATE = 0.4
PRETRAIN_SIZE = 224
WINDOW = 3



@functools.lru_cache(maxsize=32)
def _cpb_coordinates(query: tuple[int, int], key: tuple[int, int], pretrain: tuple[int, int],
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-spaced relative coordinates (query minus pooled key) for the positional-bias MLP.

    Key positions are the centres of the pooling windows. Coordinates are scaled so that the pre-training grid
    spans [-8, 8], then mapped by ``sign(t) * log2(1 + |t|) / log2(8)``. Returns the table of distinct
    ``(dy, dx)`` pairs ``[U, 2]`` and the index ``[Nq, Nk]`` of each query/key pair into it; because the pairs
    are the Cartesian product of the distinct row and column differences, the table is built per axis.
    """
    def axis(q: int, k: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(q, dtype=torch.float32, device=device)
        centres = F.adaptive_avg_pool1d(positions[None], k)[0]
        diff = (positions[:, None] - centres[None]) * (8.0 / max(p - 1, 1))
        return torch.unique(diff, return_inverse=True)

    # Cached tensors must stay usable by autograd even when first built under inference_mode.
    with torch.inference_mode(False):
        (dy, iy), (dx, ix) = axis(query[0], key[0], pretrain[0]), axis(query[1], key[1], pretrain[1])
        table = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1).view(-1, 2)
        table = torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0
        index = iy[:, None, :, None] * dx.numel() + ix[None, :, None, :]
        return table, index.reshape(query[0] * query[1], key[0] * key[1])


@functools.lru_cache(maxsize=32)
def _window_validity(size: tuple[int, int], window: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Which of the ``window**2`` neighbours of each token fall outside the map (``[N, K]`` bool), and how many
    keys each token sees in the local branch (``[N, 1]``)."""
    with torch.inference_mode(False):  # see _cpb_coordinates
        valid = F.unfold(torch.ones(1, 1, *size, device=device), window, padding=window // 2)[0]
        return valid.t() == 0, valid.sum(0)[:, None]


class _CosineAttention(nn.Module):
    """Shared parts of both attentions: query/key L2 normalisation with a learned query embedding, a
    softplus temperature (initialised to 1 / 0.24) times the log key count, and the log-CPB MLP. ``stage``
    selects the pre-training grid that normalises the positional-bias coordinates."""

    def __init__(self, dim: int, heads: int, stage: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.stage = heads, dim // heads, stage
        self.temperature = nn.Parameter(torch.full((heads, 1, 1), math.log(math.expm1(1 / 0.24))))
        self.query_embedding = nn.Parameter(nn.init.trunc_normal_(torch.empty(heads, 1, self.head_dim), std=0.02))
        self.cpb_fc1 = nn.Linear(2, 512)
        self.cpb_fc2 = nn.Linear(512, heads)
        self.proj = nn.Linear(dim, dim)

    def _scaled_queries(self, q_norm: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return (q_norm + self.query_embedding) * F.softplus(self.temperature) * torch.log(keys)

    def _position_bias(self, query: tuple[int, int], key: tuple[int, int]) -> torch.Tensor:
        grid = PRETRAIN_SIZE // 2 ** (self.stage + 2)
        table, index = _cpb_coordinates(query, key, (grid, grid), self.cpb_fc1.weight.device)
        return self.cpb_fc2(F.relu(self.cpb_fc1(table))).t()[:, index]


class AggregatedAttention(_CosineAttention):
    """Pixel-focused 3x3 sliding-window attention and pooled-token attention under one softmax.

    Parameters
    ----------
    dim, heads
        Token width and head count.
    pool_ratio
        Average-pooling ratio of the global branch (the pooled grid is ``H / pool_ratio x W / pool_ratio``).
    stage
        Stage index, for the pre-training grid that normalises the positional-bias coordinates.
    """

    def __init__(self, dim: int, heads: int, pool_ratio: int, stage: int) -> None:
        super().__init__(dim, heads, stage)
        self.pool_ratio = pool_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.sr = nn.Conv2d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim)
        self.relative_pos_bias_local = nn.Parameter(nn.init.trunc_normal_(torch.empty(heads, WINDOW ** 2), std=4e-4))
        self.learnable_tokens = nn.Parameter(nn.init.trunc_normal_(torch.empty(heads, self.head_dim, WINDOW ** 2),
                                                                   std=0.02))
        self.learnable_bias = nn.Parameter(torch.zeros(heads, 1, WINDOW ** 2))

    def _neighbours(self, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, heads, N, d]`` -> the 3x3 neighbourhood of every token ``[B, heads, N, K, d]`` (zeros outside)."""
        b, n = t.shape[0], t.shape[2]
        grid = t.transpose(2, 3).reshape(b, self.heads * self.head_dim, *size)
        patches = F.unfold(grid, WINDOW, padding=WINDOW // 2).view(b, self.heads, self.head_dim, WINDOW ** 2, n)
        return patches.permute(0, 1, 4, 3, 2)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, N, C]`` tokens of an ``H x W`` map (``size``) -> ``[B, N, C]``."""
        b, n, c = x.shape
        pool = (size[0] // self.pool_ratio, size[1] // self.pool_ratio)
        pooled = F.adaptive_avg_pool2d(F.gelu(self.sr(x.transpose(1, 2).reshape(b, c, *size))), pool)
        pooled = self.norm(pooled.flatten(2).transpose(1, 2))
        q = self.q(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2 * self.heads, self.head_dim).transpose(1, 2).chunk(2, dim=1)
        k_pool, v_pool = self.kv(pooled).view(b, -1, 2 * self.heads, self.head_dim).transpose(1, 2).chunk(2, dim=1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            q, k, v, k_pool, v_pool = (t.float() for t in (q, k, v, k_pool, v_pool))
            outside, local_keys = _window_validity(size, WINDOW, x.device)
            q_norm = F.normalize(q, dim=-1)
            q_scaled = self._scaled_queries(q_norm, local_keys + pool[0] * pool[1])
            k_local, v_local = self._neighbours(F.normalize(k, dim=-1), size), self._neighbours(v, size)
            attn_local = torch.einsum("bhnd,bhnkd->bhnk", q_scaled, k_local) + self.relative_pos_bias_local[:, None]
            attn_pool = (q_scaled @ F.normalize(k_pool, dim=-1).transpose(-2, -1)
                         + self._position_bias(size, pool))
            attn = torch.cat([attn_local.masked_fill(outside, float("-inf")), attn_pool], dim=-1).softmax(-1)
            attn_local, attn_pool = attn.split([WINDOW ** 2, pool[0] * pool[1]], dim=-1)
            # The learnable tokens add a query-dependent, softmax-free weight on each neighbour ("dynamic bias").
            attn_local = attn_local + q_norm @ self.learnable_tokens + self.learnable_bias
            out = torch.einsum("bhnk,bhnkd->bhnd", attn_local, v_local) + attn_pool @ v_pool
        return self.proj(out.transpose(1, 2).reshape(b, n, c).to(x.dtype))


class FullAttention(_CosineAttention):
    """Length-scaled cosine multi-head self-attention over all tokens with a log-CPB bias (the last stage)."""

    def __init__(self, dim: int, heads: int, stage: int) -> None:
        super().__init__(dim, heads, stage)
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``[B, N, C]`` tokens of an ``H x W`` map (``size``) -> ``[B, N, C]``."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3 * self.heads, self.head_dim).transpose(1, 2).chunk(3, dim=1)
        with torch.autocast(device_type=x.device.type, enabled=False):
            q, k, v = q.float(), k.float(), v.float()
            q_scaled = self._scaled_queries(F.normalize(q, dim=-1), torch.tensor(float(n), device=x.device))
            attn = q_scaled @ F.normalize(k, dim=-1).transpose(-2, -1) + self._position_bias(size, size)
            out = attn.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c).to(x.dtype))


class ConvolutionalGLU(nn.Module):
    """Gated linear unit whose gate branch passes a 3x3 depthwise convolution and GELU; hidden width
    ``2/3 * ratio * dim`` so the parameter count matches a plain MLP of the same ratio."""

    def __init__(self, dim: int, ratio: int) -> None:
        super().__init__()
        hidden = int(2 * dim * ratio / 3)
        self.fc1 = nn.Linear(dim, 2 * hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        gate, value = self.fc1(x).chunk(2, dim=-1)
        b, _, hidden = gate.shape
        gate = self.dwconv(gate.transpose(1, 2).reshape(b, hidden, *size)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(gate) * value)


class Block(nn.Module):
    """Pre-norm transformer block: attention, then convolutional GLU, each with stochastic depth."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, pool_ratio: int, stage: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = (FullAttention(dim, heads, stage) if pool_ratio == 1
                     else AggregatedAttention(dim, heads, pool_ratio, stage))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ConvolutionalGLU(dim, mlp_ratio)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x), size), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x), size), self.drop_path, self.training)


class Stage(nn.Module):
    """Overlapping patch embedding (strided convolution + LayerNorm), blocks, final LayerNorm."""

    def __init__(self, in_channels: int, dim: int, depth: int, heads: int, mlp_ratio: int, pool_ratio: int,
                 stage: int, drop_paths: list[float]) -> None:
        super().__init__()
        kernel, stride = (7, 4) if stage == 0 else (3, 2)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel, stride=stride, padding=kernel // 2)
        self.patch_norm = nn.LayerNorm(dim)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, pool_ratio, stage, p) for p in drop_paths)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        b, _, h, w = x.shape
        x = self.patch_norm(x.flatten(2).transpose(1, 2))
        for block in self.blocks:
            x = block(x, (h, w))
        return self.norm(x).transpose(1, 2).reshape(b, -1, h, w)


class TransNeXt(nn.Module):
    """TransNeXt backbone returning the four stage outputs ``[B, C_i, H / 2^(i+2), W / 2^(i+2)]``."""

    def __init__(self, *, drop_path_rate: float = DROP_PATH_RATE) -> None:
        super().__init__()
        rates = torch.linspace(0, drop_path_rate, sum(DEPTHS)).tolist()
        self.stages = nn.ModuleList(
            Stage(3 if i == 0 else CHANNELS[i - 1], CHANNELS[i], DEPTHS[i], HEADS[i], MLP_RATIOS[i], POOL_RATIOS[i],
                  i, rates[sum(DEPTHS[:i]):sum(DEPTHS[:i + 1])])
            for i in range(len(CHANNELS)))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


@register("transnext-tiny-upernet", family="general", parameters_m=58,
          paper="D. Shi, TransNeXt: Robust Foveal Visual Perception for Vision Transformers, CVPR 2024, "
                "arXiv:2311.17132 (UPerNet head: T. Xiao et al., ECCV 2018)")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """TransNeXt-Tiny + UPerHead with ``out_channels`` logit channels, the backbone ImageNet-initialised when
    ``pretrained``; see the module docstring."""
    model = UPerNet(TransNeXt(), CHANNELS, out_channels)
    if pretrained:
        load_imagenet(model)
    return model


# Official names (classification/transnext.py) -> ours: its stage i + 1 modules sit at the top level.
_RENAMES = [rename for i in range(len(DEPTHS)) for rename in (
    (rf"^patch_embed{i + 1}\.proj\.", f"backbone.stages.{i}.patch_embed."),
    (rf"^patch_embed{i + 1}\.norm\.", f"backbone.stages.{i}.patch_norm."),
    (rf"^block{i + 1}\.", f"backbone.stages.{i}.blocks."),
    (rf"^norm{i + 1}\.", f"backbone.stages.{i}.norm."),
)] + [(r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv.")]  # upstream wraps the depthwise conv in a DWConv module


def load_imagenet(model: UPerNet, source: str = IMAGENET_WEIGHTS) -> None:
    """Load the official ImageNet-1k TransNeXt-Tiny into ``model``'s backbone (see the module docstring).

    Parameters
    ----------
    model
        A ``transnext-tiny-upernet``; its decode head keeps its initialisation.
    source
        Hub repo id, local folder holding :data:`IMAGENET_FILE`, the file itself, or a URL.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had, and
    ``RuntimeError`` where they do not fit (another TransNeXt size).
    """
    state = load_checkpoint(source, "transnext-tiny-upernet", IMAGENET_FILE)
    load_renamed(model, state, _RENAMES, drop=r"^head\.", fresh=r"^decode_head\.")
