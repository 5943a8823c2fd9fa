"""Topology and boundary metrics: clDice, Betti-0 and Betti-1 errors, Boundary IoU.

- **clDice** (Shit et al., CVPR 2021): with skeletons ``S(.)``, topology precision
  ``Tprec = |S(P) ∩ G| / |S(P)|`` and sensitivity ``Tsens = |S(G) ∩ P| / |S(G)|``, clDice is their
  harmonic mean ``2 Tprec Tsens / (Tprec + Tsens)`` (0 where both are 0). Skeletons are those of
  ``skimage.morphology.skeletonize`` (Zhang's thinning in 2D), as the authors' own evaluation code
  (github.com/jocpae/clDice, ``cldice_metric/cldice.py``) takes them; the version is recorded.
- **Betti numbers**: ``b0`` counts the foreground's connected components, ``b1`` its holes: the
  components of the background that do not reach the image border. Digital topology needs
  complementary connectivities to make holes well defined (8 for the foreground with 4 for the
  background, the default, or 4 with 8); both are options and recorded. The Betti-k error is
  ``|b_k(P) - b_k(G)|`` per case and class (as in Hu et al. 2019, Shit et al. 2021). It is defined
  on empty masks (no component, no hole) and takes no empty-mask policy.
- **Boundary IoU** (Cheng et al., CVPR 2021): the IoU of the two masks' inner boundary bands,
  ``|(P_d ∩ P) ∩ (G_d ∩ G)| / |(P_d ∩ P) ∪ (G_d ∩ G)|``, where ``X_d ∩ X`` are the pixels of X within
  ``d`` of its contour. As the authors' API (``boundary_iou/utils/boundary_utils.py``,
  ``mask_to_boundary``) computes it: ``d = max(1, round(dilation_ratio * sqrt(H**2 + W**2)))`` pixels
  (default ratio 0.02), the band is the mask minus its erosion by a ``(2d+1) x (2d+1)`` square, and
  the image border counts as contour (the mask is padded with background first).

The boundary F-score (``"boundary_f1"``) lives with the distance metrics (:mod:`.surface`): it uses
the convention's boundary elements and the exact distances to the other boundary.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ._validation import is_real
from .conventions import EmptyPolicy
from .errors import OptionError
from .lesions import components
from .overlap import pixel_counts


@dataclass(frozen=True)
class TopologyOptions:
    """How the topology and boundary metrics are computed; recorded with every result.

    Parameters
    ----------
    foreground_connectivity, background_connectivity
        Pixel connectivity of the foreground's components (``b0``) and of the background's (``b1``):
        8 and 4 (default) or 4 and 8.
    boundary_dilation
        Boundary IoU's band width as a fraction of the image diagonal (Cheng et al.: 0.02).

    Examples
    --------
    >>> TopologyOptions().as_dict()["foreground_connectivity"], TopologyOptions().as_dict()["boundary_dilation"]
    (8, 0.02)
    """

    foreground_connectivity: Literal[4, 8] = 8
    background_connectivity: Literal[4, 8] = 4
    boundary_dilation: float = 0.02

    def __post_init__(self) -> None:
        pair = (self.foreground_connectivity, self.background_connectivity)
        if not all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in pair) or pair not in ((8, 4), (4, 8)):
            raise OptionError("`foreground_connectivity` and `background_connectivity` must be complementary, (8, 4) "
                              f"or (4, 8), so that holes are well defined, but got {pair!r}.")
        if not (is_real(self.boundary_dilation) and 0 < self.boundary_dilation <= 1):
            raise OptionError(f"`boundary_dilation` is a fraction of the image diagonal in (0, 1], but got "
                              f"{self.boundary_dilation!r}.")
        for field, kind in (("foreground_connectivity", int), ("background_connectivity", int),
                            ("boundary_dilation", float)):
            object.__setattr__(self, field, kind(getattr(self, field)))

    def as_dict(self) -> dict[str, object]:
        """Plain values, for provenance, with the skeleton's implementation and version."""
        import skimage

        return {**asdict(self), "skeleton": f"skimage.morphology.skeletonize (scikit-image {skimage.__version__})"}


def skeletons(masks: torch.Tensor) -> torch.Tensor:
    """Skeletons of a bool batch ``[N, H, W]`` by ``skimage.morphology.skeletonize``, on the input's device.

    The batch is thinned in one call, its images stacked with a background row between them: the
    thinning looks at 3 x 3 neighbourhoods and treats the image border as background, so each image
    is thinned exactly as alone.

    Examples
    --------
    >>> m = torch.zeros(1, 5, 7, dtype=torch.bool); m[0, 1:4, 1:6] = True
    >>> skeletons(m)[0].int().tolist()[2]
    [0, 1, 1, 1, 0, 0, 0]
    """
    from skimage.morphology import skeletonize

    n, h, w = masks.shape
    stacked = np.zeros((n, h + 1, w), dtype=bool)
    stacked[:, :h] = masks.cpu().numpy()
    thin = skeletonize(stacked.reshape(n * (h + 1), w)).reshape(n, h + 1, w)[:, :h]
    return torch.from_numpy(np.ascontiguousarray(thin)).to(masks.device)


def betti_numbers(masks: torch.Tensor, foreground_connectivity: int = 8,
                  background_connectivity: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Betti numbers ``(b0, b1)`` of each bool mask ``[N, H, W]``: components and holes, int64 ``[N]``.

    ``b0`` comes from labelling the foreground; ``b1 = b0 - chi`` from the Euler number ``chi``, which
    Gray's bit-quad counts give exactly for complementary connectivities (Gray 1971): over the 2 x 2
    windows of the mask framed by background, ``chi = (Q1 - Q3 - 2 QD) / 4`` with an 8-connected
    foreground and ``(Q1 - Q3 + 2 QD) / 4`` with a 4-connected one (Q1, Q3: windows holding one or
    three foreground pixels, QD: two, diagonally). Holes are thus the background components that do
    not reach the image border.

    Examples
    --------
    >>> ring = torch.ones(1, 5, 5, dtype=torch.bool); ring[0, 2, 2] = False
    >>> [t.tolist() for t in betti_numbers(ring)]
    [[1], [1]]
    """
    TopologyOptions(foreground_connectivity, background_connectivity)  # type: ignore[arg-type]  # checks them
    n = masks.shape[0]
    b0 = torch.bincount(components(masks, foreground_connectivity).image, minlength=n)
    x = F.pad(masks.to(torch.uint8), (1, 1, 1, 1))
    a, b, c, d = x[:, :-1, :-1], x[:, :-1, 1:], x[:, 1:, :-1], x[:, 1:, 1:]
    total = a + b + c + d
    q1, q3 = pixel_counts(total == 1), pixel_counts(total == 3)
    qd = pixel_counts((total == 2) & (a == d))
    sign = -1 if foreground_connectivity == 8 else 1
    chi = torch.div(q1 - q3 + sign * 2 * qd, 4, rounding_mode="floor")
    return b0, b0 - chi


def boundary_bands(masks: torch.Tensor, dilation: int) -> torch.Tensor:
    """Each mask's inner band of width ``dilation`` (Boundary IoU's ``G_d ∩ G``), bool ``[N, H, W]``.

    A pixel is in the band when a background pixel, or the image border, lies within Chebyshev
    distance ``dilation``: the mask minus its erosion by a square of side ``2 * dilation + 1``, which
    is separable into a column and a row max-pool of the background.

    Examples
    --------
    >>> m = torch.zeros(1, 7, 7, dtype=torch.bool); m[0, 1:6, 1:6] = True
    >>> boundary_bands(m, 1)[0, 3].int().tolist()
    [0, 1, 0, 0, 0, 1, 0]
    """
    k = 2 * dilation + 1
    background = F.pad((~masks).to(torch.float32).unsqueeze(1), (dilation,) * 4, value=1.0)
    near = F.max_pool2d(F.max_pool2d(background, (k, 1), stride=1), (1, k), stride=1)
    return masks & (near.squeeze(1) > 0)


def boundary_dilation(sides: torch.Tensor, ratio: float) -> torch.Tensor:
    """Boundary IoU's band width in pixels per case, from each case's ``(height, width)`` ``[B, 2]``:
    ``max(1, round(ratio * diagonal))`` (Python's rounding, as the authors' ``int(round(...))``)."""
    return torch.tensor([max(1, round(ratio * float(np.sqrt(h * h + w * w)))) for h, w in sides.tolist()],
                        dtype=torch.long)


def topology_metrics(names: list[str], pred: torch.Tensor, target: torch.Tensor, options: TopologyOptions,
                     empty: EmptyPolicy, sides: torch.Tensor) -> dict[str, torch.Tensor]:
    """The topology metrics ``names`` per case and class ``[B, K]`` (float64) of one-hot masks ``[B, K, H, W]``.

    ``sides`` holds each case's own ``(height, width)`` ``[B, 2]`` (Boundary IoU's diagonal); pixels
    outside a case's own size or region of interest are background in both masks.
    """
    b, k, h, w = pred.shape
    p, t = pred.reshape(b * k, h, w), target.reshape(b * k, h, w)
    p_area, t_area = pixel_counts(p), pixel_counts(t)
    p_empty, t_empty = p_area == 0, t_area == 0
    zeros = torch.zeros(b * k, dtype=torch.float64, device=pred.device)
    out = {}
    if any(n.startswith("betti") for n in names):
        fg, bg = options.foreground_connectivity, options.background_connectivity
        (p0, p1), (t0, t1) = betti_numbers(p, fg, bg), betti_numbers(t, fg, bg)
        out["betti0_error"], out["betti1_error"] = (p0 - t0).abs().double(), (p1 - t1).abs().double()
    if "cldice" in names:
        sp, st = skeletons(p), skeletons(t)
        tprec = pixel_counts(sp & t).double() / pixel_counts(sp).clamp_min(1).double()
        tsens = pixel_counts(st & p).double() / pixel_counts(st).clamp_min(1).double()
        value = 2 * tprec * tsens / (tprec + tsens).clamp_min(1e-300)
        out["cldice"] = empty.apply("cldice", value, p_empty, t_empty, zeros)
    if "boundary_iou" in names:
        dilation = boundary_dilation(sides, options.boundary_dilation).repeat_interleave(k).to(pred.device)
        inter, union = torch.zeros_like(p_area), torch.zeros_like(p_area)
        for d in dilation.unique().tolist():  # one pass per band width: few, as cases come in few sizes
            rows = (dilation == d).nonzero().flatten()
            bp, bt = boundary_bands(p[rows], d), boundary_bands(t[rows], d)
            inter[rows], union[rows] = pixel_counts(bp & bt), pixel_counts(bp | bt)
        value = inter.double() / union.clamp_min(1).double()
        out["boundary_iou"] = empty.apply("boundary_iou", value, p_empty, t_empty, zeros)
    return {n: out[n].view(b, k) for n in names}
