"""Boundary elements of mask pairs, found on bit-packed rows, as flat lists.

Everything runs batched on ``[N, H, W]`` masks (N = cases x classes) with torch ops only, so the
same code runs on CPU and CUDA. Boundary elements are found on masks packed 8 pixels to a byte
(:func:`pack_rows`), by bitwise operations on whole rows, and listed by a scan of their int64 words,
then of the bytes of the words that hold any. Each convention names its elements: edge pixels
(MONAI, MedPy) or pixel corners weighted by contour length (DeepMind's surface-distance).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import compiled
from .conventions import CONVENTION_SPECS
from .element_lists import list_elements

# Bit k of byte m of a packed row is column 8m + k. The eight 0/1 bytes of an int64 word, multiplied
# by this, land in order in the word's top byte: no two partial products share a bit or carry into it.
_GATHER_BITS = 0x0102040810204080


def pack_rows(masks: torch.Tensor) -> torch.Tensor:
    """Bool masks ``[N, H, W]`` packed along rows: uint8 ``[N, H, ceil(W / 8)]``, column ``c`` in bit
    ``c % 8`` of byte ``c // 8``.

    Examples
    --------
    >>> pack_rows(torch.tensor([[[0, 1, 1, 0, 0, 0, 0, 0, 1]]], dtype=torch.bool)).tolist()
    [[[6, 1]]]
    """
    if masks.shape[-1] % 8:
        masks = torch.nn.functional.pad(masks, (0, -masks.shape[-1] % 8))
    elif masks.storage_offset() % 8 or not masks.is_contiguous():
        masks = masks.clone(memory_format=torch.contiguous_format)  # int64 words: whole, aligned bytes
    words = masks.view(torch.uint8).view(torch.int64)
    # The conversion keeps the low byte: the top byte of the product.
    return (words * _GATHER_BITS).bitwise_right_shift_(56).to(torch.uint8)


def framed_bits(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Both stacks of bool masks ``[N, H, W]``, packed (:func:`pack_rows`) in one frame of zeros.

    Outside the image counts as background: the frame is a row above and below and a byte (8
    columns) left and right. Returns uint8 ``[2N, H+2, ceil(W / 8) + 2]``, ``pred`` then ``target``,
    pixel ``(i, j)`` at row ``i + 1``, column ``j + 8``. Boundary elements are then found by bitwise
    operations on 8 pixels at a time.

    Examples
    --------
    >>> m = torch.ones(1, 1, 3, dtype=torch.bool)
    >>> framed_bits(m, ~m)[:, :, 1].tolist()  # columns 8-15 of each row: the pixels
    [[0, 7, 0], [0, 0, 0]]
    """
    bits = empty_frame(len(pred), pred.shape[1], pred.shape[2], pred.device)
    frame_pairs(bits, 0, pred, target)
    return bits


def empty_frame(pairs: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """The frame of :func:`framed_bits` for ``pairs`` mask pairs of ``height x width``, all zeros.

    Examples
    --------
    >>> empty_frame(2, 5, 12, torch.device("cpu")).shape  # 4 images, rows framed, 2 bytes framed
    torch.Size([4, 7, 4])
    """
    return torch.zeros(2 * pairs, height + 2, -(-width // 8) + 2, dtype=torch.uint8, device=device)


def frame_pairs(bits: torch.Tensor, start: int, pred: torch.Tensor, target: torch.Tensor) -> None:
    """Pack the mask pairs ``start, start + 1, ...`` (bool ``[n, H, W]`` each) into their places in a
    frame of :func:`empty_frame`. Filling a frame a few pairs at a time keeps each pair's bytes in
    the cache between the passes that read them (the counts, then the packing).

    Examples
    --------
    >>> bits = empty_frame(2, 1, 3, torch.device("cpu"))
    >>> frame_pairs(bits, 1, torch.ones(1, 1, 3, dtype=torch.bool), torch.zeros(1, 1, 3, dtype=torch.bool))
    >>> bits[:, 1, 1].tolist()  # pair 1's prediction is image 1, its ground truth image 3
    [0, 7, 0, 0]
    """
    pairs, stop = len(bits) // 2, start + len(pred)
    bits[start:stop, 1:-1, 1:-1] = pack_rows(pred)
    bits[pairs + start:pairs + stop, 1:-1, 1:-1] = pack_rows(target)


def _next_column(bits: torch.Tensor) -> torch.Tensor:
    """Packed rows shifted one column left: column ``c`` holds what column ``c + 1`` held."""
    carry = torch.nn.functional.pad(bits[..., 1:], (0, 1))
    return (bits >> 1) | (carry << 7)


def _previous_column(bits: torch.Tensor) -> torch.Tensor:
    """Packed rows shifted one column right: column ``c`` holds what column ``c - 1`` held."""
    carry = torch.nn.functional.pad(bits[..., :-1], (1, 0))
    return (bits << 1) | (carry >> 7)


def edge_pixels(bits: torch.Tensor) -> torch.Tensor:
    """Edge pixels: the mask minus its erosion by the 4-neighbour cross (MONAI, MedPy).

    ``bits`` are framed, packed masks (:func:`framed_bits`), so foreground on the image border is
    boundary. Returns the packed edge pixels of the frame's rows ``1..H``: pixel ``(i, j)`` at row
    ``i``, column ``j + 8``.

    Examples
    --------
    >>> m = torch.ones(1, 3, 3, dtype=torch.bool)
    >>> edge_pixels(framed_bits(m, m))[0, :, 1].tolist()  # all but the centre pixel
    [7, 5, 7]
    """
    mid = bits[:, 1:-1]
    interior = bits[:, :-2] & bits[:, 2:] & _next_column(mid) & _previous_column(mid)
    return mid & ~interior


def corner_elements(bits: torch.Tensor) -> torch.Tensor:
    """Boundary elements on the ``(H+1) x (W+1)`` pixel-corner lattice (DeepMind).

    Corner ``(i, j)`` is the top-left corner of pixel ``(i, j)``; it is a boundary element when
    the four pixels around it are neither all inside nor all outside. ``bits`` are framed, packed
    masks (:func:`framed_bits`), where those four pixels are at rows ``i, i+1`` and columns
    ``j+7, j+8``; returns the packed elements, corner ``(i, j)`` at row ``i``, column ``j + 7``.

    Examples
    --------
    >>> m = torch.zeros(1, 2, 3, dtype=torch.bool); m[0, 0, 1] = True
    >>> corner_elements(framed_bits(m, m))[0, :, 1].tolist()  # corners 1 and 2 (bits 0, 1) of rows 0, 1
    [3, 3, 0]
    """
    # The four pixels agree when each row's two agree and the left pixels of both rows agree.
    across = bits ^ _next_column(bits)
    return across[:, :-1] | across[:, 1:] | (bits[:, :-1] ^ bits[:, 1:])


def _gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for a 1-D table: ``index_select``, on the CPU about 2.5x faster than ``take``
    and 4x faster than indexing, and it takes int32 indices."""
    return table.index_select(0, index.flatten()).view(index.shape)


def _set_bits(bits: torch.Tensor) -> torch.Tensor:
    """Flat indices of the set bits of packed rows, ascending (``8 * byte + bit``)."""
    flat = bits.flatten()
    flat = torch.nn.functional.pad(flat, (0, -len(flat) % 8))
    # A scan of int64 words (64 columns each: most are 0), then of the bytes of those that are not.
    word = flat.view(torch.int64).nonzero().squeeze(1)
    in_word, byte = flat.view(-1, 8).index_select(0, word).nonzero(as_tuple=True)
    at = _gather(word, in_word) * 8 + byte
    each = (_gather(flat, at)[:, None] >> torch.arange(8, dtype=torch.uint8, device=bits.device)) & 1
    byte, bit = each.nonzero(as_tuple=True)
    return _gather(at, byte) * 8 + bit


def _bits_at(bits: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
    """The bits at flat indices ``at`` (``8 * byte + bit``) of packed rows, as uint8 0 or 1."""
    return (_gather(bits.flatten(), at >> 3) >> (at & 7).to(torch.uint8)) & 1


def neighbour_codes(bits: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """2x2 neighbourhood codes of corners, as DeepMind computes them.

    ``8*top_left + 4*top_right + 2*bottom_left + 1*bottom_right`` over the four pixels around the
    corner, what ``surface_distance`` gets by correlating the mask with ``[[8, 4], [2, 1]]``.
    ``bits`` are framed, packed masks (:func:`framed_bits`), ``corners`` the flat bit indices of
    the corners' top-left pixels in them.

    Examples
    --------
    >>> m = torch.zeros(1, 2, 3, dtype=torch.bool); m[0, 0, 1] = True
    >>> bits = framed_bits(m, m)  # rows of 3 bytes (24 columns); pixel (0, 1) is row 1, column 9
    >>> neighbour_codes(bits, torch.tensor([8, 9, 24 + 8, 24 + 9])).tolist()  # corners (0, 1), (0, 2), (1, 1), (1, 2)
    [1, 2, 4, 8]
    """
    below = 8 * bits.shape[2]
    return (8 * _bits_at(bits, corners) + 4 * _bits_at(bits, corners + 1) + 2 * _bits_at(bits, corners + below)
            + _bits_at(bits, corners + below + 1)).long()


def contour_length_table(spacing: torch.Tensor) -> torch.Tensor:
    """Contour length of each 2x2 code, per case: float64 ``[N, 16]``.

    DeepMind's marching-squares table: one or three corners inside cut the square diagonally
    (half a diagonal), two adjacent corners cut it straight (one pixel side), two opposite corners
    cut it twice. The diagonal is computed in NumPy so that it is the correctly rounded value
    DeepMind's ``math.sqrt`` gives.

    Examples
    --------
    >>> contour_length_table(torch.tensor([[1.0, 2.0]], dtype=torch.float64))[0, [3, 5, 6]].tolist()
    [2.0, 1.0, 2.23606797749979]
    """
    s = spacing.cpu().numpy()
    vertical, horizontal = s[:, 0], s[:, 1]
    diag = 0.5 * np.sqrt(vertical**2 + horizontal**2)
    table = np.zeros((len(s), 16))
    table[:, [1, 2, 4, 8, 7, 11, 13, 14]] = diag[:, None]
    table[:, [3, 12]] = horizontal[:, None]
    table[:, [5, 10]] = vertical[:, None]
    table[:, [6, 9]] = 2 * diag[:, None]
    return torch.from_numpy(table)


@dataclass(frozen=True)
class Boundaries:
    """The boundary elements of N mask pairs as flat lists, ready for the distance search.

    Images ``0..N-1`` are the predictions and ``N..2N-1`` their ground truths, in the same order;
    elements are listed by image, then row-major.
    """

    image: torch.Tensor  # per element: its image, row and column
    row: torch.Tensor
    col: torch.Tensor
    weight: torch.Tensor  # per element, float64: its contour length (surfels) or 1 (edge pixels)
    # Per element (surfels; None for edge pixels): the rank of its length among its image's 16, int16.
    weight_rank: torch.Tensor | None
    on_partner: torch.Tensor  # per element: also an element of the partner image (distance 0)
    spacing: torch.Tensor  # per image, float64 [2N, 2]
    pairs: int
    shape: tuple[int, int]  # rows and columns of the element lattice (every element lies inside)


def boundaries(pred: torch.Tensor, target: torch.Tensor, spacing: torch.Tensor, convention: str) -> Boundaries:
    """The boundary elements of both masks of N pairs, as the convention defines them.

    Parameters
    ----------
    pred, target
        Bool ``[N, H, W]``.
    spacing
        Float64 ``[N, 2]`` on the masks' device.
    convention
        ``"surface-distance"`` (pixel corners weighted by contour length), ``"monai"`` or
        ``"medpy"`` (edge pixels, weight 1).

    Examples
    --------
    >>> p = torch.zeros(1, 4, 4, dtype=torch.bool); p[0, 1:3, 1:3] = True
    >>> b = boundaries(p, p, torch.ones(1, 2, dtype=torch.float64), "medpy")
    >>> b.image.tolist(), bool(b.on_partner.all())
    ([0, 0, 0, 0, 1, 1, 1, 1], True)
    """
    return frame_boundaries(framed_bits(pred, target), pred.shape[1:], spacing, convention)


def frame_boundaries(bits: torch.Tensor, shape: tuple[int, int], spacing: torch.Tensor, convention: str) -> Boundaries:
    """:func:`boundaries` of the mask pairs packed in ``bits`` (:func:`framed_bits`), of ``shape`` ``(H, W)``.

    Examples
    --------
    >>> p = torch.zeros(1, 4, 4, dtype=torch.bool); p[0, 1:3, 1:3] = True
    >>> b = frame_boundaries(framed_bits(p, p), (4, 4), torch.ones(1, 2, dtype=torch.float64), "surface-distance")
    >>> len(b.image), b.shape  # the 8 corners around the square, in each image; the corner lattice
    (16, (5, 5))
    """
    n, (h, w) = len(bits) // 2, shape
    surfels = CONVENTION_SPECS[convention].boundary == "surfels"
    elements = corner_elements(bits) if surfels else edge_pixels(bits)
    table = contour_length_table(spacing).to(bits.device).repeat(2, 1) if surfels else None
    ranks = length_ranks(table) if surfels else None
    shift = 7 if surfels else 8  # where the frame puts corner (i, j) and pixel (i, j): column j + shift
    listed = list_elements if compiled.used(bits) else _listed
    image, row, col, on_partner, weight, weight_rank = listed(elements, shift, bits if surfels else None, table, ranks)
    shape = (h + 1, w + 1) if surfels else (h, w)
    return Boundaries(image, row, col, weight, weight_rank, on_partner, spacing.repeat(2, 1), n, shape)


def length_ranks(table: torch.Tensor) -> torch.Tensor:
    """Each contour length's rank among its image's 16 (:func:`contour_length_table`), int16 ``[N, 16]``:
    lengths ordered by a small integer key, which sorts several times faster; equal lengths in code order.

    Examples
    --------
    >>> length_ranks(torch.tensor([[0.0, 0.7, 0.7, 1.0] + [0.0] * 12], dtype=torch.float64))[0, :4].tolist()
    [0, 13, 14, 15]
    """
    return table.argsort(dim=1, stable=True).argsort(dim=1).to(torch.int16)


def _listed(elements: torch.Tensor, shift: int, bits: torch.Tensor | None, table: torch.Tensor | None,
            ranks: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
    """:func:`~.element_lists.list_elements` by torch operations, as CUDA runs it."""
    n = len(elements) // 2
    per_row = 8 * elements.shape[2]
    per_image = elements.shape[1] * per_row
    at = _set_bits(elements)
    image = at.div(per_image, rounding_mode="floor")
    row = (at - image * per_image).div(per_row, rounding_mode="floor")
    col = at % per_row - shift
    on_partner = _bits_at(elements, at + torch.where(image < n, n, -n) * per_image).bool()
    if bits is None:
        return image, row, col, on_partner, torch.ones(len(image), dtype=torch.float64, device=at.device), None
    # Corner (i, j) of the frame's rows i, i+1 is flat bit at + image * per_row of the frame.
    code = image * 16 + neighbour_codes(bits, at + image * per_row)
    return image, row, col, on_partner, _gather(table.flatten(), code), _gather(ranks.flatten(), code)
