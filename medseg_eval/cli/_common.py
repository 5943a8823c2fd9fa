"""What several commands share: argument types, the device check, plain and rich tables."""

from __future__ import annotations

import argparse
import sys


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}")
    return value


def check_device(device: str) -> None:
    """Raise :class:`~medseg_eval.devices.DeviceUnavailableError` now, before any work, for a device absent here."""
    from ..devices import resolve_device

    resolve_device(device)


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Plain left-aligned columns (the first row is the header)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def summary_table(title: str, results: dict) -> None:
    """Print mean [95% CI] per metric (rows) and model (columns), pooled Dice/IoU on rows of their own."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("class")
    summaries = {name: res.summary() for name, res in results.items()}
    for name in summaries:
        table.add_column(name, justify="right")
    first = next(iter(summaries.values()))
    for metric, cls, aggregate in first.select("metric", "class", "aggregate").rows():
        label = metric if aggregate == "mean" else f"{metric} (pooled)"
        cells = []
        for summary in summaries.values():
            row = summary.filter((summary["metric"] == metric) & (summary["class"] == cls)
                                 & (summary["aggregate"] == aggregate)).row(0, named=True)
            cells.append("n/a" if row["mean"] is None
                         else f"{_number(row['mean'])} [{_number(row['ci_low'])}, {_number(row['ci_high'])}]")
        table.add_row(label, cls, *cells)
    Console().print(table)


def command_line() -> str:
    """The command as typed, for provenance records."""
    return " ".join(["medseg-eval", *sys.argv[1:]])


def _number(x: float | None) -> str:
    # A bound is None where the mean is infinite (an "inf" empty-mask outcome): no interval to show.
    return "n/a" if x is None else f"{x:.4g}"
