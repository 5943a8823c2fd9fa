"""Cases of a canonical dataset as tensors, the shipped folds, and the augmentation shared by every model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from .. import load_dataset
from ..datasets import get_spec, shipped_manifest
from ..leaderboard.bundle import expected_manifest


@dataclass
class Cases:
    """Images ``[N, 3, S, S]`` (float in [0, 1]) and label maps ``[N, S, S]`` (int64) at the training size,
    with each case's id and original size."""

    case_ids: list[str]
    images: torch.Tensor
    masks: torch.Tensor
    sizes: list[tuple[int, int]]


def fold_ids(dataset: str, fold: int) -> tuple[list[str], list[str]]:
    """(training ids, held-out ids) of the shipped 5-fold split of ``dataset``'s training cases."""
    spec = get_spec(dataset)
    manifest = shipped_manifest(spec.name)
    manifest = manifest if manifest is not None else expected_manifest(spec.name)
    train = manifest.filter(pl.col("split") == "train")
    held = sorted(train.filter(pl.col("fold") == fold)["case_id"].to_list())
    rest = sorted(train.filter(pl.col("fold") != fold)["case_id"].to_list())
    if not held or not rest:
        raise ValueError(f"{spec.name}: fold {fold} leaves no cases on one side ({len(rest)} train, {len(held)} held out).")
    return rest, held


def load_cases(dataset: str, split: str, size: int, case_ids: list[str] | None = None) -> Cases:
    """Read ``split`` of the canonical dataset (only ``case_ids`` when given), resized to ``size`` x ``size``."""
    rows = load_dataset(dataset, split=split)
    if case_ids is not None:
        wanted = set(case_ids)
        rows = rows.select([i for i, c in enumerate(rows["case_id"]) if c in wanted])
    ids, images, masks, sizes = [], [], [], []
    for row in rows:
        image = np.asarray(row["image"].convert("RGB"), dtype=np.float32) / 255.0
        mask = np.asarray(row["mask"], dtype=np.int64)
        sizes.append(mask.shape)
        ids.append(row["case_id"])
        image_t = torch.from_numpy(image).permute(2, 0, 1)[None]
        images.append(F.interpolate(image_t, size=(size, size), mode="bilinear", align_corners=False)[0])
        masks.append(F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="nearest")[0, 0]
                     .long())
    order = np.argsort(ids)
    return Cases([ids[i] for i in order], torch.stack([images[i] for i in order]),
                 torch.stack([masks[i] for i in order]), [sizes[i] for i in order])


def augment(images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips, rotations by multiples of 90 degrees and brightness/contrast jitter, drawn per sample from ``generator``."""
    n = images.shape[0]
    draws = torch.rand(n, 5, generator=generator)
    out_images, out_masks = [], []
    for i in range(n):
        image, mask = images[i], masks[i]
        if draws[i, 0] < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        if draws[i, 1] < 0.5:
            image, mask = image.flip(-2), mask.flip(-2)
        turns = int(draws[i, 2] * 4) % 4
        image, mask = torch.rot90(image, turns, (-2, -1)), torch.rot90(mask, turns, (-2, -1))
        brightness, contrast = 0.2 * (draws[i, 3] - 0.5), 1 + 0.2 * (draws[i, 4] - 0.5)
        image = ((image - image.mean()) * contrast + image.mean() + brightness).clamp(0, 1)
        out_images.append(image)
        out_masks.append(mask)
    return torch.stack(out_images), torch.stack(out_masks)
