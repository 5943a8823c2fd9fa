"""HiFormer-B: a ResNet-50 and a Swin Transformer pyramid joined by a Double-Level Fusion (DLF) module.

Reference
---------
M. Heidari, A. Kazerouni, M. Soltany, R. Azad, E. K. Aghdam, J. Cohen-Adad, D. Merhof, "HiFormer:
Hierarchical Multi-scale Representations Using Transformers for Medical Image Segmentation", WACV 2023,
arXiv:2207.08518.

Layout of the B variant, as in the paper and its code:

* CNN branch: the ResNet-50 stem and stages 1-3 (256, 512, 1024 channels at strides 4, 8, 16).
* Transformer branch: Swin-T stages 1-3 (widths 96, 192, 384; depths 2, 2, 6; heads 3, 6, 12; window 7,
  every second block shifted by 3; stochastic depth rising to 0.1). Its input at each level is the CNN
  stage projected by a 1x1 conv to the Swin width, added to the patch-merged output of the Swin level above;
  the first level adds its CNN tokens around the whole Swin stage as well.
* DLF: the finest (H/4, 96 wide) and the coarsest (H/16, 384 wide) levels each get a CLS token (global average
  of the LayerNormed tokens) and a learnt position embedding, and pass through a transformer encoder of their
  own (1 block of 6 heads, 2 blocks of 12 heads; MLP ratio 2), then LayerNorm.
* Decoder: the coarse map goes through two (3x3 conv, GroupNorm, ReLU, bilinear x2) steps, the fine map
  through one 3x3 conv-GroupNorm-ReLU, both to 128 channels; their sum goes through a 1x1 conv to 16
  channels, ReLU, bilinear x4 and a 3x3 conv to the logits.

Input size
----------
Like the study's predecessor code, the network runs at 224x224: any input is resized bilinearly to 224x224 and
the logits are resized bilinearly back to the input's size. The position embeddings are sized for 224 and Swin's
window of 7 needs maps whose sides are multiples of 7 (56, 28, 14 at 224; a 512 input would give 128, 64, 32).
Running natively at 512 would need padded windows and interpolated position embeddings, i.e. a different model
from the one the study trained; ``internal_size`` (a multiple of 112) can change the working size.

Departures from the paper's code
--------------------------------
* No CrossViT-style cross-attention between the two CLS tokens after the level encoders. In the authors' code
  (``models/HiFormer.py``: ``embeddings = [x[:, 1:] for x in xs]``) the decoder drops both CLS tokens right
  after that exchange, so it cannot change the logits: its 0.8 M parameters never get a gradient (which also
  breaks DistributedDataParallel without ``find_unused_parameters``). Leaving it out gives the same function
  with 24.7 M parameters at one output; the paper's 25.5 M and the study's 26 M include it.
* Attention runs in fp32 under autocast (``scaled_dot_product_attention``, Swin's relative position bias and
  shift mask as an additive mask; the mask is -inf where the authors add -100).

Pretrained weights
------------------
HiFormer starts from ImageNet weights: Swin-T stages 1-3 and the first two patch mergings, and the ResNet-50
stem and stages 1-3. ``pretrained=True`` loads them through transformers from the Hugging Face Hub:
``microsoft/swin-tiny-patch4-window7-224`` is the authors' ``swin_tiny_patch4_window7_224.pth`` converted,
as HiFormer uses. ``microsoft/resnet-50`` is a ResNet-50 v1.5 (stride in the 3x3 convolution, like ours and
torchvision's) trained on ImageNet-1k by timm's recipe, where the paper's code takes torchvision's
``ResNet50_Weights.IMAGENET1K_V1``: same architecture, other weights (torchvision does not install beside
every torch build, and transformers hosts no copy of those). The level projections, the DLF and the decoder
start from scratch, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .mit import drop_path
from .registry import register
from .weights import load_renamed, transformers_state_dict

#: ImageNet weights of the two branches (Hub repos, through transformers).
SWIN_WEIGHTS = "microsoft/swin-tiny-patch4-window7-224"
RESNET_WEIGHTS = "microsoft/resnet-50"

#: Swin stages 1-3 of Swin-T: widths, depths, heads.
SWIN_DIMS = (96, 192, 384)
SWIN_DEPTHS = (2, 2, 6)
SWIN_HEADS = (3, 6, 12)
WINDOW = 7
#: DLF level encoders (fine, coarse): blocks and heads.
DLF_DEPTHS = (1, 2)
DLF_HEADS = (6, 12)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    with torch.autocast(device_type=q.device.type, enabled=False):
        out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(),
                                             attn_mask=None if bias is None else bias.float())
    return out.to(q.dtype)



def _mlp(dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class _Bottleneck(nn.Module):
    """ResNet-50 bottleneck (1x1, strided 3x3, 1x1 with 4x expansion), projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        out = 4 * width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True), nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
        self.shortcut = (nn.Sequential(nn.Conv2d(in_channels, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or in_channels != out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


def _resnet_stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_Bottleneck(in_channels, width, stride),
                         *(_Bottleneck(4 * width, width, 1) for _ in range(blocks - 1)))


class _WindowBlock(nn.Module):
    """Swin block on an ``size x size`` token grid: (shifted) window attention with relative position bias, MLP."""

    def __init__(self, dim: int, heads: int, size: int, shift: int, drop_path: float) -> None:
        super().__init__()
        self.heads, self.size, self.shift, self.drop_path = heads, size, shift, drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, 4 * dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * WINDOW - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(WINDOW), torch.arange(WINDOW), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]) + (WINDOW - 1)
        self.register_buffer("bias_index", rel[0] * (2 * WINDOW - 1) + rel[1], persistent=False)
        self.register_buffer("shift_mask", self._shift_mask(size, shift), persistent=False)

    @staticmethod
    def _shift_mask(size: int, shift: int) -> torch.Tensor:
        """``[windows, W*W, W*W]`` additive mask: -inf between tokens that the cyclic shift made neighbours."""
        if shift == 0:
            return torch.zeros(1, 1, 1)
        region = torch.zeros(size, size)
        cuts = (slice(0, -WINDOW), slice(-WINDOW, -shift), slice(-shift, None))
        for i, rows in enumerate(cuts):
            for j, cols in enumerate(cuts):
                region[rows, cols] = 3 * i + j
        windows = _partition(region[None, :, :, None]).flatten(1)
        apart = windows[:, :, None] != windows[:, None, :]
        return torch.zeros(apart.shape).masked_fill(apart, float("-inf"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        y = self.norm1(x).reshape(b, self.size, self.size, c)
        if self.shift:
            y = torch.roll(y, (-self.shift, -self.shift), dims=(1, 2))
        windows = _partition(y).reshape(-1, WINDOW * WINDOW, c)
        q, k, v = self.qkv(windows).reshape(windows.shape[0], -1, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # [windows or 1, heads, W*W, W*W]: relative position bias plus the shift mask; the windows are batch-major.
        bias = self.bias_table[self.bias_index].permute(2, 0, 1)[None] + self.shift_mask[:, None]
        if bias.shape[0] > 1:
            bias = bias.repeat(b, 1, 1, 1)
        y = self.proj(_attention(q, k, v, bias).transpose(1, 2).reshape(-1, WINDOW, WINDOW, c))
        y = _merge(y, self.size)
        if self.shift:
            y = torch.roll(y, (self.shift, self.shift), dims=(1, 2))
        x = x + drop_path(y.reshape(b, n, c), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


def _partition(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W, C]`` to ``[B * windows, WINDOW, WINDOW, C]``, windows in row-major order."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // WINDOW, WINDOW, w // WINDOW, WINDOW, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, WINDOW, WINDOW, c)


def _merge(windows: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of :func:`_partition` for a ``size x size`` grid."""
    n = size // WINDOW
    x = windows.reshape(-1, n, n, WINDOW, WINDOW, windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, size, size, windows.shape[-1])


class _PatchMerging(nn.Module):
    """Swin's 2x2 patch merging: concatenate the four neighbours, LayerNorm, linear to twice the width."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, size: int) -> torch.Tensor:
        x = x.reshape(x.shape[0], size, size, -1)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.flatten(1, 2)))


class _EncoderBlock(nn.Module):
    """Pre-norm ViT block (multi-head self-attention, MLP) of a DLF level encoder."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(_attention(q, k, v).transpose(1, 2).reshape(b, n, c))
        return x + self.mlp(self.norm2(x))


def _conv_gn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.GroupNorm(32, out_channels),
            nn.ReLU(inplace=True)]


def _upsample(factor: int) -> nn.Upsample:
    return nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False)


class HiFormer(nn.Module):
    """HiFormer-B working at ``internal_size`` x ``internal_size``.

    Parameters
    ----------
    out_channels
        Logit channels.
    internal_size
        Side the input is resized to (a multiple of 112, so that Swin's windows tile every level).

    Examples
    --------
    >>> HiFormer(2)(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 2, 64, 64])
    """

    def __init__(self, out_channels: int, internal_size: int = 224) -> None:
        super().__init__()
        if internal_size % (16 * WINDOW):
            raise ValueError(f"internal_size must be a multiple of {16 * WINDOW}, got {internal_size}.")
        self.internal_size = internal_size
        self.sizes = tuple(internal_size // s for s in (4, 8, 16))
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, stride=2, padding=1))
        self.cnn = nn.ModuleList([_resnet_stage(64, 64, 3, 1), _resnet_stage(256, 128, 4, 2),
                                  _resnet_stage(512, 256, 6, 2)])
        self.to_swin = nn.ModuleList(nn.Conv2d(4 * w, d, 1) for w, d in zip((64, 128, 256), SWIN_DIMS))
        rates = iter(torch.linspace(0, 0.1, sum(SWIN_DEPTHS)).tolist())  # stochastic depth, block by block
        self.swin = nn.ModuleList(
            nn.Sequential(*(_WindowBlock(dim, heads, size, WINDOW // 2 if i % 2 else 0, next(rates))
                            for i in range(depth)))
            for dim, depth, heads, size in zip(SWIN_DIMS, SWIN_DEPTHS, SWIN_HEADS, self.sizes))
        self.merge = nn.ModuleList(_PatchMerging(d) for d in SWIN_DIMS[:2])
        levels = (SWIN_DIMS[0], SWIN_DIMS[2])
        self.cls_norm = nn.ModuleList(nn.LayerNorm(d) for d in levels)
        self.pos_embed = nn.ParameterList(nn.Parameter(torch.zeros(1, 1 + s * s, d))
                                          for s, d in zip((self.sizes[0], self.sizes[2]), levels))
        self.level_encoders = nn.ModuleList(nn.Sequential(*(_EncoderBlock(d, h) for _ in range(depth)))
                                            for d, h, depth in zip(levels, DLF_HEADS, DLF_DEPTHS))
        self.level_norm = nn.ModuleList(nn.LayerNorm(d) for d in levels)
        self.up_fine = nn.Sequential(*_conv_gn_relu(levels[0], 128))
        self.up_coarse = nn.Sequential(*_conv_gn_relu(levels[1], 128), _upsample(2), *_conv_gn_relu(128, 128),
                                       _upsample(2))
        self.predict = nn.Sequential(nn.Conv2d(128, 16, 1), nn.ReLU(inplace=True), _upsample(4),
                                     nn.Conv2d(16, out_channels, 3, padding=1))
        self._init_weights()

    def _init_weights(self) -> None:
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d) and name.startswith(("stem", "cnn")):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for p in self.pos_embed:
            nn.init.trunc_normal_(p, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, out_channels, H, W]`` for images ``[B, 3, H, W]`` of any size."""
        size = x.shape[-2:]
        s = self.internal_size
        if tuple(size) != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        c = self.stem(x)
        tokens = []
        for i, (stage, proj, swin) in enumerate(zip(self.cnn, self.to_swin, self.swin)):
            c = stage(c)
            t = proj(c).flatten(2).transpose(1, 2)
            t = t + swin(t) if i == 0 else t + swin(self.merge[i - 1](tokens[-1], self.sizes[i - 1]))
            tokens.append(t)
        maps = []
        for j, level in enumerate((0, 2)):  # the DLF's fine and coarse levels
            t, side = tokens[level], self.sizes[level]
            cls = self.cls_norm[j](t).mean(dim=1, keepdim=True)
            t = self.level_encoders[j](torch.cat([cls, t], dim=1) + self.pos_embed[j])
            t = self.level_norm[j](t)[:, 1:]  # the decoder sees the patch tokens only, as in the authors' code
            maps.append(t.transpose(1, 2).reshape(t.shape[0], -1, side, side))
        y = self.predict(self.up_fine(maps[0]) + self.up_coarse(maps[1]))
        if tuple(size) != (s, s):
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


@register("hiformer-b", family="specialized", parameters_m=26,
          paper="Heidari, Kazerouni, Soltany, Azad, Aghdam, Cohen-Adad, Merhof, HiFormer: Hierarchical Multi-scale "
                "Representations Using Transformers for Medical Image Segmentation, WACV 2023, arXiv:2207.08518")
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """HiFormer-B with ``out_channels`` logits, working at 224x224; both branches ImageNet-initialised when ``pretrained``."""
    model = HiFormer(out_channels)
    if pretrained:
        load_imagenet(model)
    return model


# transformers' ResNetModel and SwinModel names -> ours (after the "resnet." / "swin." prefixes load_imagenet adds).
_RENAMES = [
    (r"^resnet\.embedder\.embedder\.convolution", "stem.0"), (r"^resnet\.embedder\.embedder\.normalization", "stem.1"),
    (r"^resnet\.encoder\.stages\.(\d)\.layers\.(\d+)\.", r"cnn.\1.\2."),
    (r"\.layer\.0\.convolution", ".body.0"), (r"\.layer\.0\.normalization", ".body.1"),
    (r"\.layer\.1\.convolution", ".body.3"), (r"\.layer\.1\.normalization", ".body.4"),
    (r"\.layer\.2\.convolution", ".body.6"), (r"\.layer\.2\.normalization", ".body.7"),
    (r"\.shortcut\.convolution", ".shortcut.0"), (r"\.shortcut\.normalization", ".shortcut.1"),
    (r"^swin\.encoder\.layers\.(\d)\.blocks\.(\d+)\.", r"swin.\1.\2."),
    (r"^swin\.encoder\.layers\.(\d)\.downsample\.", r"merge.\1."),
    (r"layernorm_before", "norm1"), (r"layernorm_after", "norm2"), (r"attention\.o_proj", "proj"),
    (r"attention\.relative_position_bias\.relative_position_bias_table", "bias_table"),
    (r"mlp\.fc1", "mlp.0"), (r"mlp\.fc2", "mlp.2"),
]
# Unused by HiFormer: ResNet's stage 4, Swin's patch embedding, stage 4, last merging and final norm.
_UNUSED = r"^(cnn\.3\.|swin\.3\.|merge\.2\.|swin\.(embeddings|layernorm|pooler))"
_FRESH = r"^(to_swin|cls_norm|pos_embed|level_encoders|level_norm|up_fine|up_coarse|predict)\."


def load_imagenet(model: HiFormer, swin: str = SWIN_WEIGHTS, resnet: str = RESNET_WEIGHTS) -> None:
    """Load Swin-T and ResNet-50 ImageNet weights into ``model``'s two branches (Hub repo ids or local folders).

    Raises :class:`~medseg_eval.train.zoo.PretrainedUnavailableError` where the weights cannot be had,
    and torch's error where they do not fit (another Swin or ResNet size).
    """
    def fuse_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for key in [k for k in state if ".attention.q_proj." in k]:
            parts = [state.pop(key.replace("q_proj", p)) for p in ("q_proj", "k_proj", "v_proj")]
            state[key.replace("attention.q_proj", "qkv")] = torch.cat(parts)
        return state

    state = {f"resnet.{k}": v for k, v in transformers_state_dict("ResNetModel", resnet, "hiformer-b").items()}
    state |= {f"swin.{k}": v for k, v in transformers_state_dict("SwinModel", swin, "hiformer-b").items()}
    load_renamed(model, state, _RENAMES, merge=fuse_qkv, drop=_UNUSED, fresh=_FRESH)
