"""SegNeXt-L: the MSCAN-L convolutional-attention encoder and the light Hamburger decoder.

Guo, Lu, Hou, Liu, Cheng, Hu, "SegNeXt: Rethinking Convolutional Attention Design for Semantic Segmentation",
NeurIPS 2022, arXiv:2209.08575 (code: github.com/Visual-Attention-Network/SegNeXt). MSCAN has a stem of two stride-2
3x3 convolutions, then four stages (widths 64/128/320/512, depths 3/5/27/3 for L, MLP ratios 8/8/4/4), each opened by
a stride-2 3x3 convolution (except the first) and closed by a LayerNorm. A block is two BatchNorm-preceded residual
branches with layer scale and drop path: multi-scale convolutional attention (1x1, GELU, a 5x5 depthwise
convolution plus three depthwise strip-convolution pairs 1x7/7x1, 1x11/11x1, 1x21/21x1, summed and mixed by a 1x1
convolution into weights that multiply the branch's input, 1x1) and a convolutional MLP (1x1, 3x3 depthwise, GELU,
1x1). The decoder concatenates stages 2-4 upsampled to stride 8, squeezes them to 1024 channels, runs a Hamburger
(1x1, ReLU, non-negative matrix factorisation of the ``channels x pixels`` map into 64 bases by multiplicative
updates, 1x1 + GroupNorm, residual, ReLU; Geng et al., "Is Attention Better Than Matrix Decomposition?", ICLR 2021,
arXiv:2109.04553), aligns to 1024 channels and classifies; the stride-8 logits are upsampled bilinearly to the input.
The head's widths (``ham_channels = channels = 1024``), GroupNorm (32 groups), drop path 0.3 and the NMF settings
(rank 64, 6 updates in training, 7 in evaluation: the head's defaults) follow the authors' SegNeXt-L ADE20K
configuration.

Departures from the paper
-------------------------
* BatchNorm instead of SyncBatchNorm (the training loop may convert it for multi-GPU runs).
* The NMF runs in fp32 even under autocast (the study trains SegNeXt without mixed precision anyway). All but the
  last multiplicative update run without gradient, the paper's one-step gradient.
* The NMF's random initial bases are drawn from the global generator in training, as in the paper, but from a
  generator seeded with ``NMF_EVAL_SEED`` in evaluation, so a trained model's predictions do not depend on the
  random state.
* Each block's layer scales are ``[C, 1, 1]`` parameters (the authors': ``[C]``, unsqueezed in the forward pass);
  ``load_imagenet`` reshapes them.

Pretrained weights
------------------
``pretrained=True`` loads the authors' ImageNet-1k MSCAN-L weights into the encoder, from OpenMMLab's copy
(``IMAGENET_WEIGHTS``, the file mmsegmentation's SegNeXt-L config starts from: the authors' ``mscan_l.pth`` from
Tsinghua Cloud with ``mlp.dwconv.dwconv`` renamed ``mlp.dwconv``). torch.hub downloads it once into its cache
(``$TORCH_HOME``) and checks its sha256 against the ``-cef260d4`` of its name. Every encoder tensor loads (BatchNorm
running statistics included); the ImageNet classifier (``head.*``) is dropped and the Hamburger decoder starts from
scratch, as in the paper.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mit import DropPath
from .registry import register
from .weights import load_checkpoint, load_renamed

PAPER = ("Guo, Lu, Hou, Liu, Cheng, Hu: SegNeXt: Rethinking Convolutional Attention Design for Semantic "
         "Segmentation, NeurIPS 2022, arXiv:2209.08575")

#: ImageNet-1k MSCAN-L weights: OpenMMLab's copy of the authors' ``mscan_l.pth`` (Tsinghua Cloud) with mmsegmentation's
#: key names, as its ``segnext_mscan-l_1xb16-adamw-160k_ade20k-512x512.py`` config loads them. ``cef260d4`` is the
#: file's sha256 prefix, checked by torch.hub.
IMAGENET_WEIGHTS = "https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segnext/mscan_l_20230227-cef260d4.pth"

#: Seed of the NMF's initial bases in evaluation mode.
NMF_EVAL_SEED = 0

#: Added to the multiplicative updates' denominators (the authors' value).
NMF_EPS = 1e-6


class MSCA(nn.Module):
    """Multi-scale convolutional attention: depthwise 5x5 and strip convolutions, mixed into gating weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.strips = nn.ModuleList(
            nn.Sequential(nn.Conv2d(dim, dim, (1, k), padding=(0, k // 2), groups=dim),
                          nn.Conv2d(dim, dim, (k, 1), padding=(k // 2, 0), groups=dim))
            for k in (7, 11, 21))
        self.conv3 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        attn = self.conv0(x)
        attn = attn + sum(strip(attn) for strip in self.strips)
        return self.conv3(attn) * x


class SpatialAttention(nn.Module):
    """``x + proj_2(MSCA(GELU(proj_1(x))))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.spatial_gating_unit = MSCA(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj_2(self.spatial_gating_unit(F.gelu(self.proj_1(x))))


class ConvMlp(nn.Module):
    """1x1 expansion, 3x3 depthwise convolution, GELU, 1x1 projection."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x))))


class MSCABlock(nn.Module):
    """MSCAN block: BatchNorm + attention and BatchNorm + MLP residual branches with layer scale and drop path."""

    def __init__(self, dim: int, mlp_ratio: int, drop_path: float, layer_scale: float = 1e-2) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, dim * mlp_ratio)
        self.layer_scale_1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.layer_scale_2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.layer_scale_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2 * self.mlp(self.norm2(x)))


class MSCAN(nn.Module):
    """Multi-scale convolutional attention network; returns the four stage maps (strides 4, 8, 16, 32).

    Parameters
    ----------
    dims, depths, mlp_ratios
        Width, number of blocks and MLP expansion of each stage (defaults: MSCAN-L).
    drop_path_rate
        Stochastic-depth rate of the last block, increasing linearly from 0 over the blocks.
    """

    def __init__(self, *, dims: Sequence[int] = (64, 128, 320, 512), depths: Sequence[int] = (3, 5, 27, 3),
                 mlp_ratios: Sequence[int] = (8, 8, 4, 4), drop_path_rate: float = 0.3) -> None:
        super().__init__()
        self.channels = tuple(dims)
        stem = nn.Sequential(nn.Conv2d(3, dims[0] // 2, 3, stride=2, padding=1), nn.BatchNorm2d(dims[0] // 2),
                             nn.GELU(), nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1),
                             nn.BatchNorm2d(dims[0]))
        self.patch_embeds = nn.ModuleList(
            [stem] + [nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out))
                      for c_in, c_out in pairwise(dims)])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.blocks = nn.ModuleList(
            nn.Sequential(*(MSCABlock(dim, ratio, p) for p in rates[start:start + depth]))
            for dim, ratio, start, depth in zip(dims, mlp_ratios, starts, depths))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for dim in dims)
        self.apply(_init_mscan)

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = []
        for embed, blocks, norm in zip(self.patch_embeds, self.blocks, self.norms):
            x = blocks(embed(x))
            x = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            maps.append(x)
        return maps


def _init_mscan(module: nn.Module) -> None:
    # The authors' initialisation: He-normal convolutions with fan-out counted per group.
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def nmf_step(x: Tensor, bases: Tensor, coef: Tensor) -> tuple[Tensor, Tensor]:
    """One multiplicative update (Lee and Seung) of coefficients then bases for ``x ~ bases @ coef^T``.

    With non-negative ``x``, ``bases`` and ``coef`` the factors stay non-negative and the squared reconstruction
    error does not increase.

    Parameters
    ----------
    x
        Non-negative data, ``[batch, dim, pixels]``.
    bases
        Non-negative bases, ``[batch, dim, rank]``.
    coef
        Non-negative coefficients, ``[batch, pixels, rank]``.

    Returns
    -------
    tuple of Tensor
        The updated ``bases`` and ``coef``.

    Examples
    --------
    >>> x = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]])
    >>> bases, coef = nmf_step(x, torch.ones(1, 2, 1), torch.ones(1, 2, 1))
    >>> torch.dist(bases @ coef.transpose(1, 2), x) < torch.dist(torch.ones(2, 2), x)
    tensor(True)
    """
    coef = nmf_coef_step(x, bases, coef)
    bases = bases * (x @ coef) / (bases @ (coef.transpose(1, 2) @ coef) + NMF_EPS)
    return bases, coef


def nmf_coef_step(x: Tensor, bases: Tensor, coef: Tensor) -> Tensor:
    """The coefficients' half of ``nmf_step`` (bases fixed)."""
    return coef * (x.transpose(1, 2) @ bases) / (coef @ (bases.transpose(1, 2) @ bases) + NMF_EPS)


class NMF2D(nn.Module):
    """Low-rank non-negative reconstruction of a ``[B, C, H, W]`` map: ``C x HW ~ bases (C x R) @ coef^T``.

    Parameters
    ----------
    rank
        Number of bases ``R``.
    train_steps, eval_steps
        Multiplicative updates in training and in evaluation; only the final coefficient update gets gradients.
    """

    def __init__(self, rank: int = 64, *, train_steps: int = 6, eval_steps: int = 7) -> None:
        super().__init__()
        self.rank, self.train_steps, self.eval_steps = rank, train_steps, eval_steps

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        generator = None if self.training else torch.Generator(x.device).manual_seed(NMF_EVAL_SEED)
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.float().reshape(batch, channels, height * width)
            bases = torch.rand(batch, channels, self.rank, generator=generator, device=x.device)
            bases = F.normalize(bases, dim=1)
            with torch.no_grad():
                coef = torch.softmax(flat.transpose(1, 2) @ bases, dim=-1)
                for _ in range(self.train_steps if self.training else self.eval_steps):
                    bases, coef = nmf_step(flat, bases, coef)
            coef = nmf_coef_step(flat, bases, coef)
            return (bases @ coef.transpose(1, 2)).reshape(batch, channels, height, width)


def _conv_gn(in_channels: int, out_channels: int, groups: int, *, relu: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.GroupNorm(groups, out_channels)]
    return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)


class Hamburger(nn.Module):
    """``ReLU(x + GN(conv(NMF(ReLU(conv(x))))))``: matrix decomposition between two 1x1 "bread" layers."""

    def __init__(self, channels: int, *, groups: int = 32, rank: int = 64) -> None:
        super().__init__()
        self.ham_in = nn.Conv2d(channels, channels, 1)
        self.ham = NMF2D(rank)
        self.ham_out = _conv_gn(channels, channels, groups, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        enjoy = self.ham(F.relu(self.ham_in(x)))
        return F.relu(x + self.ham_out(enjoy))


class LightHamHead(nn.Module):
    """SegNeXt's decoder on the stride-8, 16 and 32 maps; returns stride-8 logits.

    Parameters
    ----------
    in_channels
        Channels of the three encoder maps, finest first.
    out_channels
        Logit channels.
    ham_channels, channels
        Widths of the Hamburger and of the aligned map (1024 and 1024 for SegNeXt-L).
    dropout
        Channel dropout before the classifier.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, *, ham_channels: int = 1024,
                 channels: int = 1024, groups: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.squeeze = _conv_gn(sum(in_channels), ham_channels, groups, relu=True)
        self.hamburger = Hamburger(ham_channels, groups=groups)
        self.align = _conv_gn(ham_channels, channels, groups, relu=True)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.conv_seg.weight, std=0.01)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        size = features[0].shape[-2:]
        maps = [f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                for f in features]
        x = self.align(self.hamburger(self.squeeze(torch.cat(maps, dim=1))))
        return self.conv_seg(self.dropout(x))


class SegNeXt(nn.Module):
    """MSCAN-L encoder + light Hamburger head on stages 2-4, logits upsampled to the input size."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.backbone = MSCAN()
        self.decode_head = LightHamHead(self.backbone.channels[1:], out_channels)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.decode_head(self.backbone(x)[1:])
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register("segnext-l", family="general", parameters_m=49, paper=PAPER, amp=False)
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """SegNeXt-L with ``out_channels`` logits; the encoder starts from ImageNet-1k MSCAN-L when ``pretrained``."""
    model = SegNeXt(out_channels)
    if pretrained:
        load_imagenet(model)
    return model


# mmsegmentation's MSCAN (mmseg/models/backbones/mscan.py) names -> ours. Its stage i (1-based) holds
# patch_embed{i} (StemConv: proj = conv, BN, GELU, conv, BN; then OverlapPatchEmbed: proj conv and norm BN),
# block{i}.{j} (MSCABlock) and norm{i} (LayerNorm); MSCAAttention's strip pairs are conv{k}_1 / conv{k}_2.
_MMSEG_RENAMES = [
    (r"^module\.", ""),  # a DataParallel prefix, which mmengine's loader strips too
    (r"^patch_embed1\.proj\.", "backbone.patch_embeds.0."),
    *[(rf"^patch_embed{i + 1}\.proj\.", f"backbone.patch_embeds.{i}.0.") for i in (1, 2, 3)],
    *[(rf"^patch_embed{i + 1}\.norm\.", f"backbone.patch_embeds.{i}.1.") for i in (1, 2, 3)],
    *[(rf"^block{i + 1}\.", f"backbone.blocks.{i}.") for i in range(4)],
    *[(rf"^norm{i + 1}\.", f"backbone.norms.{i}.") for i in range(4)],
    (r"\.spatial_gating_unit\.conv(\d)_1\.", r".spatial_gating_unit.strips.\1.0."),
    (r"\.spatial_gating_unit\.conv(\d)_2\.", r".spatial_gating_unit.strips.\1.1."),
]
# The ImageNet classifier (a linear layer on the pooled stage-4 map) has no counterpart here.
_CLASSIFIER = r"^head\."
# The decoder is new. BatchNorm's step counters are only read with momentum=None (not used here), and mmengine's
# loader tolerates checkpoints without them, so a release lacking them still loads.
_FRESH = r"^decode_head\.|\.num_batches_tracked$"


def _layer_scales_as_maps(state: dict[str, Tensor]) -> dict[str, Tensor]:
    # mmsegmentation keeps layer scales as [C] and unsqueezes them in the forward pass; ours are [C, 1, 1].
    return {key: value.reshape(-1, 1, 1) if re.search(r"\.layer_scale_[12]$", key) else value
            for key, value in state.items()}


def load_imagenet(model: SegNeXt, source: str = IMAGENET_WEIGHTS) -> None:
    """Load ImageNet-1k MSCAN-L weights in mmsegmentation's layout into ``model``'s encoder.

    Parameters
    ----------
    model
        A SegNeXt-L; its decoder keeps its initialisation.
    source
        The checkpoint: an ``http(s)`` URL (cached by torch.hub, its ``-<sha256 prefix>`` checked), a local file,
        or a folder or Hub repo holding ``mscan_l.pth``. A ``state_dict`` wrapper and a ``module.`` prefix are
        removed.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had, and
    ``RuntimeError`` where the checkpoint holds other tensors than MSCAN-L's (and its classifier) or lacks some.
    """
    state = load_checkpoint(source, "segnext-l", "mscan_l.pth")
    load_renamed(model, state, _MMSEG_RENAMES, merge=_layer_scales_as_maps, drop=_CLASSIFIER, fresh=_FRESH)
