"""``medseg-eval cv`` and ``report``: their logic is :mod:`medseg_eval.stats.report`'s."""

from __future__ import annotations

import argparse

from ._common import positive_int

FORMATS = ["markdown", "latex", "html"]


def add_parsers(commands: argparse._SubParsersAction) -> None:
    cv = commands.add_parser("cv", help="cross-validation of `train --fold K` run folders: over folds, pooled, CIs")
    cv.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by medseg-eval train --out")
    cv.add_argument("--out", help="folder to save the cross-validation in (parquet + JSON)")
    cv.set_defaults(run=run_cv)
    report = commands.add_parser("report", help="methods paragraph, tables and BibTeX of saved results, "
                                                "a cross-validation or a comparison")
    report.add_argument("path", metavar="RESULTS_OR_COMPARISON", help="a folder written by evaluate/cv/compare --out")
    report.add_argument("--out", help="file to write the report to")
    report.set_defaults(run=run_report)
    for parser in (cv, report):
        parser.add_argument("--format", default="markdown", choices=FORMATS)
        parser.add_argument("--n-boot", type=positive_int, default=2000, help="bootstrap resamples of the CIs")
        parser.add_argument("--seed", type=int, default=0)


def run_cv(args: argparse.Namespace) -> int:
    from ..stats.report import cv_command

    print(cv_command(args.runs, fmt=args.format, out=args.out, n_boot=args.n_boot, seed=args.seed))
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..stats.report import report_command

    print(report_command(args.path, fmt=args.format, out=args.out, n_boot=args.n_boot, seed=args.seed))
    return 0
