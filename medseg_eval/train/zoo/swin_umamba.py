"""Swin-UMamba: an ImageNet-initialisable VMamba-Tiny encoder in a five-stage U-Net.

Liu, Yang, Chen, Wang, Zhang, Li, Yu, "Swin-UMamba: Mamba-based UNet with ImageNet-based pretraining", MICCAI 2024,
arXiv:2402.03302 (code: github.com/JiarunLiu/Swin-UMamba). The encoder has five stages: a stem (7x7 convolution,
stride 2, to 48 channels, instance norm) and the four stages of VMamba-Tiny (patch embedding, here of stride 2 on the
stem's map, widths 96/192/384/768, depths 2/2/9/2, patch merging between stages). A VMamba VSS block is
``x + SS2D(LayerNorm(x))``; SS2D projects to twice the width (a value and a gate branch), applies a 3x3 depthwise
convolution and SiLU to the value, flattens the map in four orders (rows, columns, and both reversed), runs a
selective state-space scan along each with its own input-dependent step ``Delta`` and matrices ``B``, ``C``, merges
the four outputs back into the map, normalises, multiplies by the SiLU-gated branch and projects back. The decoder
follows the paper's UNETR-style design: each of the five skip maps (the input, the stem's map and the four stage
outputs) passes a residual block, the deepest stage is upsampled by transposed convolutions and fused with the
skips level by level up to full resolution, where a residual block and a 1x1 classifier give the logits.

The selective scan ``h_t = exp(Delta_t A) h_{t-1} + Delta_t B_t x_t``, ``y_t = C_t h_t + D x_t`` is written twice in
pure torch: ``selective_scan_sequential`` (one step per token, the reference) and ``selective_scan_chunked`` (a
parallel scan inside chunks over cumulative sums of the log-decays, the state carried between chunks), which the
model uses. Where ``mamba_ssm`` is installed and the tensors are on CUDA, its fused ``selective_scan_fn`` replaces it.

Departures from the paper
-------------------------
* The scan is pure torch unless ``mamba_ssm`` is importable (the paper needs its CUDA kernel). It runs in fp32 even
  under autocast, as the kernel does; in training each chunk is recomputed in the backward pass (activation
  checkpointing), because keeping every chunk's intermediate states would cost ``log2(chunk_size)`` copies of the
  ``batch x channels x state x length`` state tensor per scan. The pure-torch scan is the portable path, not the
  fast one: at 512x512 it makes this model far slower than with ``mamba_ssm``.
* Parameter names follow VMamba's (``layers.i.blocks.j.self_attention.x_proj_weight`` ...) except that patch merging
  lives in ``encoder.downsamples``, as in the paper's code, so a VMamba checkpoint needs only that rename.
* ``pretrained=True`` raises ``PretrainedUnavailableError``: the ImageNet-1k VMamba-Tiny checkpoint
  (``vmamba_tiny_e292.pth``, ``IMAGENET_WEIGHTS``) is shared through a Google Drive link and loading it is not wired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .mit import DropPath
from .registry import PretrainedUnavailableError, register

try:
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn as _mamba_selective_scan
except ImportError:
    _mamba_selective_scan = None

PAPER = ("Liu, Yang, Chen, Wang, Zhang, Li, Yu: Swin-UMamba: Mamba-based UNet with ImageNet-based pretraining, "
         "MICCAI 2024, arXiv:2402.03302")

#: ImageNet-1k VMamba-Tiny weights used by the paper; not loaded by this package yet.
IMAGENET_WEIGHTS = ("vmamba_tiny_e292.pth (VMamba-Tiny, ImageNet-1k), linked from the README of "
                    "https://github.com/JiarunLiu/Swin-UMamba (Google Drive)")


def selective_scan_sequential(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """Selective state-space scan, one token at a time (the reference for ``selective_scan_chunked``).

    ``h_t = exp(delta_t * A) * h_{t-1} + delta_t * B_t * u_t`` and ``y_t = <C_t, h_t> + D * u_t`` per channel, from
    ``h_0 = 0``.

    Parameters
    ----------
    u, delta
        Inputs and (positive) steps, ``[batch, channels, length]``.
    A
        State matrix diagonals, ``[channels, state]`` (negative for a decaying state).
    B, C
        Input-dependent input and output matrices, ``[batch, groups, state, length]``; ``channels`` is a multiple of
        ``groups`` and each group of consecutive channels shares one ``B``, ``C``.
    D
        Skip weights, ``[channels]``.

    Returns
    -------
    Tensor
        ``y``, ``[batch, channels, length]``.

    Examples
    --------
    >>> u, delta = torch.ones(1, 1, 3), torch.full((1, 1, 3), math.log(2.0))
    >>> A, B, C, D = -torch.ones(1, 1), torch.ones(1, 1, 1, 3), torch.ones(1, 1, 1, 3), torch.zeros(1)
    >>> selective_scan_sequential(u, delta, A, B, C, D) / math.log(2.0)
    tensor([[[1.0000, 1.5000, 1.7500]]])
    """
    batch, channels, length = u.shape
    groups, state = B.shape[1], B.shape[2]
    u_, delta_ = (t.reshape(batch, groups, channels // groups, length) for t in (u, delta))
    A_ = A.reshape(groups, channels // groups, state)
    h = u.new_zeros(batch, groups, channels // groups, state)
    ys = []
    for t in range(length):
        h = (torch.exp(delta_[..., t, None] * A_) * h
             + (delta_[..., t] * u_[..., t])[..., None] * B[:, :, None, :, t])
        ys.append((h * C[:, :, None, :, t]).sum(-1))
    return torch.stack(ys, -1).view(batch, channels, length) + D[:, None] * u


def _scan_chunk(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, h0: Tensor) -> tuple[Tensor, Tensor]:
    """Exact scan of one chunk from state ``h0``: ``u, delta [b, g, p, T]``, ``A [g, p, n]``, ``B, C [b, g, n, T]``,
    ``h0 [b, g, p, n]``; returns ``y [b, g, p, T]`` (without the ``D`` skip) and the state after the chunk."""
    log_decay = delta.unsqueeze(-1) * A[:, :, None]  # [b, g, p, t, n]
    h = (delta * u).unsqueeze(-1) * B.transpose(-1, -2)[:, :, None]
    # Doubling (Hillis-Steele) scan: after the step of width k, h[t] holds the decayed inputs of tokens t-2k+1 .. t
    # and log_decay[t] the sum of their log-decays, so each decay applied is one exp of a sum of non-positive terms
    # rather than a product of many factors.
    k = 1
    while k < u.shape[-1]:
        h = h + torch.exp(log_decay) * F.pad(h[..., :-k, :], (0, 0, k, 0))
        log_decay = log_decay + F.pad(log_decay[..., :-k, :], (0, 0, k, 0))
        k *= 2
    h = h + torch.exp(log_decay) * h0.unsqueeze(-2)
    return (h * C.transpose(-1, -2)[:, :, None]).sum(-1), h[..., -1, :]


def selective_scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, *,
                           chunk_size: int = 32) -> Tensor:
    """Selective state-space scan, ``chunk_size`` tokens at a time; equal to ``selective_scan_sequential``.

    Inside a chunk a doubling (Hillis-Steele) scan combines each token with the one ``1, 2, 4, ...`` places before
    it, carrying the cumulative sums of the log-decays ``delta * A`` over the combined span; the state at the
    chunk's end is carried into the next chunk. Work and memory per chunk grow with
    ``chunk_size * log2(chunk_size)``, Python steps with ``length / chunk_size * log2(chunk_size)``. Mamba-2's
    ``chunk x chunk`` decay matrix is not used: Mamba's decays differ per state, so that matrix would be
    ``chunk x chunk x state`` per channel. With gradients enabled each chunk is recomputed in the backward pass
    instead of keeping its intermediate states.

    Parameters
    ----------
    u, delta, A, B, C, D
        As for ``selective_scan_sequential``.
    chunk_size
        Tokens per chunk; the last chunk may be shorter.

    Returns
    -------
    Tensor
        ``y``, ``[batch, channels, length]``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> u, delta = torch.randn(1, 4, 10, generator=g), torch.rand(1, 4, 10, generator=g)
    >>> A, B = -torch.rand(4, 3, generator=g), torch.randn(1, 2, 3, 10, generator=g)
    >>> C, D = torch.randn(1, 2, 3, 10, generator=g), torch.ones(4)
    >>> torch.allclose(selective_scan_chunked(u, delta, A, B, C, D, chunk_size=4),
    ...                selective_scan_sequential(u, delta, A, B, C, D), atol=1e-6)
    True
    """
    if chunk_size < 1:
        raise ValueError(f"Expected chunk_size to be a positive integer, but got {chunk_size}.")
    batch, channels, length = u.shape
    groups, state = B.shape[1], B.shape[2]
    u_, delta_ = (t.reshape(batch, groups, channels // groups, length) for t in (u, delta))
    A_ = A.reshape(groups, channels // groups, state)
    h = u.new_zeros(batch, groups, channels // groups, state)
    recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))
    ys = []
    for start in range(0, length, chunk_size):
        part = slice(start, start + chunk_size)
        args = (u_[..., part], delta_[..., part], A_, B[..., part], C[..., part], h)
        y, h = checkpoint(_scan_chunk, *args, use_reentrant=False) if recompute else _scan_chunk(*args)
        ys.append(y)
    return torch.cat(ys, -1).view(batch, channels, length) + D[:, None] * u


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor) -> Tensor:
    """The model's scan: ``mamba_ssm``'s CUDA kernel where it is installed and ``u`` is on CUDA, else chunked."""
    if _mamba_selective_scan is not None and u.is_cuda:
        return _mamba_selective_scan(u.contiguous(), delta.contiguous(), A.contiguous(), B.contiguous(),
                                     C.contiguous(), D.contiguous(), delta_softplus=False)
    return selective_scan_chunked(u, delta, A, B, C, D)


class SS2D(nn.Module):
    """2D selective scan over four flattening orders (VMamba), on channels-last maps ``[B, H, W, dim]``.

    Parameters
    ----------
    dim
        Input and output width.
    d_state
        State size per channel.
    expand
        Inner width as a multiple of ``dim``.
    dt_min, dt_max
        Range of the initial steps ``softplus(dt bias)``, drawn log-uniformly (Mamba's initialisation).
    """

    directions = 4

    def __init__(self, dim: int, *, d_state: int = 16, expand: int = 2, dt_min: float = 1e-3,
                 dt_max: float = 0.1) -> None:
        super().__init__()
        inner, k = expand * dim, self.directions
        self.d_state, self.dt_rank = d_state, math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv2d = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        bound = inner ** -0.5
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * d_state, inner).uniform_(-bound, bound))
        bound = self.dt_rank ** -0.5
        self.dt_projs_weight = nn.Parameter(torch.empty(k, inner, self.dt_rank).uniform_(-bound, bound))
        dt = torch.exp(torch.rand(k, inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=1e-4)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        # S4D-real initialisation A = -(1, 2, ..., d_state), stored as log(-A) so that A stays negative.
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(k * inner, 1))
        self.Ds = nn.Parameter(torch.ones(k * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def _scan(self, x: Tensor) -> Tensor:
        batch, inner, height, width = x.shape
        length = height * width
        orders = torch.stack([x.flatten(2), x.transpose(2, 3).flatten(2)], dim=1)
        xs = torch.cat([orders, orders.flip(-1)], dim=1)  # [B, 4, inner, L]
        x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, Bs, Cs = x_dbl.split([self.dt_rank, self.d_state, self.d_state], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        with torch.autocast(device_type=x.device.type, enabled=False):
            delta = F.softplus(dts.float() + self.dt_projs_bias.float()[..., None])
            ys = selective_scan(xs.float().flatten(1, 2), delta.flatten(1, 2), -torch.exp(self.A_logs.float()),
                                Bs.float(), Cs.float(), self.Ds.float())
        ys = ys.view(batch, self.directions, inner, length)
        ys = ys[:, :2] + ys[:, 2:].flip(-1)
        return (ys[:, 0].view(batch, inner, height, width)
                + ys[:, 1].view(batch, inner, width, height).transpose(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.in_proj(x).chunk(2, dim=-1)
        value = F.silu(self.conv2d(value.permute(0, 3, 1, 2)))
        y = self.out_norm(self._scan(value).permute(0, 2, 3, 1))
        return self.out_proj(y * F.silu(gate))


class VSSBlock(nn.Module):
    """VMamba's visual state-space block ``x + DropPath(SS2D(LayerNorm(x)))`` on channels-last maps."""

    def __init__(self, dim: int, drop_path: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = SS2D(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.self_attention(self.ln_1(x)))


class VSSStage(nn.Module):
    """A sequence of VSS blocks (VMamba's layer without its downsampling)."""

    def __init__(self, dim: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(VSSBlock(dim, p) for p in drop_paths)

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PatchMerging2D(nn.Module):
    """Concatenate each 2x2 neighbourhood's channels, LayerNorm, and project ``4 dim -> 2 dim`` (channels last)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        # VMamba's order of the four neighbours, which its weights expect.
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class VSSMEncoder(nn.Module):
    """VMamba-Tiny's four stages after a stride-``patch`` patch embedding; returns the stage maps channels first."""

    def __init__(self, in_channels: int, *, dims: Sequence[int] = (96, 192, 384, 768),
                 depths: Sequence[int] = (2, 2, 9, 2), patch: int = 2, drop_path_rate: float = 0.2) -> None:
        super().__init__()
        self.patch_embed = nn.ModuleDict({"proj": nn.Conv2d(in_channels, dims[0], patch, stride=patch),
                                          "norm": nn.LayerNorm(dims[0])})
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(VSSStage(d, rates[s:s + n]) for d, s, n in zip(dims, starts, depths))
        self.downsamples = nn.ModuleList(PatchMerging2D(d) for d in dims[:-1])
        self.apply(_init_vmamba)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.patch_embed["norm"](self.patch_embed["proj"](x).permute(0, 2, 3, 1))
        maps = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            maps.append(x.permute(0, 3, 1, 2))
            if i < len(self.downsamples):
                x = self.downsamples[i](x)
        return maps


def _init_vmamba(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with instance norm and LeakyReLU, plus a 1x1 projection of the input when widths differ
    (UNETR's residual block)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm2d(out_channels)
        self.skip = (nn.Identity() if in_channels == out_channels else
                     nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.InstanceNorm2d(out_channels)))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))
        return self.act(y + self.skip(x))


class UpBlock(nn.Module):
    """Upsample by a 2x2 transposed convolution, concatenate the skip map, fuse with a residual block."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False)
        self.fuse = ResBlock(2 * out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


class SwinUMamba(nn.Module):
    """Stem + VMamba-Tiny encoder + UNETR-style residual decoder, logits at the input size.

    Parameters
    ----------
    out_channels
        Logit channels.
    widths
        Channels of the five encoder stages (stem, then VMamba's four).
    depths
        VSS blocks per VMamba stage.
    """

    def __init__(self, out_channels: int, *, widths: Sequence[int] = (48, 96, 192, 384, 768),
                 depths: Sequence[int] = (2, 2, 9, 2)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, stride=2, padding=3),
                                  nn.InstanceNorm2d(widths[0], affine=True))
        self.encoder = VSSMEncoder(widths[0], dims=widths[1:], depths=depths)
        # Residual blocks on the input, the stem's map and the first three VMamba stages, widened to widths.
        self.skips = nn.ModuleList(ResBlock(c_in, c_out) for c_in, c_out in zip((3, *widths[:-1]), widths))
        self.ups = nn.ModuleList(UpBlock(c_in, c_out) for c_in, c_out in zip((widths[-1], *widths[:0:-1]),
                                                                              widths[::-1]))
        self.head = nn.Sequential(ResBlock(widths[0], widths[0]), nn.Conv2d(widths[0], out_channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        stem = self.stem(x)
        stages = self.encoder(stem)
        skips = [block(f) for block, f in zip(self.skips, (x, stem, *stages[:-1]))]
        y = stages[-1]
        for up, skip in zip(self.ups, reversed(skips)):
            y = up(y, skip)
        return self.head(y)


@register("swin-umamba", family="specialized", parameters_m=60, paper=PAPER, amp=True)
def build(out_channels: int, *, pretrained: bool = False) -> nn.Module:
    """Swin-UMamba with ``out_channels`` logit channels, randomly initialised."""
    if pretrained:
        raise PretrainedUnavailableError(
            f"swin-umamba: the ImageNet-1k encoder weights are {IMAGENET_WEIGHTS}; loading them is not wired yet, "
            "build with pretrained=False.")
    return SwinUMamba(out_channels)
