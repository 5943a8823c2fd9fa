"""ImageNet weights through transformers: our MiT, ConvNeXt and HiFormer branches hold transformers' weights and
compute what transformers' SegformerModel, ConvNextModel, SwinModel and ResNetModel compute; offline, a clear
error names the weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
from transformers import (
    ConvNextConfig,
    ConvNextModel,
    ResNetConfig,
    ResNetModel,
    SegformerConfig,
    SegformerModel,
    SwinConfig,
    SwinModel,
)

from medseg_eval.train.zoo import convnext, hiformer, missformer, mit, unet
from tests.support.http_server import serve


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory):
    """A random MiT (2 blocks in stage 2) saved by transformers: a local folder in Hugging Face layout."""
    torch.manual_seed(0)
    config = SegformerConfig(depths=[1, 2, 1, 1], hidden_sizes=[32, 64, 160, 256], num_attention_heads=[1, 2, 5, 8])
    folder = tmp_path_factory.mktemp("mit")
    SegformerModel(config).save_pretrained(folder)
    return folder


def test_our_mit_with_transformers_weights_computes_what_transformers_computes(segformer_dir):
    reference = SegformerModel.from_pretrained(segformer_dir).eval()
    ours = mit.MixTransformer(embed_dims=(32, 64, 160, 256), depths=(1, 2, 1, 1), heads=(1, 2, 5, 8)).eval()
    mit.load_imagenet(ours, str(segformer_dir))
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x, output_hidden_states=True).hidden_states
        got = ours(x)
    assert len(got) == len(expected) == 4
    for e, g in zip(expected, got):
        # LayerNorm eps: 1e-6 here as in NVlabs' code, 1e-5 in transformers; nothing else differs.
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def test_a_checkpoint_of_another_size_is_refused(segformer_dir):
    with pytest.raises(RuntimeError, match="size mismatch"):
        mit.load_imagenet(mit.mit_b3(), str(segformer_dir))


def test_our_convnext_with_transformers_weights_computes_what_transformers_computes(tmp_path):
    torch.manual_seed(0)
    config = ConvNextConfig(depths=[1, 2, 1, 1], hidden_sizes=[16, 32, 64, 128], layer_scale_init_value=0.5)
    ConvNextModel(config).save_pretrained(tmp_path)
    reference = ConvNextModel.from_pretrained(tmp_path).eval()
    ours = convnext.ConvNeXt(depths=(1, 2, 1, 1), dims=(16, 32, 64, 128)).eval()
    fresh = {k: v.clone() for k, v in ours.norms.state_dict().items()}
    convnext.load_imagenet(ours, str(tmp_path))
    x = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x, output_hidden_states=True).hidden_states[1:]  # [0] is the stem's output
        got = []
        for downsample, stage in zip(ours.downsamples, ours.stages):
            x = stage(downsample(x))
            got.append(x)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)  # LayerNorm eps 1e-6 here, 1e-12 there
    assert all(torch.equal(v, ours.norms.state_dict()[k]) for k, v in fresh.items()), "the stage norms start fresh"


def test_hiformer_branches_with_transformers_weights_compute_what_swin_and_resnet_compute(tmp_path):
    # Random weights of the real shapes (Swin-T, ResNet-50), saved by transformers as local Hub-layout folders.
    torch.manual_seed(0)
    swin = SwinModel(SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7))
    resnet = ResNetModel(ResNetConfig(depths=[3, 4, 6, 3], hidden_sizes=[256, 512, 1024, 2048], layer_type="bottleneck"))
    for module in resnet.modules():  # non-trivial batch-norm statistics, so that a swapped buffer shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    swin.save_pretrained(tmp_path / "swin")
    resnet.save_pretrained(tmp_path / "resnet")
    swin, resnet = swin.eval(), resnet.eval()
    ours = hiformer.HiFormer(2).eval()
    fresh = {k: v.clone() for k, v in ours.state_dict().items() if k.startswith(("to_swin", "level_", "predict"))}
    hiformer.load_imagenet(ours, swin=str(tmp_path / "swin"), resnet=str(tmp_path / "resnet"))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = resnet(x, output_hidden_states=True).hidden_states[1:4]
        c = ours.stem(x)
        for stage, e in zip(ours.cnn, expected):
            c = stage(c)
            torch.testing.assert_close(c, e, atol=1e-4, rtol=1e-4)
        tokens = torch.randn(2, 56 * 56, 96, generator=torch.Generator().manual_seed(2))
        for i, size in enumerate(ours.sizes):
            reference = tokens
            for block in swin.encoder.layers[i].blocks:
                reference = block(reference, (size, size))[0]  # (hidden states, attention weights)
            torch.testing.assert_close(ours.swin[i](tokens), reference, atol=1e-4, rtol=1e-4)
            if i < 2:
                merged = swin.encoder.layers[i].downsample(reference, (size, size))
                torch.testing.assert_close(ours.merge[i](reference, size), merged, atol=1e-4, rtol=1e-4)
                tokens = merged
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in fresh.items()), "projections, DLF, decoder start fresh"


def test_unet_encoder_with_vgg13_weights_computes_what_vgg13_computes(tmp_path):
    from safetensors.torch import save_file

    # torchvision's VGG13 ("B": two 3x3 convolutions per level, 64-512 wide, max-pools between) as a plain
    # Sequential with random weights, saved as timm's Hub repo holds it (features.*, pre_logits.*, head.*).
    torch.manual_seed(0)
    layers, channels = [], 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"):
        if width == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(channels, width, 3, padding=1), torch.nn.ReLU()]
            channels = width
    vgg = torch.nn.Sequential(*layers).eval()
    state = {f"features.{k}": v for k, v in vgg.state_dict().items()}
    state |= {"pre_logits.fc1.weight": torch.zeros(8, 512, 7, 7), "head.fc.weight": torch.zeros(10, 8)}
    save_file(state, tmp_path / "model.safetensors")
    ours = unet.UNet(2).eval()
    fresh = {k: v.clone() for k, v in ours.state_dict().items() if not k.startswith("down.")}
    unet.load_imagenet(ours, str(tmp_path))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = x
        for level, end in enumerate((4, 9, 14, 19)):  # each level's output, before its max-pool
            y = ours.down[level](y if level == 0 else ours.pool(y))
            torch.testing.assert_close(y, vgg[:end](x))
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in fresh.items()), "bottleneck and decoder start fresh"


def test_missformer_encoder_gets_the_mit_b1_weights_our_mit_computes_with(tmp_path):
    torch.manual_seed(0)
    SegformerModel(SegformerConfig(depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 320, 512],
                                   num_attention_heads=[1, 2, 5, 8])).save_pretrained(tmp_path)
    reference = mit.MixTransformer(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), heads=(1, 2, 5, 8))
    mit.load_imagenet(reference, str(tmp_path))  # checked against transformers above
    ours = missformer.MISSFormer(1)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    missformer.load_imagenet(ours, str(tmp_path))
    after, expected = ours.state_dict(), reference.state_dict()
    copied = {k for k in after if k.startswith("encoder.") and ".ffn.norm." not in k}
    assert len(copied) == len(expected) == 176
    for key, value in expected.items():
        assert torch.equal(after[key.replace("stages.", "encoder.", 1).replace(".attn.reduce_norm.", ".attn.norm.")],
                           value)
    assert all(torch.equal(after[k], before[k]) for k in after if k not in copied), "FFN norms, bridge, decoder fresh"


def test_released_checkpoints_load_from_a_url_checked_by_their_hash_a_folder_or_a_file(tmp_path, monkeypatch):
    import hashlib

    from medseg_eval.train.zoo import PretrainedUnavailableError
    from medseg_eval.train.zoo.weights import load_checkpoint

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    weights = {"stem.weight": torch.arange(6.0).reshape(2, 3)}
    (tmp_path / "site").mkdir()
    torch.save({"state_dict": weights, "epoch": 300}, tmp_path / "plain.pth")  # as training scripts save them
    digest = hashlib.sha256((tmp_path / "plain.pth").read_bytes()).hexdigest()[:8]
    (tmp_path / "plain.pth").rename(tmp_path / "site" / f"enc_1k-{digest}.pth")
    (tmp_path / "site" / "enc_1k-00000000.pth").write_bytes((tmp_path / "site" / f"enc_1k-{digest}.pth").read_bytes())
    with serve(tmp_path / "site") as server:
        got = load_checkpoint(f"{server.url}/enc_1k-{digest}.pth", "m")
        assert torch.equal(got["stem.weight"], weights["stem.weight"]) and list(got) == ["stem.weight"]
        assert load_checkpoint(f"{server.url}/enc_1k-{digest}.pth", "m").keys() == got.keys()  # cached
        assert len(server.requests) == 1
        with pytest.raises(RuntimeError, match="hash"):
            load_checkpoint(f"{server.url}/enc_1k-00000000.pth", "m")
        with pytest.raises(PretrainedUnavailableError, match="m: cannot load the ImageNet weights"):
            load_checkpoint(f"{server.url}/missing-12345678.pth", "m")
    assert load_checkpoint(str(tmp_path / "site"), "m", f"enc_1k-{digest}.pth").keys() == got.keys()
    assert load_checkpoint(str(tmp_path / "site" / f"enc_1k-{digest}.pth"), "m").keys() == got.keys()
    # Never unpickled beyond tensors: a file holding other objects is refused, saying what to do.
    torch.save({"state_dict": weights, "meta": Path("x")}, tmp_path / "with-objects.pth")
    with pytest.raises(PretrainedUnavailableError, match="holds more than tensors"):
        load_checkpoint(str(tmp_path / "with-objects.pth"), "m")


def test_offline_the_error_names_the_weights_and_says_what_to_do(tmp_path):
    # A child process: huggingface_hub reads HF_HUB_OFFLINE when it is imported; nothing may be downloaded here.
    code = (
        "from medseg_eval.train import build_model, PretrainedUnavailableError\n"
        "for name in ('segformer-b3', 'vwformer-mit-b3', 'vwformer-convnext-s', 'hiformer-b', 'unet', 'missformer',\n"
        "             'internimage-t-upernet', 'transnext-tiny-upernet'):\n"
        "    try:\n"
        "        build_model(name, 1, pretrained=True)\n"
        "    except PretrainedUnavailableError as err:\n"
        "        print(err, end='\\n---\\n')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TRANSFORMERS_OFFLINE": "1",
           "TORCH_HOME": str(tmp_path / "torch")}
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n---\n")[:-1]
    assert [line.split(":")[0] for line in lines] == ["segformer-b3", "vwformer-mit-b3", "vwformer-convnext-s",
                                                     "hiformer-b", "unet", "missformer", "internimage-t-upernet",
                                                     "transnext-tiny-upernet"]
    assert "'nvidia/mit-b3'" in lines[0] and "'facebook/convnext-small-224'" in lines[2]
    assert "'microsoft/resnet-50'" in lines[3] and "'timm/vgg13.tv_in1k'" in lines[4]
    assert "'nvidia/mit-b1'" in lines[5]
    assert "'OpenGVLab/InternImage' (file internimage_t_1k_224.pth)" in lines[6]
    assert "'DaiShiResearch/transnext-tiny-224-1k' (file transnext_tiny_224_1k.pth)" in lines[7]
    assert all("pretrained=False" in line and "network access" in line for line in lines)
