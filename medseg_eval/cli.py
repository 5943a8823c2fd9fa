"""The ``medseg-eval`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .metrics import CONVENTION_SPECS, DEFAULT_CONVENTION, EmptyPolicy


def _conventions(_: argparse.Namespace) -> int:
    rows = [("convention", "reproduces", "boundary", "HD95 percentile", "distances")]
    for spec in CONVENTION_SPECS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_CONVENTION else "")
        rows.append((name, spec.reference, spec.boundary, spec.percentile, spec.distance_dtype))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"\nempty masks (default policy): {EmptyPolicy().as_dict()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medseg-eval", description="Reproducible evaluation of 2D medical image segmentation."
    )
    parser.add_argument("--version", action="version", version=f"medseg-eval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    conventions = commands.add_parser("conventions", help="list the metric conventions and what each one does")
    conventions.set_defaults(run=_conventions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``medseg-eval`` console script.

    Examples
    --------
    >>> main(["conventions"])  # doctest: +ELLIPSIS
    convention...
    surface-distance (default)  DeepMind surface-distance...
    0
    """
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
