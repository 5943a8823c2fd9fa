"""Speed of the lesion metrics and of component labelling (``python -m benchmarks.speed_suite --lesions``).

The lesion metrics (lesion recall, precision, F1, false-positive objects) on 512x512 cases with 1-30
lesions of radii 1-40 px, against the tests' slow, obvious reference (skimage labels, Python loops
over lesions and objects) and against skimage's labelling with the matching done by ``np.bincount``
(what a careful user writes); then the worst cases for component labelling (a serpentine and a
spiral filling the image) against ``skimage.measure.label``. Times are the best of ``repeats`` after
a warm-up.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from benchmarks.runners import timed
from medseg_eval import metrics


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


def lesion_benchmark(*, cases: int, size: int, batch: int, repeats: int, device: str, skip_references: bool) -> None:
    """Print the lesion metrics' cases/s against both references, then the labelling worst cases."""
    from skimage.measure import label

    from tests.metrics.test_metrics_lesions import snake, spiral

    pred_np, target_np = lesion_cases(cases, size)
    pred = torch.from_numpy(pred_np).to(device)
    target = torch.from_numpy(target_np).to(device)
    names = list(metrics.LESION_METRICS)

    def ours() -> np.ndarray:
        parts = [metrics.compute(pred[i:i + batch], target[i:i + batch], names)
                 for i in range(0, len(pred), batch)]
        return np.stack([torch.cat([p[m] for p in parts])[:, 0].cpu().numpy() for m in names], 1)

    where = torch.cuda.get_device_name() if pred.is_cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{cases} cases of {size}x{size} with 1-30 lesions; torch {torch.__version__} on {where}")
    ours_s, values = _best_of(ours, repeats, pred.is_cuda)
    print(f"lesion metrics   medseg_eval {cases / ours_s:8.1f} cases/s")
    if not skip_references:
        from tests.support.lesion_reference import reference_lesions

        start = time.perf_counter()
        _, counts = reference_lesions(pred_np, target_np, 2)
        slow_s = time.perf_counter() - start
        recall = np.array([d / n if n else float(o == 0) for (n, d, o, _) in (counts[i, 1] for i in range(cases))])
        print(f"slow reference   skimage + loops  {cases / slow_s:8.2f} cases/s   ours / it {slow_s / ours_s:7.1f}x   "
              f"max abs diff {np.abs(values[:, 0] - recall).max():.1e}")
        start = time.perf_counter()
        reference = _skimage_lesions(pred_np, target_np)
        ref_s = time.perf_counter() - start
        print(f"fast reference   skimage + NumPy  {cases / ref_s:8.1f} cases/s   ours / it {ref_s / ours_s:7.1f}x   "
              f"max abs diff {np.abs(values - reference).max():.1e}")
    for name, mask in (("serpentine", snake(size, size)), ("spiral", spiral(size - 1))):
        one = torch.from_numpy(mask)[None].to(device)
        seconds, labels = _best_of(lambda b=one: metrics.label_components(b)[0].cpu().numpy(), repeats, one.is_cuda)
        start = time.perf_counter()
        expected = label(mask, connectivity=2)
        ref_s = time.perf_counter() - start
        assert (labels == expected).all()
        print(f"worst case {name:<11} one component of {int(mask.sum())} px: label_components {seconds * 1e3:7.1f} ms, "
              f"skimage.measure.label {ref_s * 1e3:6.1f} ms")


def _best_of(run, repeats: int, cuda: bool):
    """The shortest of ``repeats`` timed calls after a warm-up, and the last result."""
    result = run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        seconds, result = timed(run, cuda)
        best = min(best, seconds)
    return best, result
