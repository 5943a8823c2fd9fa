"""The official ImageNet-1k InternImage-T checkpoint onto internimage-t-upernet: a fake checkpoint with the official
names and shapes lands tensor by tensor where it should, the loaded backbone computes what the official code
computes with it (offline errors: tests/train/test_train_pretrained.py).

The official names come from OpenGVLab/InternImage, classification/models/intern_image.py (``patch_embed``,
``levels.{i}`` with ``blocks``, ``norm`` and ``downsample``, then the classifier's ``conv_head`` and ``head``) and
classification/ops_dcnv3/modules/dcnv3.py (DCNv3's ``dw_conv``, ``offset``, ``mask``, ``input_proj``,
``output_proj``), built with the T configuration (classification/configs/.../internimage_t_1k_224.yaml on the
defaults of classification/config.py: no layer scale, no post-norm, no H/G options). The released file holds the
weights under ``"model"`` (the official segmentation backbone unwraps ``state_dict`` or ``model``).
"""

from __future__ import annotations

import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from medseg_eval.train.zoo import internimage

#: InternImage-T as classification/models/build.py builds it from the T config.
T = {"channels": 64, "depths": (4, 4, 18, 4), "groups": (4, 8, 16, 32)}
MLP_RATIO, CLS_SCALE, KERNEL = 4, 1.5, 3
CLASSIFIER_PREFIXES = ("conv_head.", "head.")


def official_shapes(channels: int, depths: tuple[int, ...], groups: tuple[int, ...],
                    num_classes: int = 1000) -> OrderedDict[str, tuple[int, ...]]:
    """Name -> shape of every entry of the official ``InternImage(...).state_dict()``, walking its module tree.

    ``build_norm_layer`` returns an ``nn.Sequential`` whose LayerNorm sits at index 1 after a ``to_channels_last``
    (input channels-first) and at index 0 otherwise; BatchNorm (only in ``conv_head``) carries its running
    statistics. Layer scale is off in the T config, so no ``gamma1`` / ``gamma2``.
    """
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def conv(name: str, fan_in: int, fan_out: int, kernel: int, *, groups: int = 1, bias: bool = True) -> None:
        shapes[f"{name}.weight"] = (fan_out, fan_in // groups, kernel, kernel)
        if bias:
            shapes[f"{name}.bias"] = (fan_out,)

    def linear(name: str, fan_in: int, fan_out: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (fan_out, fan_in), (fan_out,)

    def layer_norm(name: str, dim: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (dim,), (dim,)

    # StemLayer(out_chans=channels, norm_layer='LN'): norm1 channels_first -> channels_first, norm2 -> channels_last.
    conv("patch_embed.conv1", 3, channels // 2, 3)
    layer_norm("patch_embed.norm1.1", channels // 2)
    conv("patch_embed.conv2", channels // 2, channels, 3)
    layer_norm("patch_embed.norm2.1", channels)
    for i, (depth, group) in enumerate(zip(depths, groups)):
        dim = channels * 2 ** i
        for j in range(depth):
            block = f"levels.{i}.blocks.{j}"
            layer_norm(f"{block}.norm1.0", dim)
            # DCNv3: dw_conv = Sequential(depthwise Conv2d, build_norm_layer(channels_first -> last), GELU).
            conv(f"{block}.dcn.dw_conv.0", dim, dim, KERNEL, groups=dim)
            layer_norm(f"{block}.dcn.dw_conv.1.1", dim)
            linear(f"{block}.dcn.offset", dim, group * KERNEL ** 2 * 2)
            linear(f"{block}.dcn.mask", dim, group * KERNEL ** 2)
            linear(f"{block}.dcn.input_proj", dim, dim)
            linear(f"{block}.dcn.output_proj", dim, dim)
            layer_norm(f"{block}.norm2.0", dim)
            linear(f"{block}.mlp.fc1", dim, MLP_RATIO * dim)
            linear(f"{block}.mlp.fc2", MLP_RATIO * dim, dim)
        layer_norm(f"levels.{i}.norm.0", dim)  # post_norm=False
        if i + 1 < len(depths):  # DownsampleLayer: conv without bias, norm channels_first -> channels_last
            conv(f"levels.{i}.downsample.conv", dim, 2 * dim, 3, bias=False)
            layer_norm(f"levels.{i}.downsample.norm.1", 2 * dim)
    features = channels * 2 ** (len(depths) - 1)
    conv("conv_head.0", features, int(features * CLS_SCALE), 1, bias=False)
    for stat in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"conv_head.1.0.{stat}"] = (int(features * CLS_SCALE),)
    shapes["conv_head.1.0.num_batches_tracked"] = ()
    linear("head", int(features * CLS_SCALE), num_classes)
    return shapes


def our_name(key: str) -> str | None:
    """Where an official key belongs in internimage-t-upernet (``None``: nowhere, the classifier)."""
    if key.startswith(CLASSIFIER_PREFIXES):
        return None
    if match := re.fullmatch(r"patch_embed\.(conv|norm)([12])(?:\.1)?\.(weight|bias)", key):
        kind, k, param = match.groups()
        return f"backbone.stem_{kind}{k}.{param}"
    if match := re.fullmatch(r"levels\.(\d)\.blocks\.(\d+)\.(.+)", key):
        stage, block, rest = match.groups()
        rest = {"norm1.0": "norm1", "norm2.0": "norm2", "dcn.dw_conv.0": "dcn.dw_conv", "dcn.dw_conv.1.1": "dcn.dw_norm",
                "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}.get(rest.rsplit(".", 1)[0], rest.rsplit(".", 1)[0])
        return f"backbone.stages.{stage}.{block}.{rest}.{key.rsplit('.', 1)[1]}"
    if match := re.fullmatch(r"levels\.(\d)\.norm\.0\.(weight|bias)", key):
        return f"backbone.norms.{match.group(1)}.{match.group(2)}"
    match = re.fullmatch(r"levels\.(\d)\.downsample\.(conv|norm\.1)\.(weight|bias)", key)
    assert match is not None, key
    return f"backbone.downsamples.{match.group(1)}.{match.group(2).split('.')[0]}.{match.group(3)}"


@pytest.fixture(scope="module")
def checkpoint() -> OrderedDict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = OrderedDict((k, 0.1 * torch.randn(shape, generator=generator))
                        for k, shape in official_shapes(**T).items())
    state["conv_head.1.0.num_batches_tracked"] = torch.tensor(12345)  # an int64 buffer, as BatchNorm saves it
    return state


@pytest.fixture(scope="module")
def loaded(checkpoint, tmp_path_factory):
    """(model before loading, as a state dict copy; model after loading the fake checkpoint from a folder)."""
    folder = tmp_path_factory.mktemp("internimage")
    torch.save({"model": checkpoint}, folder / "internimage_t_1k_224.pth")
    torch.manual_seed(0)
    model = internimage.build(2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    internimage.load_imagenet(model, str(folder))
    return before, model


def test_the_derived_checkpoint_has_the_size_of_the_released_one(checkpoint):
    count = sum(v.numel() for k, v in checkpoint.items() if not k.endswith(("running_mean", "running_var", "tracked")))
    assert round(count / 1e6) == 30  # InternImage-T with its classifier: 30 M (official README, paper)


def test_every_backbone_tensor_lands_in_its_parameter_only_the_classifier_is_dropped_the_head_is_fresh(
        checkpoint, loaded):
    before, model = loaded
    after = model.state_dict()
    targets = {key: our_name(key) for key in checkpoint}
    assert {key for key, target in targets.items() if target is None} == {
        k for k in checkpoint if k.startswith(CLASSIFIER_PREFIXES)} != set()
    used = {key: target for key, target in targets.items() if target is not None}
    assert len(set(used.values())) == len(used), "two checkpoint tensors onto one parameter"
    for key, target in used.items():
        assert torch.equal(after[target], checkpoint[key]), f"{key} -> {target}"
    fresh = set(after) - set(used.values())
    gammas = {k for k in after if re.fullmatch(r"backbone\.stages\.\d\.\d+\.gamma[12]", k)}
    assert len(gammas) == 2 * sum(T["depths"])
    assert fresh == {k for k in after if k.startswith("decode_head.")} | gammas, "the backbone loads, not the head"
    assert all(torch.equal(after[k], before[k]) for k in fresh), "the UPerHead and the layer scales keep their init"
    assert all(torch.equal(after[k], torch.ones_like(after[k])) for k in gammas)


def test_a_checkpoint_of_another_size_is_refused(tmp_path):
    other = {k: torch.zeros(shape) for k, shape in official_shapes(80, (1, 1, 1, 1), (5, 10, 20, 40)).items()}
    torch.save({"model": other}, tmp_path / "internimage_t_1k_224.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        internimage.load_imagenet(internimage.build(1), str(tmp_path))


# A reference written after the official forward passes (classification/models/intern_image.py, and DCNv3_pytorch
# with dcnv3_core_pytorch from classification/ops_dcnv3), on the checkpoint's tensors, channels-last.

def _dcnv3_core_reference(value: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, group: int) -> torch.Tensor:
    """dcnv3_core_pytorch for kernel 3, stride 1, pad 1, dilation 1, offset scale 1, remove_center off."""
    value = F.pad(value, [0, 0, 1, 1, 1, 1])
    n, h_in, w_in, c = value.shape
    _, h, w, _ = offset.shape
    ref_y, ref_x = torch.meshgrid(torch.linspace(1.5, h + 0.5, h), torch.linspace(1.5, w + 0.5, w), indexing="ij")
    ref = torch.stack((ref_x.reshape(-1)[None] / w_in, ref_y.reshape(-1)[None] / h_in), -1).reshape(1, h, w, 1, 2)
    x, y = torch.meshgrid(torch.linspace(-1, 1, 3), torch.linspace(-1, 1, 3), indexing="ij")  # x outer, y inner
    grid = torch.stack([x / w_in, y / h_in], -1).reshape(-1, 1, 2).repeat(1, group, 1).permute(1, 0, 2)
    grid = grid.reshape(1, 1, 1, group * 9, 2)
    spatial_norm = torch.tensor([w_in, h_in]).reshape(1, 1, 1, 2).repeat(1, 1, 1, group * 9)
    locations = (ref + grid).repeat(n, 1, 1, 1, 1).flatten(3, 4) + offset / spatial_norm
    grids = (2 * locations - 1).view(n, h * w, group, 9, 2).transpose(1, 2).flatten(0, 1)
    per_group = value.view(n, h_in * w_in, c).transpose(1, 2).reshape(n * group, c // group, h_in, w_in)
    sampled = F.grid_sample(per_group, grids, mode="bilinear", padding_mode="zeros", align_corners=False)
    weights = mask.view(n, h * w, group, 9).transpose(1, 2).reshape(n * group, 1, h * w, 9)
    return (sampled * weights).sum(-1).view(n, c, h * w).transpose(1, 2).reshape(n, h, w, c)


def _ln(ckpt: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], ckpt[f"{name}.weight"], ckpt[f"{name}.bias"], eps=1e-6)


def _linear(ckpt: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, ckpt[f"{name}.weight"], ckpt[f"{name}.bias"])


def _dcnv3_reference(ckpt: dict[str, torch.Tensor], p: str, x: torch.Tensor, group: int) -> torch.Tensor:
    n, h, w, c = x.shape
    query = F.conv2d(x.permute(0, 3, 1, 2), ckpt[f"{p}dw_conv.0.weight"], ckpt[f"{p}dw_conv.0.bias"], padding=1,
                     groups=c)
    query = F.gelu(_ln(ckpt, f"{p}dw_conv.1.1", query.permute(0, 2, 3, 1)))
    mask = F.softmax(_linear(ckpt, f"{p}mask", query).reshape(n, h, w, group, -1), -1).reshape(n, h, w, -1)
    out = _dcnv3_core_reference(_linear(ckpt, f"{p}input_proj", x), _linear(ckpt, f"{p}offset", query), mask, group)
    return _linear(ckpt, f"{p}output_proj", out)


def _backbone_reference(ckpt: dict[str, torch.Tensor], image: torch.Tensor) -> list[torch.Tensor]:
    """The official segmentation backbone's outputs (layer_scale=1.0: every gamma is 1, a no-op) in eval mode."""
    x = F.conv2d(image, ckpt["patch_embed.conv1.weight"], ckpt["patch_embed.conv1.bias"], stride=2, padding=1)
    x = F.gelu(_ln(ckpt, "patch_embed.norm1.1", x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    x = F.conv2d(x, ckpt["patch_embed.conv2.weight"], ckpt["patch_embed.conv2.bias"], stride=2, padding=1)
    x = _ln(ckpt, "patch_embed.norm2.1", x.permute(0, 2, 3, 1))
    outputs = []
    for i, (depth, group) in enumerate(zip(T["depths"], T["groups"])):
        for j in range(depth):
            p = f"levels.{i}.blocks.{j}."
            x = x + _dcnv3_reference(ckpt, f"{p}dcn.", _ln(ckpt, f"{p}norm1.0", x), group)
            x = x + _linear(ckpt, f"{p}mlp.fc2", F.gelu(_linear(ckpt, f"{p}mlp.fc1", _ln(ckpt, f"{p}norm2.0", x))))
        x = _ln(ckpt, f"levels.{i}.norm.0", x)
        outputs.append(x.permute(0, 3, 1, 2))
        if i + 1 < len(T["depths"]):
            x = F.conv2d(x.permute(0, 3, 1, 2), ckpt[f"levels.{i}.downsample.conv.weight"], stride=2, padding=1)
            x = _ln(ckpt, f"levels.{i}.downsample.norm.1", x.permute(0, 2, 3, 1))
    return outputs


def test_the_loaded_backbone_computes_what_the_official_code_computes_with_the_checkpoint(checkpoint, loaded):
    image = torch.randn(2, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = _backbone_reference(checkpoint, image)
        got = loaded[1].backbone(image)
    assert [tuple(g.shape) for g in got] == [(2, 64, 10, 14), (2, 128, 5, 7), (2, 256, 3, 4), (2, 512, 2, 2)]
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)
