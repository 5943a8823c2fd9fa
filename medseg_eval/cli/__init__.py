"""The ``medseg-eval`` command line: one module per command group, each handler beside its parser.

Building the parser imports nothing heavier than :mod:`argparse`: every handler imports what it needs
(torch, polars, Hugging Face ``datasets``) when it runs, so ``medseg-eval --help`` and ``medseg-eval
datasets list`` start at once. The engine's names that the parser shows (conventions, empty-mask
presets, default metrics) are mirrored in :mod:`._names`; a test keeps them equal to the engine's.

Exit codes: 0 on success; 2 for a usage error or an error of the package (any
:class:`~medseg_eval.MedsegEvalError`, and a path the user gave that is missing or in the way),
printed as ``error: <message>`` without a traceback; 1 for a leaderboard bundle that cannot go on a
board (:class:`~medseg_eval.leaderboard.SubmissionError`, as scripts that validate boards expect)
and for ``datasets verify`` finding a mask that differs; 3 for ``datasets verify`` with nothing pinned.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import MedsegEvalError
from . import compare, conventions, datasets, demo, evaluate, leaderboard, reports, train

#: Command groups in the order ``--help`` lists them; each module has ``add_parsers(commands)``.
GROUPS = (conventions, datasets, evaluate, compare, leaderboard, train, reports, demo)


def build_parser() -> argparse.ArgumentParser:
    """The ``medseg-eval`` parser; each command's handler is its ``run`` default.

    Examples
    --------
    >>> build_parser().parse_args(["compare", "a", "b", "--blocks", "fold"]).blocks
    'fold'
    """
    parser = argparse.ArgumentParser(prog="medseg-eval",
                                     description="Reproducible evaluation of 2D medical image segmentation.")
    parser.add_argument("--version", action="version", version=f"medseg-eval {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(commands)
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
    try:
        return args.run(args)
    except (MedsegEvalError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return _exit_code(err)


def _exit_code(err: BaseException) -> int:
    # A SubmissionError can only exist once its module is loaded: no import of the leaderboard here.
    bundle_errors = sys.modules.get("medseg_eval.leaderboard.errors")
    return 1 if bundle_errors is not None and isinstance(err, bundle_errors.SubmissionError) else 2
