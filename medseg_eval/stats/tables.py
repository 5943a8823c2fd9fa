"""Paper tables of a :class:`~medseg_eval.stats.compare.Comparison`: Markdown and LaTeX, with a caption that states the tests."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from .multiple import CORRECTION_NAMES

if TYPE_CHECKING:
    from .compare import Comparison

#: How captions and headers name things.
METRIC_LABELS = {"dice": "Dice", "iou": "IoU", "hausdorff": "HD", "hd95": "HD95", "assd": "ASSD", "masd": "MASD",
                 "nsd": "NSD", "precision": "Precision", "recall": "Recall", "specificity": "Specificity",
                 "lesion_recall": "Lesion recall", "lesion_precision": "Lesion precision", "lesion_f1": "Lesion F1",
                 "fp_objects": "FP objects", "accuracy": "Accuracy", "cldice": "clDice", "betti0_error": "Betti-0 error",
                 "betti1_error": "Betti-1 error", "boundary_iou": "Boundary IoU", "boundary_f1": "Boundary F1",
                 "mcc": "MCC", "kappa": "Cohen's kappa", "balanced_accuracy": "Balanced accuracy",
                 "volume_similarity": "Volume similarity", "object_f1": "Object F1", "object_dice": "Object Dice",
                 "object_hausdorff": "Object HD", "aji": "AJI", "pq": "PQ", "sq": "SQ", "rq": "RQ"}
TEST_NAMES = {"wilcoxon": "Wilcoxon signed-rank test", "t": "paired t-test", "permutation": "paired permutation test"}
#: What each paired test assumes of the blocks' differences, stated in every caption.
TEST_ASSUMPTIONS = {"wilcoxon": "differences symmetric about their median",
                    "t": "normally distributed differences",
                    "permutation": "differences whose signs are exchangeable under the null hypothesis"}
ZERO_METHODS = {"wilcox": "zero differences dropped", "pratt": "zero differences ranked, then dropped (Pratt)",
                "zsplit": "zero differences' ranks split between both signs"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters in plain text.

    Examples
    --------
    >>> latex_escape("U-Net_v2 (50% & more)")
    'U-Net\\_v2 (50\\% \\& more)'
    """
    return re.sub(r"[\\&%$#_{}~^]", lambda m: _LATEX_SPECIAL[m.group()], text)


def render(comparison: Comparison, fmt: str, *, statistic: str = "mean", ci: bool = True, digits: int = 3,
           metrics: Sequence[str] | None = None, label: str | None = None) -> str:
    """Markdown (``fmt="markdown"``) or LaTeX (``fmt="latex"``) table of the comparison, caption included."""
    if statistic not in ("mean", "median"):
        raise ValueError(f"`statistic` must be 'mean' or 'median', got {statistic!r}.")
    settings = comparison.settings
    chosen = list(metrics or settings["metrics"])
    columns = [(m, c) for m in chosen for c in
               comparison.summary.filter(pl.col("metric") == m)["class"].unique(maintain_order=True).to_list()]
    if not columns:
        raise ValueError(f"no compared metric among {chosen}; the comparison has {settings['metrics']}.")
    several_classes = len({c for _, c in columns}) > 1
    latex = fmt == "latex"
    first_test = settings["tests"][0]
    cells: dict[tuple[str, str, str], str] = {}
    for metric, class_ in columns:
        part = comparison.summary.filter((pl.col("metric") == metric) & (pl.col("class") == class_))
        higher = part["higher_is_better"][0]
        centre = part[statistic].to_list()
        best_value = max(centre) if higher else min(centre)
        best = [m for m, v in zip(part["model"], centre) if v == best_value]
        pairs = comparison.pairwise.filter((pl.col("metric") == metric) & (pl.col("class") == class_)
                                           & (pl.col("test") == first_test))
        for row in part.iter_rows(named=True):
            text = _cell(row, statistic, ci, digits, latex)
            if row["model"] in best:
                text = rf"\textbf{{{text}}}" if latex else f"**{text}**"
            elif _significant_against(pairs, row["model"], best):
                text += r"$^{\dagger}$" if latex else " †"
            cells[(row["model"], metric, class_)] = text
    headers = [_header(m, c, several_classes, comparison, latex) for m, c in columns]
    caption = _caption(comparison, statistic, ci, columns)
    models = comparison.models
    if latex:
        latex_caption = latex_escape(caption).replace("±", r"$\pm$").replace("†", r"$^{\dagger}$")
        body = [" & ".join([latex_escape(m)] + [cells[(m, me, c)] for me, c in columns]) + r" \\" for m in models]
        return "\n".join([
            r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_caption}}}",
            *([rf"\label{{{label}}}"] if label else []), r"\begin{tabular}{l" + "c" * len(columns) + "}",
            r"\toprule", " & ".join(["Model"] + headers) + r" \\", r"\midrule", *body, r"\bottomrule",
            r"\end{tabular}", r"\end{table}",
        ])
    lines = ["| " + " | ".join(["Model"] + headers) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += ["| " + " | ".join([m] + [cells[(m, me, c)] for me, c in columns]) + " |" for m in models]
    return "\n".join(lines) + f"\n\n{caption}"


def _cell(row: dict[str, Any], statistic: str, ci: bool, digits: int, latex: bool) -> str:
    f = f"{{:.{digits}f}}"
    pm = r"$\pm$" if latex else "±"
    if statistic == "mean":
        text = f.format(row["mean"]) + (f" {pm} " + f.format(row["sd"]) if row["sd"] is not None else "")
        if ci:
            text += f" [{f.format(row['ci_low'])}, {f.format(row['ci_high'])}]"
        return text
    return f"{f.format(row['median'])} [{f.format(row['q1'])}, {f.format(row['q3'])}]"


def _significant_against(pairs: pl.DataFrame, model: str, best: list[str]) -> bool:
    against = pairs.filter(((pl.col("model_a") == model) & pl.col("model_b").is_in(best))
                           | ((pl.col("model_b") == model) & pl.col("model_a").is_in(best)))
    return bool(against["significant"].any()) if not against.is_empty() else False


def _header(metric: str, class_: str, several_classes: bool, comparison: Comparison, latex: bool) -> str:
    higher = comparison.summary.filter(pl.col("metric") == metric)["higher_is_better"][0]
    arrow = (r"$\uparrow$" if higher else r"$\downarrow$") if latex else ("↑" if higher else "↓")
    name = METRIC_LABELS.get(metric, metric) + (f" ({class_})" if several_classes else "")
    return f"{latex_escape(name) if latex else name} {arrow}"


def _caption(comparison: Comparison, statistic: str, ci: bool, columns: list[tuple[str, str]]) -> str:
    s = comparison.settings
    n = comparison.summary.filter((pl.col("metric") == columns[0][0]) & (pl.col("class") == columns[0][1]))["n"][0]
    cv = s.get("cross_validation")
    several_seeds = bool(cv) and cv["n_seeds"] > 1
    unit = {"dataset": "dataset", "case": "held-out case" if cv else "case", "seed": "seed",
            "fold": "fold-and-seed run" if several_seeds else "fold"}[s.get("blocks", "case")]
    unit += "" if n == 1 else "s"
    what = ("Mean ± sd" if statistic == "mean" else "Median [IQR]") + f" over {n} {unit}"
    if cv and s["blocks"] in ("fold", "seed"):
        what += " (each model's mean over the held-out cases of each)"
    if ci and statistic == "mean":
        what += (f", with the {round(100 * s['confidence'])}% percentile-bootstrap CI of the mean "
                 f"({s['n_boot']} resamples, seed {s['seed']})")
    test = s["tests"][0]
    test_text = TEST_NAMES[test] + (f", {ZERO_METHODS[s['zero_method']]}" if test == "wilcoxon" else "")
    k = len(comparison.models)
    correction = CORRECTION_NAMES[s["correction"]]
    marker = (f"†: significantly different from the best (two-sided {test_text}; {correction} correction over the "
              f"{k * (k - 1) // 2} pairwise comparisons; alpha = {s['alpha']}).")
    policy = {"error": "", "worst": " Missing cases were given the metric's worst value.",
              "drop": " Cases missing for any model were left out."}[s["missing_policy"]]
    return f"{what}. Bold: best per column (arrows: better direction). {marker}{policy} {_assumptions(s, unit)}"


def _assumptions(settings: dict[str, Any], unit: str) -> str:
    """What the first test assumes, and where the blocks of a cross-validation fall short of it."""
    text = (f"The {TEST_NAMES[settings['tests'][0]]} treats the {unit} as independent pairs with "
            f"{TEST_ASSUMPTIONS[settings['tests'][0]]}.")
    cv = settings.get("cross_validation")
    if not cv:
        return text
    if settings["blocks"] == "case":
        return text + (" Cases of different folds were scored by models trained on overlapping data, and "
                       + ("every case appears once per seed; " if cv["n_seeds"] > 1 else "")
                       + "the test ignores that structure, so its p-values are optimistic.")
    return text + (" Folds share training data, so their differences are correlated (Nadeau and Bengio 2003): the "
                   "independence holds only approximately, and with so few blocks the test has little power"
                   + ("; seeds pair by their order." if settings["blocks"] == "seed" else "."))
