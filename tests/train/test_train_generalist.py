"""Generalist rows: ground-truth boxes, a zero-shot run and a fine-tuning run of a (small, randomly initialised)
SamModel end to end, and SAM 2 behind the same prompts."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from medseg_eval import leaderboard
from medseg_eval.datasets import build as build_dataset
from medseg_eval.train import TrainConfig, train_fold
from medseg_eval.train.generalist import BoxPrompted, ground_truth_boxes, mask_boxes, segment_with_boxes, zero_shot

transformers = pytest.importorskip("transformers")
import torch  # after the skip: transformers brings torch

SMALL_SAM = {
    "vision_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "output_channels": 16,
                      "image_size": 128, "patch_size": 16, "mlp_dim": 64, "global_attn_indexes": [1],
                      "window_size": 4, "num_pos_feats": 8},
    "prompt_encoder_config": {"hidden_size": 16, "image_size": 128, "patch_size": 16},
    "mask_decoder_config": {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 32,
                            "iou_head_hidden_dim": 16}}


def small_sam() -> torch.nn.Module:
    torch.manual_seed(0)
    return transformers.SamModel(transformers.SamConfig(**SMALL_SAM))


def test_boxes_are_the_bounding_boxes_of_each_component_of_each_class():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = (rng.random((40, 50)) > 0.97).astype(np.uint8) * rng.integers(1, 3, (40, 50)).astype(np.uint8)
        mask = ndimage.binary_dilation(mask > 0, iterations=2) * np.maximum.accumulate(mask, axis=1)
        expected = []
        for class_id in (1, 2):
            labels, _ = ndimage.label(mask == class_id, structure=np.ones((3, 3)))
            for sl in ndimage.find_objects(labels):
                expected.append((class_id, (float(sl[1].start), float(sl[0].start), float(sl[1].stop - 1),
                                            float(sl[0].stop - 1))))
        assert ground_truth_boxes(mask.astype(np.uint8)) == expected
    jittered = ground_truth_boxes(mask.astype(np.uint8), jitter=3, rng=np.random.default_rng(1))
    for (_, (x0, y0, x1, y1)), (_, box) in zip(jittered, expected):
        assert all(abs(a - b) <= 3 for a, b in zip((x0, y0, x1, y1), box))
        assert 0 <= x0 <= 49 and 0 <= y1 <= 39


def test_zero_shot_with_a_small_sam_records_its_oracle_prompts(home):
    build_dataset("synthetic-lesions", progress=False)
    res = zero_shot("sam", "synthetic-lesions", model=small_sam(), jitter=2, device="cpu")
    assert res.provenance["generalist"]["prompts"].endswith("(oracle)")
    assert res.provenance["generalist"]["jitter_px"] == 2
    assert res.per_case["case_id"].n_unique() == 20
    assert res.provenance["split"] == "test"


def test_sam2_takes_the_same_box_prompts():
    torch.manual_seed(0)
    # A Hiera of SAM 2's design at a 256-pixel input (Hiera-T at 1024 takes 40 s here), random weights.
    config = transformers.Sam2Config(
        vision_config={"backbone_config": {"model_type": "sam2_hiera_det_model", "image_size": [256, 256],
                                           "blocks_per_stage": [1, 1, 2, 1], "global_attention_blocks": [3],
                                           "window_size_per_stage": [8, 4, 4, 2]},
                       "backbone_feature_sizes": [[64, 64], [32, 32], [16, 16]]},
        prompt_encoder_config={"image_size": 256})
    model = transformers.Sam2Model(config).eval()
    image = (np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8)
    labels = segment_with_boxes(model, image, [(1, (10.0, 10.0, 60.0, 50.0)), (2, (70.0, 20.0, 110.0, 90.0))],
                                torch.device("cpu"))
    assert labels.shape == (100, 120) and set(np.unique(labels)) <= {0, 1, 2}
    assert segment_with_boxes(model, image, [], torch.device("cpu")).max() == 0
    # Batched and trainable behind BoxPrompted, with an image that has no object.
    masks = torch.zeros(2, 64, 64, dtype=torch.long)
    masks[0, 5:20, 8:30] = 1
    logits = BoxPrompted(model, out_channels=1)(torch.zeros(2, 3, 64, 64), masks)
    assert logits.shape == (2, 1, 64, 64) and bool((logits[1] == -1e4).all())
    logits[0].sum().backward()
    assert all(p.grad is not None for p in model.vision_encoder.backbone.patch_embed.parameters())
    assert all(p.grad is None for p in model.prompt_encoder.parameters())  # frozen


def test_boxes_of_a_batch_are_each_images_boxes_in_order():
    rng = np.random.default_rng(3)
    masks = np.zeros((5, 30, 40), np.uint8)
    for mask in masks[:4]:
        for _ in range(rng.integers(1, 6)):
            y, x = rng.integers(0, 26), rng.integers(0, 36)
            mask[y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = rng.integers(1, 4)
    boxes, classes = mask_boxes(torch.from_numpy(masks).long(), 4)
    for i, mask in enumerate(masks):
        expected = ground_truth_boxes(mask)
        n = len(expected)
        assert [c for c, _ in expected] == classes[i, :n].tolist() and not classes[i, n:].any()
        assert [tuple(map(int, b)) for _, b in expected] == [tuple(b) for b in boxes[i, :n].tolist()]
    assert boxes.shape[1] == max(len(ground_truth_boxes(m)) for m in masks) and not classes[4].any()


def test_box_prompted_logits_paint_what_the_zero_shot_pipeline_paints():
    model = small_sam().eval()
    rng = np.random.default_rng(0)
    image = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[4:20, 6:30] = 1
    mask[40:60, 35:50] = 2
    mask[30:34, 2:8] = 2
    wrapped = BoxPrompted(model, out_channels=3, normalization=(0.5, 0.5)).eval()
    pixels = (torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None] - 0.5) / 0.5
    with torch.no_grad():
        logits = wrapped(pixels, torch.from_numpy(mask).long()[None])[0]
    assert bool((logits[0] == 0).all())
    for class_id in (1, 2):
        boxes = [b for b in ground_truth_boxes(mask) if b[0] == class_id]
        expected = segment_with_boxes(model, image, boxes, torch.device("cpu")) == class_id
        # Two float paths (NumPy-side vs. tensor-side normalisation) may flip pixels whose logit is ~0.
        assert ((logits[class_id] > 0).numpy() == expected).mean() > 0.99


def test_a_sam_fine_tuned_under_the_protocol_lands_on_the_board_as_oracle_prompted(synthetic_home, tmp_path,
                                                                                    monkeypatch):
    monkeypatch.setenv("MEDSEG_EVAL_HOME", str(synthetic_home))
    small_sam().save_pretrained(tmp_path / "sam-small")  # a local folder in the Hub's layout
    start = transformers.SamModel.from_pretrained(tmp_path / "sam-small")
    config = TrainConfig(model="sam", dataset="synthetic-lesions", image_size=64, max_epochs=2, batch_size=4,
                         max_steps_per_epoch=2, checkpoint=str(tmp_path / "sam-small"))
    assert config.pretrained is True  # a generalist always starts from its checkpoint
    run = train_fold(config, tmp_path / "out", device="cpu", progress=False)
    assert run.report.epochs_run == 2
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["generalist"]["prompts"].startswith("ground-truth boxes") and record["generalist"]["fine_tuned"]
    assert record["generalist"]["checkpoint"] == str(tmp_path / "sam-small")
    tuned = torch.load(tmp_path / "out" / "best.pt", weights_only=False)["model"]
    before = start.state_dict()
    # MedSAM's recipe: the prompt encoder stays frozen, image encoder and mask decoder learn.
    assert all(torch.equal(tuned[f"model.{k}"], v) for k, v in before.items() if k.startswith("prompt_encoder."))
    assert not torch.equal(tuned["model.vision_encoder.patch_embed.projection.weight"],
                           before["vision_encoder.patch_embed.projection.weight"])
    (bundle,) = (tmp_path / "out" / "board" / "synthetic-lesions").iterdir()
    meta = leaderboard.validate(bundle).meta
    assert meta["model"] == "sam (fine-tuned, ground-truth boxes, fold 0)" and meta["badge"] == "reproduced"
    assert "oracle" in meta["training_protocol"] and meta["citation"].startswith("Kirillov")
    leaderboard.build(tmp_path / "out" / "board")
    with pytest.raises(ValueError, match="generalists"):
        TrainConfig(model="unet", dataset="synthetic-lesions", checkpoint="x")
