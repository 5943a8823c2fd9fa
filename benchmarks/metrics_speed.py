"""Speed of the full metric set, medseg_eval side by side with the reference libraries.

Each library computes Dice, HD, HD95, ASSD and NSD at 2 px (MedPy: no NSD) on the same seeded
512x512 cases, in its own convention, in this one process; medseg_eval computes the same numbers in
that library's convention. ``--repeats`` rounds time medseg_eval, then the reference, in turn;
reported are the median cases/s of each, the median of the rounds' ratios ours / reference and their
range, and the largest relative difference between the two sets of numbers (it must be ~0).

``--data baseline`` uses the case mix of ``../shared/notes/baseline_bench.md`` (smaller objects),
where the reference timings quoted in the issue were measured. ``--data drive`` uses real masks: DRIVE's 20 test images, the second observer scored
against the first inside the field of view (both masked by it, for every library alike).

``--data kvasir-predictions`` uses real predictions at full resolution: U-Net's and MISSFormer's from the
reduced Kvasir-SEG runs (a few epochs, so ragged and scattered) on the 120 test images, against the release's
masks (``benchmarks/data/kvasir_reduced_predictions.npz``; the masks from ``../shared/data``).

``--lesions`` times the lesion metrics instead (lesion recall, precision, F1, false-positive
objects): 512x512 cases with 1-30 lesions of radii 1-40 px, against the tests' slow, obvious
reference (skimage labels, Python loops over lesions and objects) and
against skimage's labelling with the matching done by ``np.bincount`` (what a careful user
writes); then the worst cases for component labelling (a serpentine and a spiral filling the
image) against ``skimage.measure.label``.

Run from the repository root::

    python -m benchmarks.metrics_speed --cases 200
    python -m benchmarks.metrics_speed --lesions --cases 200
    python -m benchmarks.metrics_speed --data drive
    python -m benchmarks.metrics_speed --data kvasir-predictions --repeats 1
    python -m benchmarks.metrics_speed --cases 1000 --batch 1000 --device cuda --skip-references
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.baseline_cases import baseline_cases
from medseg_eval import metrics
from tests.cases import Case, random_cases

NAMES = ["dice", "hausdorff", "hd95", "assd", "nsd"]


def _time_ours(batches: list[tuple[torch.Tensor, torch.Tensor]], convention: str) -> tuple[float, dict]:
    """Wall time for the batches ``(pred, target)`` in turn, and the values in case order."""
    cuda = batches[0][0].is_cuda
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    parts = [metrics.compute(pred, target, NAMES, convention=convention) for pred, target in batches]
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return elapsed, {m: torch.cat([p[m] for p in parts])[:, 0].cpu().numpy() for m in NAMES}


def kvasir_prediction_cases() -> list[Case]:
    """Real predictions: two models of the reduced Kvasir-SEG runs (``leaderboards/kvasir-seg``) on the 120
    test images at their own sizes (up to 1920x1072), against the release's masks; ordered by shape."""
    from tests.real_data import kvasir_masks

    with np.load(Path(__file__).parent / "data" / "kvasir_reduced_predictions.npz") as stored:
        predictions = dict(stored)
    truth = dict(kvasir_masks(ids=sorted({k.split("/", 1)[1] for k in predictions})))
    cases = [Case((p > 0).astype(np.int64), truth[k.split("/", 1)[1]].astype(np.int64), 2, k)
             for k, p in sorted(predictions.items()) if p.any()]
    return sorted(cases, key=lambda c: c.target.shape)


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


def lesion_cases(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ground truths with 1-30 disc lesions (radii 1-40 px) and predictions that find, miss and invent some."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    pred = np.zeros((count, size, size), np.uint8)
    target = np.zeros((count, size, size), np.uint8)
    for i in range(count):
        for _ in range(int(rng.integers(1, 31))):
            r = float(np.exp(rng.uniform(0, np.log(40))))
            cy, cx = rng.uniform(0, size, 2)
            target[i][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 1
            if rng.random() < 0.7:
                r2, dy, dx = r * rng.uniform(0.6, 1.3), *rng.normal(0, 2, 2)
                pred[i][(yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= r2 * r2] = 1
        for _ in range(int(rng.integers(0, 6))):
            y, x = rng.integers(0, size - 8, 2)
            pred[i, y:y + 6, x:x + 6] = 1
    return pred, target


def _skimage_lesions(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Lesion recall, precision, F1 and false-positive objects per case with skimage labels and NumPy."""
    from skimage.measure import label

    out = np.zeros((len(pred), 4))
    for i, (p, t) in enumerate(zip(pred, target)):
        lesions, objects = label(t > 0, connectivity=2), label(p > 0, connectivity=2)
        n_les, n_obj = lesions.max(), objects.max()
        both = (p > 0) & (t > 0)
        detected = np.count_nonzero(np.bincount(lesions[both], minlength=n_les + 1)[1:])
        hits = np.count_nonzero(np.bincount(objects[both], minlength=n_obj + 1)[1:])
        recall = detected / n_les if n_les else float(n_obj == 0)
        precision = hits / n_obj if n_obj else float(n_les == 0)
        f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
        out[i] = recall, precision, f1, n_obj - hits
    return out


def lesion_benchmark(args: argparse.Namespace) -> None:
    from skimage.measure import label

    from tests.test_metrics_lesions import snake, spiral

    pred_np, target_np = lesion_cases(args.cases, args.size)
    pred = torch.from_numpy(pred_np).to(args.device)
    target = torch.from_numpy(target_np).to(args.device)
    names = list(metrics.LESION_METRICS)

    def ours() -> np.ndarray:
        parts = [metrics.compute(pred[i:i + args.batch], target[i:i + args.batch], names)
                 for i in range(0, len(pred), args.batch)]
        return np.stack([torch.cat([p[m] for p in parts])[:, 0].cpu().numpy() for m in names], 1)

    device = torch.cuda.get_device_name() if pred.is_cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.cases} cases of {args.size}x{args.size} with 1-30 lesions; torch {torch.__version__} on {device}")
    ours_s, values = _best_of(ours, args.repeats, pred.is_cuda)
    line = f"lesion metrics   medseg_eval {args.cases / ours_s:8.1f} cases/s"
    print(line)
    if not args.skip_references:
        from tests.lesion_reference import reference_lesions

        start = time.perf_counter()
        _, counts = reference_lesions(pred_np, target_np, 2)
        slow_s = time.perf_counter() - start
        recall = np.array([d / n if n else float(o == 0) for (n, d, o, _) in (counts[i, 1] for i in range(args.cases))])
        print(f"slow reference   skimage + loops  {args.cases / slow_s:8.2f} cases/s   ours / it {slow_s / ours_s:7.1f}x   "
              f"max abs diff {np.abs(values[:, 0] - recall).max():.1e}")
        start = time.perf_counter()
        reference = _skimage_lesions(pred_np, target_np)
        ref_s = time.perf_counter() - start
        print(f"fast reference   skimage + NumPy  {args.cases / ref_s:8.1f} cases/s   ours / it {ref_s / ours_s:7.1f}x   "
              f"max abs diff {np.abs(values - reference).max():.1e}")
    for name, mask in (("serpentine", snake(args.size, args.size)), ("spiral", spiral(args.size - 1))):
        batch = torch.from_numpy(mask)[None].to(args.device)
        seconds, labels = _best_of(lambda b=batch: metrics.label_components(b)[0].cpu().numpy(), args.repeats,
                                   batch.is_cuda)
        start = time.perf_counter()
        expected = label(mask, connectivity=2)
        ref_s = time.perf_counter() - start
        assert (labels == expected).all()
        print(f"worst case {name:<11} one component of {int(mask.sum())} px: label_components {seconds * 1e3:7.1f} ms, "
              f"skimage.measure.label {ref_s * 1e3:6.1f} ms")


def _best_of(run, repeats: int, cuda: bool):
    result = run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = run()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["synthetic", "baseline", "drive", "kvasir-predictions"],
                        default="synthetic")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of ours then the reference; medians are reported (--lesions: best of)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-references", action="store_true", help="time medseg_eval only (e.g. on a GPU)")
    parser.add_argument("--lesions", action="store_true", help="time the lesion metrics and component labelling")
    args = parser.parse_args()
    if args.lesions:
        lesion_benchmark(args)
        return

    if args.data == "kvasir-predictions":
        cases = kvasir_prediction_cases()
    elif args.data == "drive":
        from tests.real_data import drive_test_pairs

        cases = [Case((second & fov).astype(np.int64), (first & fov).astype(np.int64), 2, "drive")
                 for _, second, first, fov in drive_test_pairs()]
    else:
        generated = (baseline_cases(args.cases * 2, args.size) if args.data == "baseline"
                     else random_cases(args.cases * 2, seed=0, shape=(args.size, args.size)))
        # Cases whose masks are both non-empty, so that every library returns a number.
        cases = [c for c in generated if c.num_classes == 2 and c.pred.any() and c.target.any()][: args.cases]
    # Label maps as they are stored (uint8); conversions stay outside the timed region for everyone. Batches of
    # `--batch` cases of one shape (cases of different shapes, as in evaluate, in batches of their own).
    batches = []
    for _, group in itertools.groupby(cases, key=lambda c: c.target.shape):
        group = list(group)
        for i in range(0, len(group), args.batch):
            batches.append(tuple(torch.from_numpy(np.stack([getattr(c, a) for c in group[i:i + args.batch]])
                                                  .astype(np.uint8)).to(args.device) for a in ("pred", "target")))
    device = torch.cuda.get_device_name() if batches[0][0].is_cuda else f"CPU ({torch.get_num_threads()} threads)"
    shapes = sorted({c.target.shape for c in cases})
    size = f"{shapes[0][0]}x{shapes[0][1]}" if len(shapes) == 1 else f"{len(shapes)} sizes up to {max(shapes)[0]}x{max(shapes)[1]}"
    print(f"{len(cases)} {args.data} cases of {size}, one class; torch {torch.__version__} on {device}; "
          f"python {platform.python_version()}")
    print(f"{'convention':<18}{'medseg_eval cases/s':>21}{'reference cases/s':>19}{'ratio':>8}{'range':>13}"
          f"{'max rel diff':>14}")
    for convention in ("surface-distance", "monai", "medpy"):
        _time_ours(batches, convention)  # warm-up (allocations, CUDA context)
        # Rounds alternate ours and the reference, and medians are reported: on a shared machine the speed
        # of both drifts by tens of percent within a minute, and a drift then moves both alike.
        ours_s, ref_s = [], []
        for _ in range(args.repeats):
            seconds, ours = _time_ours(batches, convention)
            ours_s.append(seconds)
            if not args.skip_references:
                seconds, ref = _time_reference(convention, cases)
                ref_s.append(seconds)
        ours_rate = len(cases) / statistics.median(ours_s)
        if args.skip_references:
            print(f"{convention:<18}{ours_rate:>21.1f}")
            continue
        ratios = sorted(r / o for o, r in zip(ours_s, ref_s))
        diff = max(
            float(np.nanmax(np.abs(ours[m] - ref[m]) / np.maximum(np.abs(ref[m]), 1e-12), initial=0.0))
            for m in NAMES if not np.isnan(ref[m]).all()
        )
        print(f"{convention:<18}{ours_rate:>21.1f}{len(cases) / statistics.median(ref_s):>19.1f}"
              f"{statistics.median(ratios):>7.1f}x{f'{ratios[0]:.1f}-{ratios[-1]:.1f}x':>13}{diff:>14.1e}")


if __name__ == "__main__":
    main()
