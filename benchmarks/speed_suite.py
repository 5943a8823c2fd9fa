"""The speed suite: medseg_eval side by side with the reference libraries on many kinds of cases.

Every library computes Dice, HD, HD95, ASSD and NSD at 2 px (MedPy: no NSD) on the same cases, in
its own convention, and medseg_eval computes the same numbers in that convention
(:func:`medseg_eval.metrics.compute` on batches of equal-shape cases; for ``evaluate-kvasir-files``,
:func:`medseg_eval.evaluate` on PNG files against surface-distance reading the same files with PIL).
The kinds (``benchmarks/kinds.py``): speckled predictions over whole images, the demo's Otsu
predictions, random noise against a disc, ISIC-sized ellipses (dilated, salted, blocky), DRIVE's
observers, real Kvasir-SEG predictions, the tests' and the baseline note's 512x512 mixes, and 1,000
Kvasir-SEG masks through files.

Per kind and reference, ``--repeats`` rounds time medseg_eval, then the reference, in turn (on a
shared machine both drift by tens of percent within a minute, and a drift then moves both alike);
reported are the median time per case of each, the median of the rounds' ratios reference / ours
and their range, and the largest relative difference between the two sets of numbers (the run fails
if it is over 1e-6). MONAI and MedPy get at most the kind's cap of cases, evenly spread. Peak memory
is what one case (the kind's largest) adds to a fresh process, for medseg_eval and for
surface-distance, on the CPU (``benchmarks/peak_memory.py``). Rows are sorted by the ratio to
surface-distance, smallest first.

``--lesions`` times the lesion metrics and component labelling instead (``benchmarks/lesion_speed.py``).

Run from the repository root::

    python -m benchmarks.speed_suite                      # every kind (long: ISIC-scale images)
    python -m benchmarks.speed_suite --quick              # a smoke run, tiny sizes and counts
    python -m benchmarks.speed_suite --kinds speckle-160x192,speckle-512 --repeats 3
    python -m benchmarks.speed_suite --kinds isic-dilated,noise-2000 --references surface-distance
    python -m benchmarks.speed_suite --kinds synthetic --cases 1000 --batch 1000 --device cuda --skip-references
    python -m benchmarks.speed_suite --lesions --cases 100
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.kinds import ALL_REFERENCES, KINDS, Case, Kind, tiny_case
from benchmarks.peak_memory import measure
from benchmarks.runners import max_relative_difference, runner, timed

TOLERANCE = 1e-6  # largest relative difference accepted between medseg_eval and a reference
COLUMNS = ("kind", "size", "cases", "convention", "medseg_eval ms/case", "reference ms/case", "ratio (range)",
           "peak memory ours/ref (MB, B/px)", "max rel diff")


@dataclass
class Row:
    """One kind in one convention: times per case in ms, the rounds' ratios reference / ours (sorted)."""

    kind: str
    size: str
    cases: int
    convention: str
    ours_ms: float
    reference_ms: float | None = None
    ratios: list[float] = field(default_factory=list)
    diff: float | None = None
    memory: str = ""

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")


def size_label(cases: list[Case]) -> str:
    """``"HxW"``, or how many sizes and the largest."""
    shapes = sorted({c[1].shape for c in cases}, key=lambda s: s[0] * s[1])
    h, w = shapes[-1]
    return f"{h}x{w}" if len(shapes) == 1 else f"{len(shapes)} sizes up to {h}x{w}"


def spread(cases: list[Case], cap: int) -> list[Case]:
    """At most ``cap`` cases, evenly spread over the list (which may be ordered by size)."""
    if len(cases) <= cap:
        return cases
    return [cases[i] for i in np.linspace(0, len(cases) - 1, cap).round().astype(int)]


def time_convention(kind: Kind, cases: list[Case], convention: str, args: argparse.Namespace) -> Row:
    """Alternating rounds of medseg_eval and the reference of ``convention`` on ``cases``."""
    if not args.skip_references:
        with runner([tiny_case()], files=kind.files, batch=1, device="cpu") as warm:
            warm.reference(convention)  # imports and first-call set-up, outside the timed rounds
    with runner(cases, files=kind.files, batch=args.batch, device=args.device) as run:
        run.ours(convention)  # warm-up (allocations, CUDA context)
        ours_s, ref_s = [], []
        for _ in range(args.repeats):
            seconds, ours = timed(lambda: run.ours(convention), run.cuda)
            ours_s.append(seconds)
            if not args.skip_references:
                seconds, ref = timed(lambda: run.reference(convention))
                ref_s.append(seconds)
    row = Row(kind.name, size_label(cases), len(cases), convention, statistics.median(ours_s) * 1e3 / len(cases))
    if ref_s:
        row.reference_ms = statistics.median(ref_s) * 1e3 / len(cases)
        row.ratios = sorted(r / o for o, r in zip(ours_s, ref_s))
        row.diff = max_relative_difference(ours, ref)
    return row


def memory_cell(kind: str, libraries: list[str], args: argparse.Namespace) -> str:
    """``"ours/ref MB (ours/ref B/px)"`` from one fresh process per library."""
    found = [measure(kind, library, quick=args.quick, cases=args.cases) for library in libraries]
    errors = [f"{library}: {m['error']}" for library, m in zip(libraries, found) if "error" in m]
    if errors:
        print(f"peak memory of {kind} not measured: {'; '.join(errors)}", file=sys.stderr)
        return "n/a"
    mb = "/".join(f"{m['bytes'] / 2**20:.{1 if m['bytes'] < 10 * 2**20 else 0}f}" for m in found)
    per_pixel = "/".join(f"{m['bytes'] / m['pixels']:.0f}" for m in found)
    return f"{mb} MB ({per_pixel} B/px)"


def run_kind(kind: Kind, args: argparse.Namespace) -> list[Row]:
    """The kind's rows, one per convention, peak memory on the surface-distance row (else the first)."""
    cases = kind.make(args.quick, args.cases)
    conventions = [c for c in ALL_REFERENCES if c in args.references and c in kind.references]
    rows = [time_convention(kind, cases if c == "surface-distance" else spread(cases, kind.slow_cap), c, args)
            for c in conventions]
    if rows and not args.skip_memory:
        with_reference = "surface-distance" in conventions and not args.skip_references
        lead = rows[conventions.index("surface-distance")] if with_reference else rows[0]
        lead.memory = memory_cell(kind.name, ["medseg_eval"] + ["surface-distance"] * with_reference, args)
    return rows


def _ms(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"


def _x(ratio: float) -> str:
    return f"{ratio:.1f}" if ratio >= 1 else f"{ratio:.2f}"


def cells(row: Row, first: bool) -> list[str]:
    """The table's cells of ``row``; kind and size only on a kind's first row."""
    ratio = f"{_x(row.ratio)}x ({_x(row.ratios[0])}-{_x(row.ratios[-1])}x)" if row.ratios else ""
    return [row.kind if first else "", row.size if first else "", str(row.cases), row.convention,
            _ms(row.ours_ms), _ms(row.reference_ms), ratio, row.memory,
            "" if row.diff is None else f"{row.diff:.0e}"]


def table(groups: list[list[Row]], markdown: bool) -> str:
    """The rows as a Markdown table, or as aligned text."""
    body = [cells(row, i == 0) for group in groups for i, row in enumerate(group)]
    if markdown:
        lines = [COLUMNS, ["---"] * len(COLUMNS), *body]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in [COLUMNS, *body]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) if i > 3 else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
                     for line in [COLUMNS, *body])


def _commit() -> str:
    """The checkout's commit, marked when the package has uncommitted changes."""
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], check=False, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1])
        return done.stdout.strip()

    changed = " + uncommitted changes to medseg_eval" if git("status", "--porcelain", "--", "medseg_eval") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + changed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from: {', '.join(KINDS)}")
    parser.add_argument("--references", default=",".join(ALL_REFERENCES), help="comma-separated conventions")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of ours then the reference; medians are reported (--lesions: best of)")
    parser.add_argument("--cases", type=int, help="cases per kind: generated kinds make this many, real ones take "
                                                  "at most this many (default: each kind's own)")
    parser.add_argument("--batch", type=int, default=64, help="cases of one shape per medseg_eval call")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts: a smoke run")
    parser.add_argument("--device", default="cpu", help="medseg_eval's device (the references run on the CPU)")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: torch's own choice)")
    parser.add_argument("--skip-references", action="store_true", help="time medseg_eval only (e.g. on a GPU)")
    parser.add_argument("--skip-memory", action="store_true", help="no peak-memory processes")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown, as README has it")
    parser.add_argument("--lesions", action="store_true", help="time the lesion metrics and component labelling")
    args = parser.parse_args(argv)
    args.kinds = args.kinds.split(",")
    args.references = args.references.split(",")
    for what, given, known in (("kind", args.kinds, KINDS), ("reference", args.references, ALL_REFERENCES)):
        unknown = [k for k in given if k not in known]
        if unknown:
            parser.error(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lesions:
        from benchmarks.lesion_speed import lesion_benchmark

        lesion_benchmark(cases=args.cases or (8 if args.quick else 200), size=64 if args.quick else 512,
                         batch=args.batch, repeats=args.repeats, device=args.device,
                         skip_references=args.skip_references)
        return
    device = torch.device(args.device)
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU ({threads} thread{'s' * (threads > 1)})")
    lead = next((c for c in ALL_REFERENCES if c in args.references), "")
    print(f"medseg_eval speed suite{' (--quick)' if args.quick else ''}, commit {_commit()}, "
          f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__} on {where}; "
          f"python {platform.python_version()}; ratio = reference time / medseg_eval time", flush=True)
    groups = []
    for name in args.kinds:
        start = time.perf_counter()
        try:
            groups.append(run_kind(KINDS[name], args))
        except pytest.skip.Exception as skipped:  # real data absent (tests/support/real_data.py says where it looks)
            print(f"{name}: skipped, {skipped.msg}", file=sys.stderr)
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    groups = [g for g in groups if g]
    if not args.skip_references:
        groups.sort(key=lambda g: next((r.ratio for r in g if r.convention == lead), g[0].ratio))
    print(table(groups, args.markdown))
    lead_rows = [r for g in groups for r in g if r.convention == lead and r.ratios]
    if lead_rows:
        smallest = min(lead_rows, key=lambda r: r.ratio)
        print(f"smallest ratio: {_x(smallest.ratio)}x ({smallest.kind})")
        print(f"median kind ratio: {_x(statistics.median(r.ratio for r in lead_rows))}x ({lead})")
    wrong = [f"{r.kind} ({r.convention}): {r.diff:.1e}" for g in groups for r in g if r.diff is not None
             and not r.diff <= TOLERANCE]
    if wrong:
        raise SystemExit(f"medseg_eval's numbers differ from the references' by more than {TOLERANCE:g}: "
                         + "; ".join(wrong))


if __name__ == "__main__":
    main()
