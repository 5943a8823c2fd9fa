"""Corrections of p-values for multiple comparisons."""

from __future__ import annotations

from typing import Literal

import numpy as np

Correction = Literal["holm", "bonferroni", "fdr_bh", "none"]
#: Accepted spellings of each correction.
CORRECTION_ALIASES = {"bh": "fdr_bh", "benjamini-hochberg": "fdr_bh", "fdr": "fdr_bh"}
#: How a caption names each correction.
CORRECTION_NAMES = {"holm": "Holm", "bonferroni": "Bonferroni", "fdr_bh": "Benjamini-Hochberg", "none": "no"}


def correction_name(method: str) -> str:
    """The canonical name of a correction (``"bh"`` -> ``"fdr_bh"``), or a ValueError listing the choices."""
    name = CORRECTION_ALIASES.get(method, method)
    if name not in CORRECTION_NAMES:
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTION_NAMES)} "
                         f"(or {', '.join(CORRECTION_ALIASES)}).")
    return name


def adjust_p(p_values: np.ndarray, method: Correction | str = "holm") -> np.ndarray:
    """Adjusted p-values of one family of tests.

    ``"holm"``: Holm's step-down (family-wise error); ``"bonferroni"``; ``"fdr_bh"``:
    Benjamini-Hochberg step-up (false discovery rate); ``"none"``. NaN p-values are left out of the
    family and stay NaN.

    References
    ----------
    Holm S. (1979) A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6.
    Benjamini Y., Hochberg Y. (1995) Controlling the false discovery rate. JRSS B 57.

    Examples
    --------
    >>> adjust_p([0.01, 0.04, 0.03], "holm").round(4).tolist()
    [0.03, 0.06, 0.06]
    >>> adjust_p([0.01, 0.04, 0.03], "bh").round(4).tolist()
    [0.03, 0.04, 0.04]
    """
    method = correction_name(method)
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    q, m = p[ok], int(ok.sum())
    if m == 0 or method == "none":
        out[ok] = q
        return out
    order = np.argsort(q, kind="stable")
    ranked = q[order]
    if method == "bonferroni":
        adjusted = ranked * m
    elif method == "holm":
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    out[ok] = result
    return out
