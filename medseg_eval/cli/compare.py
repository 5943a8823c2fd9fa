"""``medseg-eval compare``: paired tests, rankings and a paper table for saved results or cross-validations."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import fraction, positive_int
from ._names import RANKING_SCHEMES


def add_parsers(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="paired tests, rankings and a paper table for saved results")
    compare.add_argument("results", nargs="+", metavar="[NAME=]RESULTS",
                         help="folders written by evaluate --out (or Results.save), or cross-validations written by "
                              "cv --out; NAME defaults to the folder name")
    compare.add_argument("--metric", action="append", help="metric to compare (repeatable; default dice)")
    compare.add_argument("--class", dest="class_", help="one foreground class, or 'mean'; default: each class")
    compare.add_argument("--test", action="append", choices=["wilcoxon", "t", "permutation"],
                         help="paired test (repeatable; the first marks significance; default wilcoxon)")
    compare.add_argument("--correction", default="holm", choices=["holm", "fdr_bh", "bh", "bonferroni", "none"])
    compare.add_argument("--zero-method", default="wilcox", choices=["wilcox", "pratt", "zsplit"],
                         help="zero differences in the Wilcoxon test (default: dropped)")
    compare.add_argument("--alpha", type=fraction, default=0.05)
    compare.add_argument("--missing", default="error", choices=["error", "worst", "drop"],
                         help="cases some model lacks: an error (default), the worst value, or dropped (recorded)")
    compare.add_argument("--worst", action="append", type=_worst, metavar="METRIC=VALUE",
                         help="with --missing worst: the worst value of a metric (repeatable; default 0 for overlap "
                              "metrics, the largest value seen for distances)")
    compare.add_argument("--blocks", choices=["case", "dataset", "fold", "seed"],
                         help="what the tests pair and ranks are taken within: cases or datasets for results; folds "
                              "(one block per fold and seed), seeds or cases for cross-validations "
                              "(default: fold for cross-validations, else case)")
    compare.add_argument("--statistic", default="mean", choices=["mean", "median"], help="what the table shows")
    compare.add_argument("--confidence", type=fraction, default=0.95, help="level of the bootstrap CIs (default 0.95)")
    compare.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples of the CIs")
    compare.add_argument("--stability-scheme", default=RANKING_SCHEMES[0], choices=RANKING_SCHEMES,
                         help=f"ranking scheme of the rank stability (default {RANKING_SCHEMES[0]})")
    compare.add_argument("--n-rank-boot", type=positive_int, default=1000,
                         help="bootstrap samples of the rank stability")
    compare.add_argument("--n-permutations", type=positive_int, default=9999,
                         help="random sign flips of the permutation test when the cases are too many to enumerate")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--format", default="markdown", choices=["markdown", "latex"])
    compare.add_argument("--out", help="folder to save every frame, the settings and both tables in")
    compare.add_argument("--plots", help="folder to write the figures in (needs the 'plots' extra)")
    compare.set_defaults(run=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from ..stats import compare
    from ..stats.pairing import PairingError

    models = {}
    for item in args.results:
        name, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        name = name or Path(path).name
        if name in models:
            raise PairingError(f"two results are named {name!r}; name them with NAME=PATH.")
        models[name] = path
    cmp = compare(models, args.metric or ["dice"], class_=args.class_, test=args.test or ["wilcoxon"],
                  correction=args.correction, zero_method=args.zero_method, alpha=args.alpha, missing=args.missing,
                  worst=dict(args.worst) if args.worst else None, blocks=args.blocks, confidence=args.confidence,
                  n_boot=args.n_boot, stability_scheme=args.stability_scheme, n_rank_boot=args.n_rank_boot,
                  n_permutations=args.n_permutations, seed=args.seed)
    render = cmp.to_latex if args.format == "latex" else cmp.to_markdown
    print(render(statistic=args.statistic))
    for row in cmp.omnibus.iter_rows(named=True):
        print(f"\nFriedman ({row['metric']}, class {row['class']}): chi2 = {row['statistic']:.3f}, "
              f"p = {row['p_value']:.3g}; Iman-Davenport F = {row['iman_davenport']:.3f}, "
              f"p = {row['iman_davenport_p']:.3g}; Nemenyi critical difference {row['critical_difference']:.3f} "
              f"at alpha = {row['alpha']}.")
    if args.out:
        print(f"comparison written to {cmp.save(args.out)}")
    if args.plots:
        folder = Path(args.plots)
        folder.mkdir(parents=True, exist_ok=True)
        for metric, class_ in cmp.summary.select("metric", "class").unique(maintain_order=True).rows():
            for kind in ("cd", "blobs", "significance", "cases"):
                getattr(cmp, f"plot_{kind}")(metric, class_=class_, path=folder / f"{kind}-{metric}-{class_}.png")
        print(f"figures written to {folder}")
    return 0


def _worst(text: str) -> tuple[str, float]:
    metric, _, value = text.partition("=")
    try:
        return metric.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected METRIC=VALUE, e.g. hd95=400, got {text!r}") from None
