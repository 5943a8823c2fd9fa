"""``medseg-eval conventions``: the metric conventions and the default empty-mask policy."""

from __future__ import annotations

import argparse

from ._common import print_table


def add_parsers(commands: argparse._SubParsersAction) -> None:
    conventions = commands.add_parser("conventions", help="list the metric conventions and what each one does")
    conventions.set_defaults(run=run_conventions)


def run_conventions(_: argparse.Namespace) -> int:
    from ..metrics import CONVENTION_SPECS, DEFAULT_CONVENTION, EMPTY_PRESETS, EmptyPolicy

    rows = [("convention", "reproduces", "boundary", "HD95 percentile", "distances")]
    for spec in CONVENTION_SPECS.values():
        name = spec.name + (" (default)" if spec.name == DEFAULT_CONVENTION else "")
        rows.append((name, spec.reference, spec.boundary, spec.percentile, spec.distance_dtype))
    print_table(rows)
    print(f"\nempty masks (default policy): {EmptyPolicy().as_dict()}")
    print(f"empty-mask presets (evaluate --empty): medseg_eval (the default), {', '.join(EMPTY_PRESETS)}")
    return 0
