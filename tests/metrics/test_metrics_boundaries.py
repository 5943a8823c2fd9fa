"""Boundary elements, found on bit-packed rows, against their pixel-by-pixel definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medseg_eval.metrics import compiled
from medseg_eval.metrics.boundaries import boundaries, contour_length_table


def _outside_is_background(mask: np.ndarray) -> np.ndarray:
    return np.pad(mask, 1)


def _edge_pixels(mask: np.ndarray) -> set[tuple[int, int]]:
    """Foreground pixels with a 4-neighbour outside the mask (or outside the image)."""
    m = _outside_is_background(mask)
    h, w = mask.shape
    return {(i, j) for i in range(h) for j in range(w)
            if m[i + 1, j + 1] and not (m[i, j + 1] and m[i + 2, j + 1] and m[i + 1, j] and m[i + 1, j + 2])}


def _corner_codes(mask: np.ndarray) -> dict[tuple[int, int], int]:
    """DeepMind's code ``8*tl + 4*tr + 2*bl + br`` of every corner whose four pixels differ."""
    m = _outside_is_background(mask).astype(int)
    h, w = mask.shape
    codes = {}
    for i in range(h + 1):
        for j in range(w + 1):
            code = 8 * m[i, j] + 4 * m[i, j + 1] + 2 * m[i + 1, j] + m[i + 1, j + 1]
            if code not in (0, 15):
                codes[(i, j)] = code
    return codes


@pytest.mark.parametrize("convention", ["surface-distance", "medpy"])
@pytest.mark.parametrize("width", [1, 5, 6, 7, 8, 13, 14, 15, 22, 30, 31, 64, 70])  # W + 2 across multiples of 8
@pytest.mark.parametrize("listed_by", ["kernel", "torch"])  # the CPU's compiled scan, or CUDA's torch code
def test_boundary_elements_match_their_pixelwise_definition(convention: str, width: int, listed_by: str,
                                                            monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ON_CPU", listed_by == "kernel")
    rng = np.random.default_rng(width)
    n, h = 3, 7
    masks = rng.random((2, n, h, width)) < rng.random((2, n, 1, 1))  # sparse to full
    masks[0, 0, :, -1] = True  # the last column, whose right neighbour is the frame
    masks[1, 1] = masks[0, 1]  # a pair with every element shared
    spacing = torch.tensor(rng.choice([0.5, 1.0, 1.9], size=(n, 2)))
    b = boundaries(torch.from_numpy(masks[0]), torch.from_numpy(masks[1]), spacing, convention)

    table = contour_length_table(spacing.repeat(2, 1)).numpy()
    images = [*masks[0], *masks[1]]
    want, weights, shared = [], [], []
    for image, mask in enumerate(images):
        partner = images[(image + n) % (2 * n)]
        if convention == "surface-distance":
            codes, theirs = _corner_codes(mask), _corner_codes(partner)
            weights += [table[image, codes[e]] for e in sorted(codes)]
        else:
            codes, theirs = _edge_pixels(mask), _edge_pixels(partner)
            weights += [1.0] * len(codes)
        want += [(image, *e) for e in sorted(codes)]
        shared += [e in theirs for e in sorted(codes)]
    got = list(zip(b.image.tolist(), b.row.tolist(), b.col.tolist()))
    assert got == want
    np.testing.assert_array_equal(b.weight.numpy(), weights)
    assert b.on_partner.tolist() == shared
    if convention == "surface-distance":  # each element's rank among its image's 16 lengths orders the lengths
        for i in range(2 * n):
            mine = b.image == i
            rank, weight = b.weight_rank[mine].long(), b.weight[mine]
            assert (weight[rank.argsort(stable=True)].diff() >= 0).all()
            assert all(len(weight[rank == r].unique()) == 1 for r in rank.unique())
    else:
        assert b.weight_rank is None
    assert b.shape == ((h + 1, width + 1) if convention == "surface-distance" else (h, width))


def test_masks_at_any_offset_in_memory_are_packed() -> None:
    """Bytes are read as int64 words, which must be whole and aligned: views that are not are copied."""
    rng = np.random.default_rng(0)
    flat = torch.from_numpy(rng.random(1 + 2 * 3 * 16) < 0.5)
    unaligned = flat[1:].view(2, 3, 16)  # contiguous, at an odd offset
    strided = torch.from_numpy(rng.random((2, 3, 32)) < 0.5)[:, :, ::2]  # 16 wide, not contiguous
    for masks in (unaligned, strided):
        want = boundaries(masks.clone(), masks.flip(0).clone(), torch.ones(2, 2, dtype=torch.float64), "medpy")
        got = boundaries(masks, masks.flip(0), torch.ones(2, 2, dtype=torch.float64), "medpy")
        assert torch.equal(got.row, want.row) and torch.equal(got.col, want.col)
