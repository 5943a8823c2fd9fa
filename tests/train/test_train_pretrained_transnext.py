"""The official ImageNet-1k TransNeXt-Tiny checkpoint onto transnext-tiny-upernet: a fake checkpoint with the
official names and shapes lands tensor by tensor where it should, computes what the official code computes with
it (offline errors: tests/train/test_train_pretrained.py).

The official names come from DaiShiResearch/TransNeXt, classification/transnext.py (and attention_native.py,
transnext_native.py): ``patch_embed{i}``, ``block{i}.{j}`` and ``norm{i}`` per stage, then the classifier ``head``.
The released file is a plain state dict (an ``OrderedDict`` of float tensors: the official segmentation code loads
it with mmcv's ``load_checkpoint``, which unwraps only ``state_dict``).
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from medseg_eval.train.zoo import transnext

#: TransNeXt-Tiny as the official ``transnext_tiny`` builds it, and TransNeXt-Micro (another size).
TINY = {"dims": (72, 144, 288, 576), "heads": (3, 6, 12, 24), "depths": (2, 2, 15, 2)}
MICRO = {"dims": (48, 96, 192, 384), "heads": (2, 4, 8, 16), "depths": (2, 2, 15, 2)}
MLP_RATIOS, SR_RATIOS, WINDOW = (8, 8, 4, 4), (8, 4, 2, 1), 3
CLASSIFIER = {"head.weight", "head.bias"}


def official_shapes(dims: tuple[int, ...], heads: tuple[int, ...], depths: tuple[int, ...],
                    num_classes: int = 1000) -> OrderedDict[str, tuple[int, ...]]:
    """Name -> shape of every entry of the official ``TransNeXt(...).state_dict()``, walking its module tree.

    Buffers (CPB index and coordinates, padding mask, length scale) are registered ``persistent=False``
    upstream, so they are not in the checkpoint.
    """
    shapes: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def linear(name: str, fan_in: int, fan_out: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (fan_out, fan_in), (fan_out,)

    def conv(name: str, fan_in: int, fan_out: int, kernel: int, groups: int = 1) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (fan_out, fan_in // groups, kernel, kernel), (fan_out,)

    def layer_norm(name: str, dim: int) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (dim,), (dim,)

    local = WINDOW ** 2
    for i, (dim, head, depth) in enumerate(zip(dims, heads, depths)):
        stage, head_dim = i + 1, dim // head
        # OverlapPatchEmbed(patch_size=4 * 2 - 1 if i == 0 else 3, ...): proj (Conv2d) and norm.
        conv(f"patch_embed{stage}.proj", 3 if i == 0 else dims[i - 1], dim, 7 if i == 0 else 3)
        layer_norm(f"patch_embed{stage}.norm", dim)
        for j in range(depth):
            block = f"block{stage}.{j}"
            layer_norm(f"{block}.norm1", dim)
            attn = f"{block}.attn"
            shapes[f"{attn}.temperature"] = (head, 1, 1)
            if SR_RATIOS[i] == 1:  # Attention: temperature, qkv, query_embedding, proj, cpb_fc1, cpb_fc2
                linear(f"{attn}.qkv", dim, 3 * dim)
                shapes[f"{attn}.query_embedding"] = (head, 1, head_dim)
                linear(f"{attn}.proj", dim, dim)
            else:  # AggregatedAttention, in its definition order
                linear(f"{attn}.q", dim, dim)
                shapes[f"{attn}.query_embedding"] = (head, 1, head_dim)
                linear(f"{attn}.kv", dim, 2 * dim)
                linear(f"{attn}.proj", dim, dim)
                conv(f"{attn}.sr", dim, dim, 1)
                layer_norm(f"{attn}.norm", dim)
            linear(f"{attn}.cpb_fc1", 2, 512)
            linear(f"{attn}.cpb_fc2", 512, head)
            if SR_RATIOS[i] != 1:
                shapes[f"{attn}.relative_pos_bias_local"] = (head, local)
                shapes[f"{attn}.learnable_tokens"] = (head, head_dim, local)
                shapes[f"{attn}.learnable_bias"] = (head, 1, local)
            layer_norm(f"{block}.norm2", dim)
            hidden = int(2 * int(dim * MLP_RATIOS[i]) / 3)  # ConvolutionalGLU(hidden_features=dim * mlp_ratio)
            linear(f"{block}.mlp.fc1", dim, 2 * hidden)
            conv(f"{block}.mlp.dwconv.dwconv", hidden, hidden, 3, groups=hidden)
            linear(f"{block}.mlp.fc2", hidden, dim)
        layer_norm(f"norm{stage}", dim)
    linear("head", dims[-1], num_classes)
    return shapes


def our_name(key: str) -> str | None:
    """Where an official key belongs in transnext-tiny-upernet (``None``: nowhere, the classifier)."""
    match = re.fullmatch(r"(patch_embed|block|norm)(\d)\.(.+)", key)
    if match is None:
        return None
    kind, stage, rest = match.group(1), int(match.group(2)) - 1, match.group(3)
    if kind == "patch_embed":
        module, param = rest.split(".")
        rest = f"{'patch_embed' if module == 'proj' else 'patch_norm'}.{param}"
    elif kind == "block":
        rest = "blocks." + rest.replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
    else:
        rest = f"norm.{rest}"
    return f"backbone.stages.{stage}.{rest}"


@pytest.fixture(scope="module")
def checkpoint() -> OrderedDict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return OrderedDict((k, 0.1 * torch.randn(shape, generator=generator)) for k, shape in official_shapes(**TINY).items())


@pytest.fixture(scope="module")
def loaded(checkpoint, tmp_path_factory):
    """(model before loading, as a state dict copy; model after loading the fake checkpoint from a folder)."""
    folder = tmp_path_factory.mktemp("transnext")
    torch.save(checkpoint, folder / "transnext_tiny_224_1k.pth")
    torch.manual_seed(0)
    model = transnext.build(2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    transnext.load_imagenet(model, str(folder))
    return before, model


def test_the_derived_checkpoint_has_the_size_of_the_released_one(checkpoint):
    count = sum(v.numel() for v in checkpoint.values())
    assert abs(count / 1e6 - 28.2) < 0.1  # TransNeXt-Tiny with its classifier: 28.2 M (paper, official README)
    assert round(4 * count / 1e6) == 113  # the Hub lists transnext_tiny_224_1k.pth at 113 MB of float32 tensors


def test_every_backbone_tensor_lands_in_its_parameter_only_the_classifier_is_dropped_the_head_is_fresh(
        checkpoint, loaded):
    before, model = loaded
    after = model.state_dict()
    targets = {key: our_name(key) for key in checkpoint}
    assert {key for key, target in targets.items() if target is None} == CLASSIFIER
    used = {key: target for key, target in targets.items() if target is not None}
    assert len(set(used.values())) == len(used), "two checkpoint tensors onto one parameter"
    for key, target in used.items():
        assert torch.equal(after[target], checkpoint[key]), f"{key} -> {target}"
    fresh = set(after) - set(used.values())
    assert fresh == {k for k in after if k.startswith("decode_head.")}, "all of the backbone loads, none of the head"
    assert all(torch.equal(after[k], before[k]) for k in fresh), "the UPerHead keeps its initialisation"


def test_a_checkpoint_of_another_size_is_refused(tmp_path):
    micro = {k: torch.zeros(shape) for k, shape in official_shapes(**MICRO).items()}
    torch.save(micro, tmp_path / "transnext_tiny_224_1k.pth")
    with pytest.raises(RuntimeError, match="size mismatch"):
        transnext.load_imagenet(transnext.build(1), str(tmp_path))


# References written after the official forward passes (classification/attention_native.py for the aggregated
# attention, classification/transnext.py for the rest), on the checkpoint's tensors.

def _cpb_reference(ckpt: dict[str, torch.Tensor], prefix: str, query: tuple[int, int], key: tuple[int, int],
                   pretrain: int) -> torch.Tensor:
    """get_relative_position_cpb, then the cpb_fc1 -> ReLU -> cpb_fc2 bias ``[heads, Nq, Nk]``."""
    qh, qw = torch.meshgrid(torch.arange(query[0]).float(), torch.arange(query[1]).float(), indexing="ij")
    kh = F.adaptive_avg_pool1d(torch.arange(query[0]).float()[None], key[0])[0]
    kw = F.adaptive_avg_pool1d(torch.arange(query[1]).float()[None], key[1])[0]
    kh, kw = torch.meshgrid(kh, kw, indexing="ij")
    rel_h = (qh.reshape(-1)[:, None] - kh.reshape(-1)[None]) / (pretrain - 1) * 8
    rel_w = (qw.reshape(-1)[:, None] - kw.reshape(-1)[None]) / (pretrain - 1) * 8
    table, index = torch.unique(torch.stack([rel_h, rel_w], dim=-1).view(-1, 2), return_inverse=True, dim=0)
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)
    hidden = F.relu(F.linear(table, ckpt[f"{prefix}cpb_fc1.weight"], ckpt[f"{prefix}cpb_fc1.bias"]))
    bias = F.linear(hidden, ckpt[f"{prefix}cpb_fc2.weight"], ckpt[f"{prefix}cpb_fc2.bias"])
    return bias.t()[:, index.view(-1)].view(-1, query[0] * query[1], key[0] * key[1])


def _linear(ckpt: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, ckpt[f"{name}.weight"], ckpt[f"{name}.bias"])


def _aggregated_reference(ckpt: dict[str, torch.Tensor], p: str, x: torch.Tensor, size: tuple[int, int], heads: int,
                          sr_ratio: int, pretrain: int) -> torch.Tensor:
    b, n, c = x.shape
    h, w = size
    head_dim, pool = c // heads, (h // sr_ratio, w // sr_ratio)
    pool_len = pool[0] * pool[1]
    window = F.unfold(torch.ones(1, 1, h, w), WINDOW, padding=WINDOW // 2)
    padding_mask = window.squeeze(0).t() == 0
    seq_length_scale = torch.log(window.sum(-2).squeeze().unsqueeze(-1) + pool_len)
    q_norm = F.normalize(_linear(ckpt, f"{p}q", x).reshape(b, n, heads, head_dim).permute(0, 2, 1, 3), dim=-1)
    q_scaled = (q_norm + ckpt[f"{p}query_embedding"]) * F.softplus(ckpt[f"{p}temperature"]) * seq_length_scale
    k_local, v_local = _linear(ckpt, f"{p}kv", x).chunk(2, dim=-1)
    k_local = F.normalize(k_local.reshape(b, n, heads, head_dim), dim=-1).reshape(b, n, -1)
    kv_local = torch.cat([k_local, v_local], dim=-1).permute(0, 2, 1).reshape(b, -1, h, w)
    k_local, v_local = F.unfold(kv_local, WINDOW, padding=WINDOW // 2).reshape(
        b, 2 * heads, head_dim, WINDOW ** 2, n).permute(0, 1, 4, 2, 3).chunk(2, dim=1)
    attn_local = ((q_scaled.unsqueeze(-2) @ k_local).squeeze(-2)
                  + ckpt[f"{p}relative_pos_bias_local"].unsqueeze(1)).masked_fill(padding_mask, float("-inf"))
    pooled = F.conv2d(x.permute(0, 2, 1).reshape(b, -1, h, w), ckpt[f"{p}sr.weight"], ckpt[f"{p}sr.bias"])
    pooled = F.adaptive_avg_pool2d(F.gelu(pooled), pool).reshape(b, -1, pool_len).permute(0, 2, 1)
    pooled = F.layer_norm(pooled, (c,), ckpt[f"{p}norm.weight"], ckpt[f"{p}norm.bias"])
    k_pool, v_pool = _linear(ckpt, f"{p}kv", pooled).reshape(
        b, pool_len, 2 * heads, head_dim).permute(0, 2, 1, 3).chunk(2, dim=1)
    attn_pool = q_scaled @ F.normalize(k_pool, dim=-1).transpose(-2, -1) + _cpb_reference(ckpt, p, size, pool, pretrain)
    attn_local, attn_pool = torch.cat([attn_local, attn_pool], dim=-1).softmax(-1).split([WINDOW ** 2, pool_len], -1)
    x_local = (((q_norm @ ckpt[f"{p}learnable_tokens"]) + ckpt[f"{p}learnable_bias"] + attn_local).unsqueeze(-2)
               @ v_local.transpose(-2, -1)).squeeze(-2)
    return _linear(ckpt, f"{p}proj", (x_local + attn_pool @ v_pool).transpose(1, 2).reshape(b, n, c))


def _attention_reference(ckpt: dict[str, torch.Tensor], p: str, x: torch.Tensor, size: tuple[int, int], heads: int,
                         pretrain: int) -> torch.Tensor:
    b, n, c = x.shape
    q, k, v = _linear(ckpt, f"{p}qkv", x).reshape(b, n, 3 * heads, c // heads).permute(0, 2, 1, 3).chunk(3, dim=1)
    scaled = (F.normalize(q, dim=-1) + ckpt[f"{p}query_embedding"]) * F.softplus(ckpt[f"{p}temperature"]) * math.log(n)
    attn = scaled @ F.normalize(k, dim=-1).transpose(-2, -1) + _cpb_reference(ckpt, p, size, size, pretrain)
    return _linear(ckpt, f"{p}proj", (attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


def _glu_reference(ckpt: dict[str, torch.Tensor], p: str, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    gate, value = _linear(ckpt, f"{p}fc1", x).chunk(2, dim=-1)
    b, _, hidden = gate.shape
    gate = F.conv2d(gate.transpose(1, 2).reshape(b, hidden, *size), ckpt[f"{p}dwconv.dwconv.weight"],
                    ckpt[f"{p}dwconv.dwconv.bias"], padding=1, groups=hidden)
    return _linear(ckpt, f"{p}fc2", F.gelu(gate.flatten(2).transpose(1, 2)) * value)


def test_the_loaded_modules_compute_what_the_official_code_computes_with_the_checkpoint(checkpoint, loaded):
    stages = loaded[1].backbone.stages
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        image = torch.randn(2, 3, 32, 48, generator=generator)
        expected = F.conv2d(image, checkpoint["patch_embed1.proj.weight"], checkpoint["patch_embed1.proj.bias"],
                            stride=4, padding=3).flatten(2).transpose(1, 2)
        expected = F.layer_norm(expected, (72,), checkpoint["patch_embed1.norm.weight"],
                                checkpoint["patch_embed1.norm.bias"])
        torch.testing.assert_close(stages[0].patch_norm(stages[0].patch_embed(image).flatten(2).transpose(1, 2)),
                                   expected)

        # Stage 3 (aggregated attention, pooling 2, pre-training grid 224 / 16) and stage 4 (full attention, 224 / 32)
        # on 6x8 token maps; every block's checkpoint tensors play their official part.
        size = (6, 8)
        x = torch.randn(2, size[0] * size[1], 288, generator=generator)
        torch.testing.assert_close(stages[2].blocks[3].attn(x, size),
                                   _aggregated_reference(checkpoint, "block3.3.attn.", x, size, 12, 2, 14),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(stages[2].blocks[3].mlp(x, size),
                                   _glu_reference(checkpoint, "block3.3.mlp.", x, size), atol=1e-4, rtol=1e-4)
        x = torch.randn(2, size[0] * size[1], 576, generator=generator)
        torch.testing.assert_close(stages[3].blocks[1].attn(x, size),
                                   _attention_reference(checkpoint, "block4.1.attn.", x, size, 24, 7),
                                   atol=1e-4, rtol=1e-4)
