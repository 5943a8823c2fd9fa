"""Speed of the full metric set, medseg_eval side by side with the reference libraries.

Each library computes Dice, HD, HD95, ASSD and NSD at 2 px (MedPy: no NSD) on the same seeded
512x512 cases, in its own convention, in this one process; medseg_eval computes the same numbers in
that library's convention. Reported: cases/s and the ratio ours / reference, plus the largest
relative difference between the two sets of numbers (it must be ~0).

``--data baseline`` uses the case mix of ``../shared/notes/baseline_bench.md`` (smaller objects),
where the reference timings quoted in the issue were measured. ``--data drive`` uses real masks: DRIVE's 20 test images, the second observer scored
against the first inside the field of view (both masked by it, for every library alike).

Run from the repository root::

    python -m benchmarks.metrics_speed --cases 200
    python -m benchmarks.metrics_speed --data drive
    python -m benchmarks.metrics_speed --cases 1000 --batch 1000 --device cuda --skip-references
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from medseg_eval import metrics
from benchmarks.baseline_cases import baseline_cases
from tests.cases import Case, random_cases

NAMES = ["dice", "hausdorff", "hd95", "assd", "nsd"]


def _time_ours(pred: torch.Tensor, target: torch.Tensor, convention: str, batch: int, repeats: int) -> tuple[float, dict]:
    def run() -> dict:
        parts = [
            metrics.compute(pred[i:i + batch], target[i:i + batch], NAMES, convention=convention)
            for i in range(0, len(pred), batch)
        ]
        return {m: torch.cat([p[m] for p in parts]) for m in NAMES}

    run()  # warm-up (allocations, CUDA context)
    best = float("inf")
    for _ in range(repeats):
        if pred.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run()
        if pred.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, {m: v[:, 0].cpu().numpy() for m, v in out.items()}


def _time_reference(convention: str, cases) -> tuple[float, dict]:
    from tests.references import REFERENCES  # the reference libraries are test dependencies

    reference = REFERENCES[convention]
    masks = [(c.pred == 1, c.target == 1) for c in cases]
    values: dict[str, list[float]] = {m: [] for m in NAMES}
    start = time.perf_counter()
    outputs = [reference(pred, gt, (1.0, 1.0), 95.0, 2.0, names=NAMES) for pred, gt in masks]
    elapsed = time.perf_counter() - start
    for out in outputs:
        for m in NAMES:
            values[m].append(out.get(m, np.nan))
    return elapsed, {m: np.asarray(v) for m, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["synthetic", "baseline", "drive"], default="synthetic")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-references", action="store_true", help="time medseg_eval only (e.g. on a GPU)")
    args = parser.parse_args()

    if args.data == "drive":
        from tests.real_data import drive_test_pairs

        cases = [Case((second & fov).astype(np.int64), (first & fov).astype(np.int64), 2, "drive")
                 for _, second, first, fov in drive_test_pairs()]
    else:
        generated = (baseline_cases(args.cases * 2, args.size) if args.data == "baseline"
                     else random_cases(args.cases * 2, seed=0, shape=(args.size, args.size)))
        # Cases whose masks are both non-empty, so that every library returns a number.
        cases = [c for c in generated if c.num_classes == 2 and c.pred.any() and c.target.any()][: args.cases]
    # Label maps as they are stored (uint8); conversions stay outside the timed region for everyone.
    pred = torch.from_numpy(np.stack([c.pred for c in cases]).astype(np.uint8)).to(args.device)
    target = torch.from_numpy(np.stack([c.target for c in cases]).astype(np.uint8)).to(args.device)
    device = torch.cuda.get_device_name() if pred.is_cuda else f"CPU ({torch.get_num_threads()} threads)"
    height, width = cases[0].target.shape
    print(f"{len(cases)} {args.data} cases of {height}x{width}, one class; torch {torch.__version__} on {device}; "
          f"python {platform.python_version()}")
    print(f"{'convention':<18}{'medseg_eval cases/s':>21}{'reference cases/s':>19}{'ratio':>8}{'max rel diff':>14}")
    for convention in ("surface-distance", "monai", "medpy"):
        ours_s, ours = _time_ours(pred, target, convention, args.batch, args.repeats)
        ours_rate = len(cases) / ours_s
        if args.skip_references:
            print(f"{convention:<18}{ours_rate:>21.1f}")
            continue
        ref_s, ref = _time_reference(convention, cases)
        ref_rate = len(cases) / ref_s
        diff = max(
            float(np.nanmax(np.abs(ours[m] - ref[m]) / np.maximum(np.abs(ref[m]), 1e-12), initial=0.0))
            for m in NAMES if not np.isnan(ref[m]).all()
        )
        print(f"{convention:<18}{ours_rate:>21.1f}{ref_rate:>19.1f}{ours_rate / ref_rate:>7.1f}x{diff:>14.1e}")


if __name__ == "__main__":
    main()
