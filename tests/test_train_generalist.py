"""Generalist rows: ground-truth boxes, and a zero-shot run of a (small, randomly initialised) SamModel end to end."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg_eval.datasets import build as build_dataset
from medseg_eval.train.generalist import ground_truth_boxes, zero_shot

transformers = pytest.importorskip("transformers")


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
    config = transformers.SamConfig(
        vision_config={"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "output_channels": 16,
                       "image_size": 128, "patch_size": 16, "mlp_dim": 64, "global_attn_indexes": [1],
                       "window_size": 4, "num_pos_feats": 8},
        prompt_encoder_config={"hidden_size": 16, "image_size": 128, "patch_size": 16},
        mask_decoder_config={"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_dim": 32,
                             "iou_head_hidden_dim": 16})
    import torch

    torch.manual_seed(0)
    res = zero_shot("sam", "synthetic-lesions", model=transformers.SamModel(config), jitter=2, device="cpu")
    assert res.provenance["generalist"]["prompts"].endswith("(oracle)")
    assert res.provenance["generalist"]["jitter_px"] == 2
    assert res.per_case["case_id"].n_unique() == 20
    assert res.provenance["split"] == "test"


def test_sam2_takes_the_same_box_prompts():
    import torch

    from medseg_eval.train.generalist import segment_with_boxes

    torch.manual_seed(0)
    model = transformers.Sam2Model(transformers.Sam2Config()).eval()  # SAM 2 Hiera-T shape, random weights
    image = (np.random.default_rng(0).random((100, 120, 3)) * 255).astype(np.uint8)
    labels = segment_with_boxes(model, image, [(1, (10.0, 10.0, 60.0, 50.0)), (2, (70.0, 20.0, 110.0, 90.0))],
                                torch.device("cpu"))
    assert labels.shape == (100, 120) and set(np.unique(labels)) <= {0, 1, 2}
    assert segment_with_boxes(model, image, [], torch.device("cpu")).max() == 0
