"""OpenMMLab's ImageNet-1k MSCAN-L release onto segnext-l: a fake with mmsegmentation's names and shapes, served
from a URL named by its own sha256 prefix, lands tensor by tensor where it should, the encoder then computes what
mmsegmentation's MSCAN computes with it, the decoder stays fresh, and offline a clear error names the weights.

The names come from open-mmlab/mmsegmentation, mmseg/models/backbones/mscan.py (1.x: ``Mlp.dwconv`` is a plain
convolution, the key change of the 2023-02-27 re-release, open-mmlab/mmsegmentation#2653): stage ``i`` sets
``patch_embed{i}``, ``block{i}`` and ``norm{i}``; the ImageNet model adds its classifier ``head``. mmseg's loader
(mmengine ``_load_checkpoint_to_model``) unwraps a ``state_dict`` entry, which the release has (code that loads
``mscan_l_20230227-cef260d4.pth`` directly indexes ``["state_dict"]``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from medseg_eval.train.zoo import segnext
from tests.support.http_server import serve

#: MSCAN-L as mmsegmentation's SegNeXt-L config builds it (mlp_ratios from the MSCAN-T base config it extends).
DIMS, DEPTHS, MLP_RATIOS = (64, 128, 320, 512), (3, 5, 27, 3), (8, 8, 4, 4)
STRIPS = (7, 11, 21)  # MSCAAttention's kernel sizes after the 5x5: conv{k}_1 is 1 x K, conv{k}_2 is K x 1
CLASSIFIER = {"head.weight", "head.bias"}


def mmseg_shapes(dims: tuple[int, ...] = DIMS, depths: tuple[int, ...] = DEPTHS,
                 mlp_ratios: tuple[int, ...] = MLP_RATIOS, num_classes: int = 1000) -> OrderedDict[str, tuple]:
    """Name -> shape of every entry of mmsegmentation's ``MSCAN(...).state_dict()`` plus the ImageNet classifier.

    Walks the module tree in registration order (a module's own parameters, then its buffers, then its children).
    Every convolution has a bias; every norm in the blocks and patch embeddings is a BatchNorm (``BN`` or
    ``SyncBN``: the same entries), the stage norms are LayerNorms.
    """
    shapes: OrderedDict[str, tuple] = OrderedDict()

    def conv(name: str, fan_in: int, fan_out: int, kernel: tuple[int, int], groups: int = 1) -> None:
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (fan_out, fan_in // groups, *kernel), (fan_out,)

    def batch_norm(name: str, dim: int) -> None:
        for entry in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{entry}"] = (dim,)
        shapes[f"{name}.num_batches_tracked"] = ()

    for i, (dim, depth, ratio) in enumerate(zip(dims, depths, mlp_ratios)):
        stage = i + 1
        if i == 0:  # StemConv: proj = Sequential(conv 3x3 s2, BN, GELU, conv 3x3 s2, BN)
            conv("patch_embed1.proj.0", 3, dim // 2, (3, 3))
            batch_norm("patch_embed1.proj.1", dim // 2)
            conv("patch_embed1.proj.3", dim // 2, dim, (3, 3))
            batch_norm("patch_embed1.proj.4", dim)
        else:  # OverlapPatchEmbed(patch_size=3, stride=2): proj, norm
            conv(f"patch_embed{stage}.proj", dims[i - 1], dim, (3, 3))
            batch_norm(f"patch_embed{stage}.norm", dim)
        for j in range(depth):  # MSCABlock: layer scales, norm1, attn, norm2, mlp
            block = f"block{stage}.{j}"
            shapes[f"{block}.layer_scale_1"] = shapes[f"{block}.layer_scale_2"] = (dim,)
            batch_norm(f"{block}.norm1", dim)
            conv(f"{block}.attn.proj_1", dim, dim, (1, 1))
            gate = f"{block}.attn.spatial_gating_unit"
            conv(f"{gate}.conv0", dim, dim, (5, 5), groups=dim)
            for k, size in enumerate(STRIPS):
                conv(f"{gate}.conv{k}_1", dim, dim, (1, size), groups=dim)
                conv(f"{gate}.conv{k}_2", dim, dim, (size, 1), groups=dim)
            conv(f"{gate}.conv3", dim, dim, (1, 1))
            conv(f"{block}.attn.proj_2", dim, dim, (1, 1))
            batch_norm(f"{block}.norm2", dim)
            hidden = int(dim * ratio)
            conv(f"{block}.mlp.fc1", dim, hidden, (1, 1))
            conv(f"{block}.mlp.dwconv", hidden, hidden, (3, 3), groups=hidden)
            conv(f"{block}.mlp.fc2", hidden, dim, (1, 1))
        shapes[f"norm{stage}.weight"] = shapes[f"norm{stage}.bias"] = (dim,)
    shapes["head.weight"], shapes["head.bias"] = (num_classes, dims[-1]), (num_classes,)
    return shapes


def our_name(key: str) -> str | None:
    """Where an mmsegmentation key belongs in segnext-l (``None``: nowhere, the classifier)."""
    match = re.fullmatch(r"(patch_embed|block|norm)(\d)\.(.+)", key)
    if match is None:
        return None
    kind, stage, rest = match.group(1), int(match.group(2)) - 1, match.group(3)
    if kind == "patch_embed":  # the stem's Sequential keeps its indices; later stages are Sequential(conv, BN)
        module, entry = rest.split(".", 1)
        rest = entry if stage == 0 else f"{'0' if module == 'proj' else '1'}.{entry}"
        return f"backbone.patch_embeds.{stage}.{rest}"
    if kind == "norm":
        return f"backbone.norms.{stage}.{rest}"
    rest = re.sub(r"conv(\d)_([12])", lambda m: f"strips.{m.group(1)}.{int(m.group(2)) - 1}", rest)
    return f"backbone.blocks.{stage}.{rest}"


def fake_release(shapes: OrderedDict[str, tuple], seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """Random tensors of ``shapes``: small weights, positive running variances, step counters as integers."""
    generator = torch.Generator().manual_seed(seed)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(1, 10**6, shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def release() -> OrderedDict[str, torch.Tensor]:
    return fake_release(mmseg_shapes())


@pytest.fixture(scope="module")
def loaded(release, tmp_path_factory):
    """(the model's state before loading, the loaded model, the keys ``load_state_dict`` received, URL requests)."""
    folder = tmp_path_factory.mktemp("segnext")
    site = folder / "site"
    site.mkdir()
    torch.save({"state_dict": release}, folder / "mscan_l.pth")  # the release's container
    digest = hashlib.sha256((folder / "mscan_l.pth").read_bytes()).hexdigest()[:8]
    (folder / "mscan_l.pth").rename(site / f"mscan_l-{digest}.pth")
    torch.manual_seed(0)
    model = segnext.build(2).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    received: list[str] = []
    load_state_dict = model.load_state_dict

    def spy(state_dict, *args, **kwargs):
        received.extend(state_dict)
        return load_state_dict(state_dict, *args, **kwargs)

    model.load_state_dict = spy
    with pytest.MonkeyPatch.context() as patch, serve(site) as server:
        patch.setenv("TORCH_HOME", str(folder / "torch-home"))
        segnext.load_imagenet(model, f"{server.url}/mscan_l-{digest}.pth")
        assert (folder / "torch-home" / "hub" / "checkpoints" / f"mscan_l-{digest}.pth").is_file()  # cached
        requests = list(server.requests)
    del model.load_state_dict
    return before, model, received, requests


def test_the_source_is_the_file_mmsegmentations_segnext_l_config_loads():
    assert segnext.IMAGENET_WEIGHTS == ("https://download.openmmlab.com/mmsegmentation/v0.5/pretrain/segnext/"
                                        "mscan_l_20230227-cef260d4.pth")
    assert re.search(r"-([a-f0-9]*)\.", segnext.IMAGENET_WEIGHTS.rsplit("/", 1)[1])[1] == "cef260d4"  # torch.hub's


def test_the_derived_names_cover_our_encoder_one_to_one(release):
    targets = {key: our_name(key) for key in release}
    assert {key for key, target in targets.items() if target is None} == CLASSIFIER
    encoder = segnext.MSCAN().state_dict()
    used = {target.removeprefix("backbone."): key for key, target in targets.items() if target is not None}
    assert len(used) == len(release) - len(CLASSIFIER), "two checkpoint tensors onto one entry"
    assert set(used) == set(encoder)
    for ours, key in used.items():
        if "layer_scale" in key:  # [C] upstream, [C, 1, 1] here
            assert encoder[ours].shape == (*release[key].shape, 1, 1)
        else:
            assert encoder[ours].shape == release[key].shape, f"{key} -> {ours}"


def test_every_encoder_tensor_lands_in_its_entry_only_the_classifier_is_dropped_the_decoder_is_fresh(
        release, loaded):
    before, model, received, requests = loaded
    assert len(requests) == 1
    after = model.state_dict()
    targets = {key: our_name(key) for key in release if key not in CLASSIFIER}
    assert sorted(received) == sorted(targets.values()), "load_state_dict got all but the classifier, renamed"
    for key, target in targets.items():
        assert after[target].dtype == release[key].dtype
        assert torch.equal(after[target].reshape(release[key].shape), release[key]), f"{key} -> {target}"
    fresh = set(after) - set(targets.values())
    assert fresh == {k for k in after if k.startswith("decode_head.")}
    assert all(torch.equal(after[k], before[k]) for k in fresh), "the decoder keeps its initialisation"


def test_the_loader_is_strict_about_everything_but_the_classifier_and_the_step_counters(release, monkeypatch):
    model = segnext.SegNeXt(1)

    def load(state: dict[str, torch.Tensor]) -> None:
        monkeypatch.setattr(segnext, "load_checkpoint", lambda source, name, filename: state)
        segnext.load_imagenet(model, "mscan_l.pth")

    load({f"module.{k}": v for k, v in release.items()})  # a DataParallel prefix is stripped
    # Without classifier and step counters (mmengine's loader tolerates that too): loads.
    load({k: v for k, v in release.items() if k not in CLASSIFIER and not k.endswith("num_batches_tracked")})
    with pytest.raises(RuntimeError, match=r"missing \['backbone\.blocks\.2\.26\.mlp\.dwconv\.weight'\]"):
        load({k: v for k, v in release.items() if k != "block3.26.mlp.dwconv.weight"})
    with pytest.raises(RuntimeError, match=r"unexpected \['backbone\.blocks\.0\.0\.mlp\.dwconv\.dwconv\.weight'\]"):
        # the authors' own keys (Tsinghua Cloud file) are not OpenMMLab's
        load({k.replace(".mlp.dwconv.", ".mlp.dwconv.dwconv.") if k == "block1.0.mlp.dwconv.weight" else k: v
              for k, v in release.items()})
    with pytest.raises(RuntimeError, match="size mismatch"):  # another MSCAN size: MSCAN-T
        load(fake_release(mmseg_shapes(dims=(32, 64, 160, 256), depths=(3, 3, 5, 2))))


# mmsegmentation's MSCAN forward pass in evaluation mode, on the checkpoint's tensors (StemConv / OverlapPatchEmbed,
# MSCABlock with MSCASpatialAttention and MSCAAttention, Mlp, the stage LayerNorm on tokens).

def _conv(state: dict[str, torch.Tensor], name: str, x: torch.Tensor, **kwargs) -> torch.Tensor:
    return F.conv2d(x, state[f"{name}.weight"], state[f"{name}.bias"], **kwargs)


def _batch_norm(state: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                        state[f"{name}.bias"], training=False, eps=1e-5)


def _block_reference(state: dict[str, torch.Tensor], p: str, x: torch.Tensor) -> torch.Tensor:
    dim = x.shape[1]
    shortcut = _batch_norm(state, f"{p}.norm1", x)
    u = F.gelu(_conv(state, f"{p}.attn.proj_1", shortcut))
    gate = f"{p}.attn.spatial_gating_unit"
    attn = _conv(state, f"{gate}.conv0", u, padding=2, groups=dim)
    branches = [_conv(state, f"{gate}.conv{k}_2",
                      _conv(state, f"{gate}.conv{k}_1", attn, padding=(0, size // 2), groups=dim),
                      padding=(size // 2, 0), groups=dim) for k, size in enumerate(STRIPS)]
    attn = _conv(state, f"{gate}.conv3", attn + branches[0] + branches[1] + branches[2]) * u
    attn = _conv(state, f"{p}.attn.proj_2", attn) + shortcut
    x = x + state[f"{p}.layer_scale_1"].unsqueeze(-1).unsqueeze(-1) * attn
    hidden = _conv(state, f"{p}.mlp.fc1", _batch_norm(state, f"{p}.norm2", x))
    hidden = F.gelu(_conv(state, f"{p}.mlp.dwconv", hidden, padding=1, groups=hidden.shape[1]))
    return x + state[f"{p}.layer_scale_2"].unsqueeze(-1).unsqueeze(-1) * _conv(state, f"{p}.mlp.fc2", hidden)


def _mscan_reference(state: dict[str, torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    for i, depth in enumerate(DEPTHS):
        stage = i + 1
        if i == 0:
            x = _batch_norm(state, "patch_embed1.proj.1", _conv(state, "patch_embed1.proj.0", x, stride=2, padding=1))
            x = _conv(state, "patch_embed1.proj.3", F.gelu(x), stride=2, padding=1)
            x = _batch_norm(state, "patch_embed1.proj.4", x)
        else:
            x = _conv(state, f"patch_embed{stage}.proj", x, stride=2, padding=1)
            x = _batch_norm(state, f"patch_embed{stage}.norm", x)
        for j in range(depth):
            x = _block_reference(state, f"block{stage}.{j}", x)
        b, c, h, w = x.shape
        tokens = F.layer_norm(x.flatten(2).transpose(1, 2), (c,), state[f"norm{stage}.weight"],
                              state[f"norm{stage}.bias"])
        x = tokens.reshape(b, h, w, c).permute(0, 3, 1, 2)
        outs.append(x)
    return outs


def test_the_loaded_encoder_computes_what_mmsegmentations_mscan_computes(release, loaded):
    _, model, _, _ = loaded
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        stem = model.backbone.patch_embeds[0](x)
        maps = model.backbone(x)
    stem_reference = _batch_norm(release, "patch_embed1.proj.4", _conv(
        release, "patch_embed1.proj.3", F.gelu(_batch_norm(release, "patch_embed1.proj.1", _conv(
            release, "patch_embed1.proj.0", x, stride=2, padding=1))), stride=2, padding=1))
    torch.testing.assert_close(stem, stem_reference, rtol=0, atol=0)  # the same operations in the same order
    assert [m.shape[1:] for m in maps] == [(64, 16, 24), (128, 8, 12), (320, 4, 6), (512, 2, 3)]
    for ours, theirs in zip(maps, _mscan_reference(release, x)):
        # float32, sums in another order (the strip branches): close, not equal
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_offline_the_error_names_segnext_l_and_the_url(tmp_path):
    # A child process with empty caches and every HTTP(S) request sent to a closed local port: the download fails
    # at once whether or not this machine has network access, and nothing is fetched.
    code = (
        "import socket\n"
        "socket.setdefaulttimeout(10)\n"
        "from medseg_eval.train import build_model, PretrainedUnavailableError\n"
        "try:\n"
        "    build_model('segnext-l', 1, pretrained=True)\n"
        "except PretrainedUnavailableError as err:\n"
        "    print('---', err, sep='\\n')\n"  # after torch.hub's "Downloading: ..." line
    )
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "http_proxy", "https_proxy")}
    env.update({"TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "\n---\n" in out.stdout, out.stdout + out.stderr
    message = out.stdout.split("\n---\n", 1)[1]
    assert message.startswith("segnext-l: ")
    assert segnext.IMAGENET_WEIGHTS in message and "pretrained=False" in message
    assert not (tmp_path / "torch" / "hub" / "checkpoints" / "mscan_l_20230227-cef260d4.pth").exists()
