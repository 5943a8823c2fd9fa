"""Cases of a canonical dataset as tensors, the shipped folds, and the augmentation shared by every model.

Only :func:`fold_ids` and :func:`load_cases` read the canonical dataset (polars, Hugging Face
``datasets``), so they import it when called: the training loop runs with torch alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


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
    import polars as pl

    from ..datasets import expected_manifest, get_spec

    spec = get_spec(dataset)
    manifest = expected_manifest(spec.name)
    train = manifest.filter(pl.col("split") == "train")
    held = sorted(train.filter(pl.col("fold") == fold)["case_id"].to_list())
    rest = sorted(train.filter(pl.col("fold") != fold)["case_id"].to_list())
    if not held or not rest:
        raise ValueError(f"{spec.name}: fold {fold} leaves no cases on one side ({len(rest)} train, {len(held)} held out).")
    return rest, held


def load_cases(dataset: str, split: str, size: int, case_ids: list[str] | None = None) -> Cases:
    """Read ``split`` of the canonical dataset (only ``case_ids`` when given), resized to ``size`` x ``size``."""
    from .. import load_dataset

    rows = load_dataset(dataset, split=split)
    if case_ids is not None:
        wanted = set(case_ids)
        rows = rows.select([i for i, c in enumerate(rows["case_id"]) if c in wanted])
    return to_cases(((row["case_id"], np.asarray(row["image"].convert("RGB")), np.asarray(row["mask"]))
                     for row in rows), size)


def to_cases(items: Iterable[tuple[str, np.ndarray, np.ndarray]], size: int) -> Cases:
    """:class:`Cases` from ``(case_id, RGB image [H, W, 3] uint8, label map [H, W])``, sorted by case id.

    Images are scaled to [0, 1] and resized bilinearly, label maps by nearest neighbour.

    Examples
    --------
    >>> cases = to_cases([("b", np.zeros((40, 50, 3), np.uint8), np.ones((40, 50), np.uint8)),
    ...                   ("a", np.full((30, 30, 3), 255, np.uint8), np.zeros((30, 30), np.uint8))], 32)
    >>> cases.case_ids, tuple(cases.images.shape), cases.sizes
    (['a', 'b'], (2, 3, 32, 32), [(30, 30), (40, 50)])
    """
    ids, images, masks, sizes = [], [], [], []
    for case_id, image, mask in items:
        mask = np.asarray(mask, dtype=np.int64)
        sizes.append(mask.shape)
        ids.append(case_id)
        image_t = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        images.append(F.interpolate(image_t, size=(size, size), mode="bilinear", align_corners=False)[0])
        masks.append(F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="nearest")[0, 0]
                     .long())
    if not ids:
        raise ValueError("no cases to train or predict on: the split (or the case ids asked for) is empty.")
    order = np.argsort(ids)
    return Cases([ids[i] for i in order], torch.stack([images[i] for i in order]),
                 torch.stack([masks[i] for i in order]), [tuple(sizes[i]) for i in order])


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
