"""InternImage-T with a UPerHead ("internimage-t-upernet"), DCNv3 written in pure torch.

References
----------
W. Wang, J. Dai, Z. Chen, Z. Huang, Z. Li, X. Zhu, X. Hu, T. Lu, L. Lu, H. Li, X. Wang, Y. Qiao, "InternImage:
Exploring Large-Scale Vision Foundation Models with Deformable Convolutions", CVPR 2023, arXiv:2211.05778.
Decoder: T. Xiao et al., "Unified Perceptual Parsing for Scene Understanding", ECCV 2018 (see :mod:`.uperhead`).

Configuration is the T variant of the paper's segmentation setting: stem of two stride-2 3x3 convolutions,
4 stages of widths (64, 128, 256, 512), depths (4, 4, 18, 4) and DCNv3 groups (4, 8, 16, 32), MLP ratio 4,
pre-norm blocks with layer scale (initial value 1.0, post-norm off), offset scale 1.0, stochastic depth rising
linearly to 0.2, stride-2 3x3 convolutions between stages; the four stage outputs (after each stage's final
LayerNorm) feed the UPerHead (512 channels, pool scales 1, 2, 3, 6).

Notes
-----
Departures from the official code:

* DCNv3 is the grid-sample formulation (:func:`dcnv3`) instead of the CUDA kernel; it computes the same sums, but
  ``grid_sample``'s backward is not deterministic on CUDA.
* The deformable sampling runs in float32 under autocast; the official CUDA op runs in the autocast dtype.
* No SyncBN in the head and no auxiliary FCN head (see :mod:`.uperhead`).

Pretrained weights
------------------
``pretrained=True`` loads the official ImageNet-1k InternImage-T (224x224), the file ``internimage_t_1k_224.pth``
of the Hugging Face repo ``OpenGVLab/InternImage`` (weights under ``"model"``; the file the official UPerNet
config ``segmentation/configs/ade20k/upernet_internimage_t_512_160k_ade20k.py`` starts from), onto the backbone.
Every tensor of the stem, the 30 blocks, the stage norms and the downsampling layers maps one to one, by renaming
only (same shapes and layouts; the official ``nn.Sequential`` wrappers around LayerNorms and the depthwise
convolution add the ``.0`` / ``.1`` indices we strip): ``patch_embed.conv{k}`` / ``.norm{k}.1`` ->
``stem_conv{k}`` / ``stem_norm{k}``, ``levels.{i}.blocks.{j}`` -> ``stages.{i}.{j}`` (``dcn.dw_conv.0`` / ``.1.1``
-> ``dcn.dw_conv`` / ``dcn.dw_norm``, ``mlp.fc1`` / ``fc2`` -> ``mlp.0`` / ``mlp.2``), ``levels.{i}.norm.0`` ->
``norms.{i}``, ``levels.{i}.downsample.conv`` / ``.norm.1`` -> ``downsamples.{i}.conv`` / ``.norm``. Dropped: the
classification head (``conv_head``: 1x1 convolution 512 -> 768 + BatchNorm; ``head``: the 1000-class linear).
Fresh: the UPerHead, and the layer-scale vectors ``gamma1`` / ``gamma2`` of every block. The classification model
was trained without layer scale (its config leaves ``LAYER_SCALE`` at None, so the file has no ``gamma``), while
the segmentation config sets ``layer_scale=1.0``; the official backbone loads the file with ``strict=False`` and
its gammas start at 1.0, as ours do, so the loaded backbone computes what the classification network's trunk
computed. The other T flags match the official config: post-norm, residual post-norm, center feature scale and
level-2 post-norm off, depthwise kernel 3 (``dw_kernel_size`` None), offset scale 1.0, MLP ratio 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mit import drop_path
from .registry import register
from .uperhead import UPerNet
from .weights import load_checkpoint, load_renamed

#: The official ImageNet-1k InternImage-T (224x224): Hugging Face repo and the file in it.
IMAGENET_WEIGHTS = "OpenGVLab/InternImage"
IMAGENET_FILE = "internimage_t_1k_224.pth"

CHANNELS = (64, 128, 256, 512)
DEPTHS = (4, 4, 18, 4)
GROUPS = (4, 8, 16, 32)
DROP_PATH_RATE = 0.2


def dcnv3(value: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, *, groups: int, kernel_size: int = 3,
          offset_scale: float = 1.0) -> torch.Tensor:
    """Deformable convolution v3 aggregation, by bilinear sampling with ``grid_sample``.

    For every pixel ``(y, x)``, group ``g`` and kernel point ``k`` with tap ``(dx_k, dy_k)`` in
    ``{-r..r}^2`` (``r = kernel_size // 2``), the value of group ``g`` is sampled bilinearly at
    ``(x + s (dx_k + offset_x), y + s (dy_k + offset_y))`` (``s = offset_scale``, zeros outside the image) and
    the samples are summed with weights ``mask[..., g, k]``.

    Parameters
    ----------
    value
        ``[B, H, W, C]`` channels-last projected input; ``C`` is split into ``groups`` equal groups.
    offset
        ``[B, H, W, groups * K * K * 2]`` offsets in pixels, laid out (group, point, (x, y)).
    mask
        ``[B, H, W, groups * K * K]`` modulation weights, laid out (group, point); DCNv3 softmax-normalises
        them over the points of each group.
    groups, kernel_size, offset_scale
        Group count, kernel size (odd) and the scale applied to taps and offsets.

    Returns
    -------
    torch.Tensor
        ``[B, H, W, C]`` in ``value``'s dtype (computed in float32).

    Notes
    -----
    Points are ordered with the x tap outer and the y tap inner, as in the official implementation, so point
    ``K * K // 2`` is the centre.

    Examples
    --------
    >>> v = torch.arange(8.0).view(1, 2, 2, 2)
    >>> centre = torch.zeros(1, 2, 2, 9)
    >>> centre[..., 4] = 1.0
    >>> torch.equal(dcnv3(v, torch.zeros(1, 2, 2, 18), centre, groups=1), v)
    True
    """
    b, h, w, c = value.shape
    points, dtype = kernel_size * kernel_size, value.dtype
    with torch.autocast(device_type=value.device.type, enabled=False):
        value, offset, mask = value.float(), offset.float(), mask.float()
        taps = torch.arange(kernel_size, device=value.device, dtype=torch.float32) - kernel_size // 2
        tap_x, tap_y = torch.meshgrid(taps, taps, indexing="ij")
        taps = torch.stack([tap_x.flatten(), tap_y.flatten()], dim=-1)
        rows, cols = torch.meshgrid(torch.arange(h, device=value.device, dtype=torch.float32),
                                    torch.arange(w, device=value.device, dtype=torch.float32), indexing="ij")
        centres = torch.stack([cols, rows], dim=-1).view(1, h, w, 1, 1, 2)
        location = centres + offset_scale * (taps + offset.view(b, h, w, groups, points, 2))
        # Pixel i covers [i, i + 1) in grid_sample's align_corners=False convention, hence the half-pixel shift.
        extent = torch.tensor([w, h], device=value.device, dtype=torch.float32)
        grid = (2.0 * (location + 0.5) / extent - 1.0).permute(0, 3, 1, 2, 4, 5).reshape(b * groups, h * w, points, 2)
        per_group = value.view(b, h * w, groups, c // groups).permute(0, 2, 3, 1).reshape(b * groups, c // groups, h, w)
        sampled = F.grid_sample(per_group, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        weights = mask.view(b, h * w, groups, points).transpose(1, 2).reshape(b * groups, 1, h * w, points)
        out = (sampled * weights).sum(-1)
        return out.view(b, groups, c // groups, h, w).permute(0, 3, 4, 1, 2).reshape(b, h, w, c).to(dtype)


class DCNv3(nn.Module):
    """The DCNv3 operator of InternImage on channels-last input ``[B, H, W, C]``.

    Offsets and modulation weights come from a depthwise 3x3 convolution + LayerNorm + GELU of the input; the
    modulation is softmax-normalised over the kernel points of each group.
    """

    def __init__(self, channels: int, groups: int, *, kernel_size: int = 3, offset_scale: float = 1.0) -> None:
        super().__init__()
        self.groups, self.kernel_size, self.offset_scale = groups, kernel_size, offset_scale
        self.dw_conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.dw_norm = nn.LayerNorm(channels, eps=1e-6)
        self.offset = nn.Linear(channels, groups * kernel_size ** 2 * 2)
        self.mask = nn.Linear(channels, groups * kernel_size ** 2)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)

    def reset_parameters(self) -> None:
        """The paper's init: zero offsets and uniform modulation, so DCNv3 starts as a 3x3 box filter."""
        for layer in (self.offset, self.mask):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        query = F.gelu(self.dw_norm(self.dw_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)))
        mask = self.mask(query).float().view(b, h, w, self.groups, -1).softmax(-1).flatten(3)
        out = dcnv3(self.input_proj(x), self.offset(query), mask, groups=self.groups,
                    kernel_size=self.kernel_size, offset_scale=self.offset_scale)
        return self.output_proj(out)


class InternImageLayer(nn.Module):
    """Pre-norm block with layer scale: ``x + g1 * DCNv3(LN(x))``, then ``x + g2 * MLP(LN(x))`` (channels-last)."""

    def __init__(self, channels: int, groups: int, *, drop_path: float, layer_scale: float = 1.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels, eps=1e-6)
        self.dcn = DCNv3(channels, groups)
        self.norm2 = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))
        self.gamma1 = nn.Parameter(torch.full((channels,), layer_scale))
        self.gamma2 = nn.Parameter(torch.full((channels,), layer_scale))
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.gamma1 * self.dcn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.gamma2 * self.mlp(self.norm2(x)), self.drop_path, self.training)


class InternImage(nn.Module):
    """InternImage backbone returning the four stage outputs ``[B, C_i, H / 2^(i+2), W / 2^(i+2)]``."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS, depths: tuple[int, ...] = DEPTHS,
                 groups: tuple[int, ...] = GROUPS, *, drop_path_rate: float = DROP_PATH_RATE) -> None:
        super().__init__()
        first = channels[0]
        self.stem_conv1 = nn.Conv2d(3, first // 2, 3, stride=2, padding=1)
        self.stem_norm1 = nn.LayerNorm(first // 2, eps=1e-6)
        self.stem_conv2 = nn.Conv2d(first // 2, first, 3, stride=2, padding=1)
        self.stem_norm2 = nn.LayerNorm(first, eps=1e-6)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for i, (c, depth, g) in enumerate(zip(channels, depths, groups)):
            start = sum(depths[:i])
            self.stages.append(nn.Sequential(*(InternImageLayer(c, g, drop_path=rates[start + j])
                                               for j in range(depth))))
            self.norms.append(nn.LayerNorm(c, eps=1e-6))
            if i + 1 < len(channels):
                self.downsamples.append(nn.ModuleDict({
                    "conv": nn.Conv2d(c, channels[i + 1], 3, stride=2, padding=1, bias=False),
                    "norm": nn.LayerNorm(channels[i + 1], eps=1e-6)}))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, DCNv3):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.gelu(self.stem_norm1(self.stem_conv1(x).permute(0, 2, 3, 1)))
        x = self.stem_norm2(self.stem_conv2(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))
        features = []
        for i, (stage, norm) in enumerate(zip(self.stages, self.norms)):
            x = norm(stage(x))
            features.append(x.permute(0, 3, 1, 2).contiguous())
            if i < len(self.downsamples):
                down = self.downsamples[i]
                x = down["norm"](down["conv"](features[-1]).permute(0, 2, 3, 1))
        return features


@register("internimage-t-upernet", family="general", parameters_m=58,
          paper="W. Wang et al., InternImage: Exploring Large-Scale Vision Foundation Models with Deformable "
                "Convolutions, CVPR 2023, arXiv:2211.05778 (UPerNet head: T. Xiao et al., ECCV 2018)")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """InternImage-T + UPerHead with ``out_channels`` logit channels, the backbone ImageNet-initialised when
    ``pretrained``; see the module docstring."""
    model = UPerNet(InternImage(), CHANNELS, out_channels)
    if pretrained:
        load_imagenet(model)
    return model


# Official names (classification/models/intern_image.py, ops_dcnv3/modules/dcnv3.py) -> ours. Upstream wraps each
# LayerNorm in an nn.Sequential with its channel permutes (index 1 after a to_channels_last, else 0) and the DCNv3
# offset/mask branch in Sequential(depthwise conv, Sequential(permute, LayerNorm), GELU).
_RENAMES = [
    (r"^patch_embed\.conv([12])\.", r"backbone.stem_conv\1."),
    (r"^patch_embed\.norm([12])\.1\.", r"backbone.stem_norm\1."),
    (r"^levels\.(\d)\.blocks\.(\d+)\.", r"backbone.stages.\1.\2."),
    (r"^(backbone\.stages\.\d\.\d+)\.norm([12])\.0\.", r"\1.norm\2."),
    (r"\.dcn\.dw_conv\.0\.", ".dcn.dw_conv."), (r"\.dcn\.dw_conv\.1\.1\.", ".dcn.dw_norm."),
    (r"\.mlp\.fc1\.", ".mlp.0."), (r"\.mlp\.fc2\.", ".mlp.2."),
    (r"^levels\.(\d)\.norm\.0\.", r"backbone.norms.\1."),
    (r"^levels\.(\d)\.downsample\.conv\.", r"backbone.downsamples.\1.conv."),
    (r"^levels\.(\d)\.downsample\.norm\.1\.", r"backbone.downsamples.\1.norm."),
]
# The classification head: conv_head (1x1 conv + BatchNorm, running statistics included) and the linear head.
_CLASSIFIER = r"^(conv_head|head)\."
# The decoder, and the layer scales the classification model was trained without (see the module docstring).
_FRESH = r"^decode_head\.|^backbone\.stages\.\d\.\d+\.gamma[12]$"


def load_imagenet(model: UPerNet, source: str = IMAGENET_WEIGHTS) -> None:
    """Load the official ImageNet-1k InternImage-T into ``model``'s backbone (see the module docstring).

    Parameters
    ----------
    model
        An ``internimage-t-upernet``; its decode head and layer scales keep their initialisation.
    source
        Hub repo id, local folder holding :data:`IMAGENET_FILE`, the file itself, or a URL.

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had, and
    ``RuntimeError`` where they do not fit (another InternImage size).
    """
    state = load_checkpoint(source, "internimage-t-upernet", IMAGENET_FILE)
    load_renamed(model, state, _RENAMES, drop=_CLASSIFIER, fresh=_FRESH)
