"""Figures for statistical comparisons of segmentation models: CD diagram, blob plot, significance map, per-case plot.

matplotlib is the optional extra ``plots``. Figures are built with :class:`matplotlib.figure.Figure` directly,
so nothing here touches pyplot's global state or needs a display backend.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from .._atomic import atomic_write_bytes

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_BLOB = "tab:blue"
_CELL = {"diagonal": "#9e9e9e", "missing": "white", "ns": "#eeeeee", "sig": "#8da0cb", "row": "#66c2a5",
         "col": "#fc8d62"}


def _pyplot() -> ModuleType:
    """matplotlib with the submodules used here, imported on first use because it is an optional extra."""
    try:
        import matplotlib.colors
        import matplotlib.figure
        import matplotlib.lines
        import matplotlib.patches
    except ImportError as exc:
        raise ImportError(
            "medseg_eval.stats.plots needs matplotlib; install it with: pip install 'medseg-eval[plots]'"
        ) from exc
    return matplotlib


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        # Rendering into memory first means a failed render (say, an unknown suffix) never touches `path`.
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix.lstrip(".").lower() or "png", dpi=150, bbox_inches="tight")
        atomic_write_bytes(path, buf.getvalue())
    return fig


def _require(df: pl.DataFrame, name: str, *columns: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"`{name}` lacks column(s) {missing}; it has {df.columns}.")
    if df.is_empty():
        raise ValueError(f"`{name}` is empty.")


def _order(models: Sequence[str], order: Sequence[str] | None) -> list[str]:
    if order is None:
        return list(models)
    if len(set(order)) != len(order) or set(order) != set(models):
        raise ValueError(f"`order` must name each model once: got {list(order)}, the data has {sorted(models)}.")
    return list(order)


def _model_ticks(ax: Axes, names: list[str]) -> None:
    # Tilted labels only when upright ones would run into each other.
    tilt = max(map(len, names)) > 10 or sum(map(len, names)) > 48
    ax.set_xticks(range(len(names)), names, rotation=30 if tilt else 0, ha="right" if tilt else "center",
                  rotation_mode="anchor")


def cd_diagram(mean_ranks: Mapping[str, float], cd: float | None, *, cliques: Sequence[Sequence[str]] = (),
               title: str | None = None, path: str | Path | None = None) -> Figure:
    """Critical-difference diagram (Demšar 2006, Figure 1) of models' mean ranks.

    The rank axis runs from ``k`` on the left to 1 (best) on the right. The better half of the
    models is labelled on the right, the worse half on the left, each with its mean rank. A bar
    of length ``cd`` at the top left shows the critical difference; each clique (models not
    significantly different from each other) is a thick bar below the axis from its best to its
    worst member.

    Parameters
    ----------
    mean_ranks
        Mean rank of each model over the cases (1 = best).
    cd
        Critical difference in rank units (e.g. Nemenyi's), or None to draw no CD bar.
    cliques
        Groups of models not significantly different from each other; groups of fewer than two
        models are not drawn.
    title
        Figure title.
    path
        Where to save the figure (format from the suffix, PNG without one); written atomically.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        ``mean_ranks`` is empty, ``cd`` is negative, or a clique names a model not in ``mean_ranks``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "cd.png"
    >>> fig = cd_diagram({"unet": 1.4, "segformer": 1.9, "fcn": 2.7}, cd=0.9, cliques=[("unet", "segformer")],
    ...                  path=out)
    >>> out.read_bytes()[:4]
    b'\\x89PNG'
    """
    mpl = _pyplot()
    if not mean_ranks:
        raise ValueError("`mean_ranks` is empty.")
    if cd is not None and not cd >= 0:
        raise ValueError(f"`cd` must be a non-negative rank difference, got {cd}.")
    unknown = sorted({m for clique in cliques for m in clique} - set(mean_ranks))
    if unknown:
        raise ValueError(f"cliques name models not in `mean_ranks`: {unknown}.")
    groups = [[mean_ranks[m] for m in clique] for clique in cliques if len(set(clique)) >= 2]
    ranked = sorted(mean_ranks.items(), key=lambda kv: (kv[1], kv[0]))
    lo = min(1, math.floor(ranked[0][1]))
    hi = max(len(ranked), math.ceil(ranked[-1][1]), lo + 1)

    # Layout in inches: the axis gets a width that grows with k, each side the room its longest label needs;
    # y is in units of `unit` inches and grows downwards from the axis at 0.
    axis_in = min(max(3.5, 0.7 * (hi - lo)), 8.0)
    margin_in = 0.9 + 0.085 * max(len(name) for name in mean_ranks)
    per_in = (hi - lo) / axis_in
    unit = 0.4
    top = -1.45 if cd is not None else -0.75
    first_row = 0.35 + 0.3 * len(groups) + 0.25
    n_right = math.ceil(len(ranked) / 2)
    bottom = first_row + 0.5 * (max(n_right, len(ranked) - n_right) - 1) + 0.4
    title_in = 0.4 if title else 0.0
    plot_in = (bottom - top) * unit
    fig = mpl.figure.Figure(figsize=(axis_in + 2 * margin_in, plot_in + title_in))
    ax = fig.add_axes((0, 0, 1, plot_in / (plot_in + title_in)))
    ax.set_axis_off()
    ax.set_xlim(hi + margin_in * per_in, lo - margin_in * per_in)
    ax.set_ylim(bottom, top)
    line = {"color": "black", "clip_on": False, "solid_capstyle": "butt"}

    ax.plot([lo, hi], [0, 0], lw=1.2, **line)
    for tick in np.arange(lo, hi + 0.25, 0.5):
        ax.plot([tick, tick], [0, -0.18 if tick == int(tick) else -0.1], lw=1, **line)
        if tick == int(tick):
            ax.text(tick, -0.25, f"{tick:.0f}", ha="center", va="bottom", fontsize=9)
    if cd is not None:
        ax.plot([hi, hi - cd], [-1.0, -1.0], lw=1.5, **line)
        for end in (hi, hi - cd):
            ax.plot([end, end], [-1.08, -0.92], lw=1, **line)
        ax.text(hi - cd / 2, -1.12, "CD", ha="center", va="bottom", fontsize=10)
    for row, ranks in enumerate(groups):
        # A small overhang keeps a clique of (nearly) tied models visible as a bar, not a dot.
        ax.plot([min(ranks) - 0.05 * per_in, max(ranks) + 0.05 * per_in], [0.35 + 0.3 * row] * 2, lw=4, **line)
    for models, end, ha in ((ranked[:n_right], lo - 0.2 * per_in, "left"),
                            (ranked[n_right:][::-1], hi + 0.2 * per_in, "right")):
        for row, (name, rank) in enumerate(models):
            y = first_row + 0.5 * row
            ax.plot([rank, rank, end], [0, y, y], lw=0.9, **line)
            ax.text(end + (0.05 if ha == "right" else -0.05) * per_in, y, f"{name} ({rank:.2f})", ha=ha, va="center",
                    fontsize=10)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def blob_plot(rank_counts: pl.DataFrame, *, order: Sequence[str] | None = None, title: str | None = None,
              path: str | Path | None = None) -> Figure:
    """Blob plot of bootstrap rank stability (challengeR, Wiesenfarth et al. 2021).

    One column per model: a circle at each rank the model took, with area proportional to the
    share of bootstrap samples in which it took that rank, a vertical line over the 2.5%-97.5%
    quantiles of that rank distribution and, when known, a black cross at its rank on the full data.

    Parameters
    ----------
    rank_counts
        Columns ``model``, ``rank`` (1 = best), ``frequency`` (share of bootstrap samples; a
        model's frequencies sum to 1) and optionally ``full_rank`` (the model's rank on the full data).
    order
        Models from left to right; by default by ``full_rank`` if given, else by mean bootstrap rank.
    title
        Figure title.
    path
        Where to save the figure (format from the suffix, PNG without one); written atomically.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A required column is missing, the table is empty, or ``order`` does not name each model once.

    Examples
    --------
    >>> import polars as pl
    >>> counts = pl.DataFrame({"model": ["a", "a", "b", "b"], "rank": [1, 2, 1, 2],
    ...                        "frequency": [0.8, 0.2, 0.2, 0.8], "full_rank": [1, 1, 2, 2]})
    >>> [t.get_text() for t in blob_plot(counts).axes[0].get_xticklabels()]
    ['a', 'b']
    """
    mpl = _pyplot()
    _require(rank_counts, "rank_counts", "model", "rank", "frequency")
    counts = (rank_counts.group_by("model", "rank").agg(pl.col("frequency").sum())
              .filter(pl.col("frequency") > 0).sort("model", "rank"))
    full = (dict(rank_counts.group_by("model").agg(pl.col("full_rank").first()).iter_rows())
            if "full_rank" in rank_counts.columns else {})
    key = full or dict(counts.group_by("model").agg((pl.col("rank") * pl.col("frequency")).sum()
                                                    / pl.col("frequency").sum()).iter_rows())
    names = _order(sorted(key, key=lambda m: (key[m], m)), order)
    k = max(len(names), int(rank_counts["rank"].max()))

    width, height = max(4.0, 0.55 * len(names) + 3.0), max(3.0, 0.35 * k + 1.5)
    # Marker areas are in points²: a share of 1 fills about 85% of the smaller of a model's and a rank's spacing.
    spacing_pt = 72 * min((width - 3.0) / len(names), (height - 1.3) / k)
    full_area = (0.85 * spacing_pt) ** 2
    fig = mpl.figure.Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    for x, name in enumerate(names):
        sub = counts.filter(pl.col("model") == name)
        ranks, freq = sub["rank"].to_numpy(), sub["frequency"].to_numpy()
        ax.scatter(np.full(len(ranks), x), ranks, s=freq * full_area, color=_BLOB, alpha=0.6, linewidths=0, zorder=2)
        cum = np.cumsum(freq) / freq.sum()
        # Quantiles of a discrete distribution: the smallest rank whose cumulative share reaches p (float slack).
        q_lo, q_hi = ranks[np.minimum(np.searchsorted(cum, [0.025 - 1e-9, 0.975 - 1e-9]), len(ranks) - 1)]
        ax.plot([x, x], [q_lo, q_hi], color="black", lw=1.5, solid_capstyle="round", zorder=3)
        if name in full:
            ax.scatter([x], [full[name]], marker="x", s=50, color="black", linewidths=1.5, zorder=4)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylim(0.4, k + 0.6)
    ax.set_yticks(range(1, k + 1))
    _model_ticks(ax, names)
    ax.set_ylabel("rank")
    ax.grid(axis="y", color="0.92", zorder=0)
    ax.set_axisbelow(True)
    handles = [ax.scatter([], [], s=share * full_area, color=_BLOB, alpha=0.6, linewidths=0, label=f"{share:g}")
               for share in (0.25, 0.5, 1.0)]
    handles.append(mpl.lines.Line2D([], [], color="black", lw=1.5, label="95% interval"))
    if full:
        handles.append(mpl.lines.Line2D([], [], color="black", marker="x", lw=0, markeredgewidth=1.5,
                                        label="full-data rank"))
    ax.legend(handles=handles, title="share of bootstrap\nsamples", loc="upper left", bbox_to_anchor=(1.02, 1),
              frameon=False, labelspacing=max(1.0, 0.85 * spacing_pt / 20), borderpad=0.8, handletextpad=1.2)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def significance_map(p_values: pl.DataFrame, *, order: Sequence[str] | None = None, alpha: float = 0.05,
                     title: str | None = None, path: str | Path | None = None) -> Figure:
    """Heat map of pairwise comparisons: adjusted p-values, coloured where significant.

    Both triangles are filled (cell ``(row, column)`` shows the pair of the row and the column
    model); the diagonal is dark grey, pairs absent from ``p_values`` are white.

    Parameters
    ----------
    p_values
        One row per pair, columns ``model_a``, ``model_b``, ``p_adjusted`` and optionally
        ``better`` (the better model of the pair, or null); with it, a significant cell's colour
        says whether the row or the column model is the better one.
    order
        Models along both axes; by default in order of first appearance in ``model_a``, then ``model_b``.
    alpha
        Significance level: cells with ``p_adjusted < alpha`` are coloured.
    title
        Figure title.
    path
        Where to save the figure (format from the suffix, PNG without one); written atomically.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A required column is missing, the table is empty, ``better`` names neither model of its
        pair, or ``order`` does not name each model once.

    Examples
    --------
    >>> import polars as pl
    >>> p = pl.DataFrame({"model_a": ["a", "a", "b"], "model_b": ["b", "c", "c"],
    ...                   "p_adjusted": [0.0004, 0.03, 0.4], "better": ["a", "c", None]})
    >>> sorted(t.get_text() for t in significance_map(p).axes[0].texts)
    ['0.030', '0.030', '0.400', '0.400', '<0.001', '<0.001']
    """
    mpl = _pyplot()
    _require(p_values, "p_values", "model_a", "model_b", "p_adjusted")
    pairs = p_values.select("model_a", "model_b", "p_adjusted",
                            pl.col("better") if "better" in p_values.columns else pl.lit(None).alias("better"))
    names = _order(list(dict.fromkeys([*pairs["model_a"], *pairs["model_b"]])), order)
    index = {m: i for i, m in enumerate(names)}
    n = len(names)
    p = np.full((n, n), np.nan)
    kind = np.full((n, n), "missing", dtype=object)
    for a, b, pv, better in pairs.iter_rows():
        if better not in (None, a, b):
            raise ValueError(f"`better` of the pair ({a!r}, {b!r}) is {better!r}, neither model of the pair.")
        for r, c in ((index[a], index[b]), (index[b], index[a])):
            p[r, c] = pv
            kind[r, c] = "ns" if not pv < alpha else "sig" if better is None else "row" if names[r] == better else "col"
    np.fill_diagonal(kind, "diagonal")
    np.fill_diagonal(p, np.nan)

    side = max(3.0, 0.75 * n + 1.5)
    fig = mpl.figure.Figure(figsize=(side + 2.6, side), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow([[mpl.colors.to_rgb(_CELL[c]) for c in row] for row in kind])
    for (r, c), pv in np.ndenumerate(p):
        if not np.isnan(pv):
            ax.text(c, r, "<0.001" if pv < 0.001 else f"{pv:.3f}", ha="center", va="center", fontsize=8)
    _model_ticks(ax, names)
    ax.set_yticks(range(n), names)
    ax.set_xlabel("column model")
    ax.set_ylabel("row model")
    # White gridlines between cells keep neighbouring cells of one colour apart.
    ax.set_xticks(np.arange(-0.5, n), minor=True)
    ax.set_yticks(np.arange(-0.5, n), minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="both", length=0)
    ax.spines[:].set_visible(False)
    legend = {"row": f"row model better, p < {alpha:g}", "col": f"column model better, p < {alpha:g}",
              "sig": f"significant, p < {alpha:g}", "ns": f"not significant, p ≥ {alpha:g}"}
    present = set(kind.ravel())
    handles = [mpl.patches.Patch(facecolor=_CELL[c], edgecolor="0.7", label=text)
               for c, text in legend.items() if c in present]
    ax.legend(handles=handles, title="adjusted p-values", loc="upper left", bbox_to_anchor=(1.02, 1),
              frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def per_case_plot(table: pl.DataFrame, *, metric: str, order: Sequence[str] | None = None, title: str | None = None,
                  path: str | Path | None = None) -> Figure:
    """Per-case values of one metric per model: box plots over a jittered strip of the cases.

    With at most 50 cases, thin grey lines join each case's values across models, showing the pairing.
    The jitter is seeded, so the figure is reproducible. Null and NaN values are left out.

    Parameters
    ----------
    table
        One row per model and case: columns ``model``, ``case_id``, ``value``.
    metric
        Name of the metric, the y axis label.
    order
        Models from left to right; by default in order of first appearance.
    title
        Figure title.
    path
        Where to save the figure (format from the suffix, PNG without one); written atomically.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        A required column is missing, the table is empty, a model has two rows for one case, or
        ``order`` does not name each model once.

    Examples
    --------
    >>> import polars as pl
    >>> table = pl.DataFrame({"model": ["a", "a", "b", "b"], "case_id": ["c1", "c2", "c1", "c2"],
    ...                       "value": [0.8, 0.7, 0.9, 0.75]})
    >>> per_case_plot(table, metric="dice").axes[0].get_ylabel()
    'dice'
    """
    mpl = _pyplot()
    _require(table, "table", "model", "case_id", "value")
    table = table.select(pl.col("model").cast(pl.String), "case_id", pl.col("value").cast(pl.Float64))
    if table.select(pl.struct("model", "case_id").is_duplicated().any()).item():
        raise ValueError("`table` has more than one row for some model and case_id.")
    names = _order(table["model"].unique(maintain_order=True).to_list(), order)
    values = table.pivot(on="model", index="case_id", values="value").select(names).to_numpy().astype(float)
    x = np.arange(len(names)) + np.random.default_rng(0).uniform(-0.12, 0.12, values.shape)

    fig = mpl.figure.Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    if len(values) <= 50:
        ax.plot(x.T, values.T, color="0.6", lw=0.6, alpha=0.6, zorder=1)
    ax.boxplot([col[~np.isnan(col)] for col in values.T], positions=range(len(names)), widths=0.5,
               showfliers=False, medianprops={"color": "black"}, zorder=2)
    for i in range(len(names)):
        ax.scatter(x[:, i], values[:, i], s=14, color=f"C{i % 10}", alpha=0.7, linewidths=0, zorder=3)
    ax.set_xlim(-0.6, len(names) - 0.4)
    _model_ticks(ax, names)
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    return _save(fig, path)
