"""ImageNet weights through transformers: our MiT and ConvNeXt hold transformers' weights and compute what
transformers' SegformerModel and ConvNextModel compute; offline, a clear error names the weights."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers")
from transformers import ConvNextConfig, ConvNextModel, SegformerConfig, SegformerModel

from medseg_eval.train.zoo import convnext, mit


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


def test_offline_the_error_names_the_weights_and_says_what_to_do(tmp_path):
    # A child process: huggingface_hub reads HF_HUB_OFFLINE when it is imported; nothing may be downloaded here.
    code = (
        "from medseg_eval.train import build_model, PretrainedUnavailableError\n"
        "for name in ('segformer-b3', 'vwformer-mit-b3', 'vwformer-convnext-s'):\n"
        "    try:\n"
        "        build_model(name, 1, pretrained=True)\n"
        "    except PretrainedUnavailableError as err:\n"
        "        print(err, end='\\n---\\n')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n---\n")[:-1]
    assert [line.split(":")[0] for line in lines] == ["segformer-b3", "vwformer-mit-b3", "vwformer-convnext-s"]
    assert "'nvidia/mit-b3'" in lines[0] and "'facebook/convnext-small-224'" in lines[2]
    assert all("pretrained=False" in line and "network access" in line for line in lines)
