"""Every convention against the library it reproduces, on hundreds of seeded random cases.

Cases cover ellipses moved in, out and sideways, false-positive blobs, missed lesions, noisy
boundaries, thin lines, objects on the image border and 4-class maps, in random non-square sizes,
with isotropic and anisotropic spacing. Values must agree to 1e-6 relative.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import pytest
import torch

from medseg_eval import metrics
from medseg_eval.metrics import engine
from tests.support.cases import random_cases
from tests.support.references import REFERENCES

N_CASES = 315  # 35 of each of the 9 kinds
SPACINGS = {"isotropic": (1.0, 1.0), "anisotropic": (0.5, 0.8)}
RTOL, ATOL = 1e-6, 1e-9
DISTANCES = ["hausdorff", "hd95", "assd", "masd", "nsd"]


@functools.cache
def comparison(convention: str, spacing_name: str, percentile: float = 95.0, tolerance: float = 2.0,
               names: tuple[str, ...] | None = None):
    """(ours, reference) value lists per metric over every non-empty (case, class) pair; only the
    reference values named in ``names`` when given."""
    spacing = SPACINGS[spacing_name]
    seed = zlib.crc32(repr((convention, spacing_name, percentile)).encode())
    ours_all: dict[str, list[float]] = {}
    refs_all: dict[str, list[float]] = {}
    labels: list[str] = []
    for i, case in enumerate(random_cases(N_CASES, seed=seed)):
        ours = metrics.compute(
            case.pred, case.target, list(metrics.METRICS), num_classes=case.num_classes, spacing=spacing,
            convention=convention, percentile=percentile, tolerance=tolerance,
        )
        for k in range(1, case.num_classes):
            p, g = case.pred == k, case.target == k
            if not (p.any() and g.any()):
                continue
            ref = REFERENCES[convention](p, g, spacing, percentile, tolerance, names=names)
            labels.append(f"case {i} ({case.kind}, {case.target.shape}) class {k}")
            for name, value in ref.items():
                # "nsd@monai-subvoxels": a second library's value for our "nsd".
                refs_all.setdefault(name, []).append(float(value))
                ours_all.setdefault(name, []).append(ours[name.split("@")[0]][0, k - 1].item())
    return ours_all, refs_all, labels


def assert_agree(ours: list[float], ref: list[float], labels: list[str], what: str) -> None:
    a, b = np.asarray(ours), np.asarray(ref)
    bad = ~np.isclose(a, b, rtol=RTOL, atol=ATOL)
    detail = "; ".join(f"{labels[i]}: ours {a[i]!r} ref {b[i]!r}" for i in np.flatnonzero(bad)[:5])
    assert not bad.any(), f"{what}: {bad.sum()}/{len(a)} disagree: {detail}"


@pytest.mark.parametrize("spacing_name", list(SPACINGS))
@pytest.mark.parametrize("convention", ["surface-distance", "monai", "medpy"])
def test_distance_metrics_match_reference_library(convention: str, spacing_name: str) -> None:
    ours, ref, labels = comparison(convention, spacing_name)
    assert len(labels) >= 300
    for name in ref:
        assert_agree(ours[name], ref[name], labels, f"{convention} {name} ({spacing_name})")


@pytest.mark.parametrize("percentile", [50.0, 90.0, 99.0])
@pytest.mark.parametrize("convention", ["surface-distance", "monai", "medpy"])
def test_other_percentiles_match_reference_library(convention: str, percentile: float) -> None:
    ours, ref, labels = comparison(convention, "anisotropic", percentile=percentile, tolerance=1.3,
                                   names=("hd95", "nsd", "nsd@monai", "nsd@monai-subvoxels"))
    assert {name.split("@")[0] for name in ref} == {"hd95", "nsd"}
    for name in ref:
        assert_agree(ours[name], ref[name], labels, f"{convention} {name} at p={percentile}, tol=1.3")


# Pixels per chunk and per block of the pixel passes; a case of 48x64 with 3 classes is 9216 pixels.
CHUNKINGS = {"defaults": (None, None), "chunks of 2 cases": (20000, None), "blocks of 2 cases": (None, 20000),
             "chunks of 6 cases in blocks of 2": (60000, 20000)}


@pytest.mark.parametrize("chunking", list(CHUNKINGS))
def test_batched_call_equals_case_by_case(chunking: str, monkeypatch) -> None:
    for name, pixels in zip(("_CPU_PIXELS_PER_CHUNK", "_CPU_PIXELS_PER_BLOCK"), CHUNKINGS[chunking]):
        if pixels is not None:
            monkeypatch.setattr(engine, name, pixels)
    cases = random_cases(40, seed=11, shape=(48, 64))
    pred = torch.from_numpy(np.stack([c.pred for c in cases]))
    target = torch.from_numpy(np.stack([c.target for c in cases]))
    spacing = torch.rand(len(cases), 2, dtype=torch.float64) + 0.5
    for convention in ("surface-distance", "monai", "medpy"):
        names = [*DISTANCES, "dice", "fp"]
        batched = metrics.compute(pred, target, names, num_classes=4, spacing=spacing, convention=convention)
        for i in range(len(cases)):
            single = metrics.compute(pred[i], target[i], names, num_classes=4, spacing=spacing[i],
                                     convention=convention)
            for name in names:
                torch.testing.assert_close(batched[name][i], single[name][0], rtol=0, atol=0, equal_nan=True)


@pytest.mark.filterwarnings("ignore::medseg_eval.metrics.PercentileWarning")  # shares under 1%
def test_percentiles_at_a_tie_between_distances_match_deepmind() -> None:
    # DeepMind sorts (distance, contour length) pairs and takes the first distance whose cumulative
    # length share reaches the percentile. At a percentile equal to the share where one distance
    # ends, the order of the lengths within that distance decides, by rounding, which side wins.
    from tests.support.references import deepmind

    spacing = (0.7, 1.3)  # four different contour lengths
    checked = 0
    for case in random_cases(30, seed=3, shape=(32, 40)):
        pred, gt = case.pred == 1, case.target == 1
        if not (pred.any() and gt.any()):
            continue
        sd = deepmind.compute_surface_distances(gt, pred, spacing_mm=spacing)
        percentiles = []
        for d, w in ((sd["distances_gt_to_pred"], sd["surfel_areas_gt"]),
                     (sd["distances_pred_to_gt"], sd["surfel_areas_pred"])):
            share = np.cumsum(w) / np.sum(w)
            ends = share[:-1][d[:-1] != d[1:]]
            percentiles += [float(s * 100) for s in ends if s * 100 / 100 == s]
        for p in percentiles:
            ours = metrics.hd95(pred, gt, spacing=spacing, percentile=p, convention="surface-distance").item()
            assert ours == deepmind.compute_robust_hausdorff(sd, p), (case.kind, p)
        checked += len(percentiles)
    assert checked > 300


@pytest.mark.parametrize("setting", ["_CPU_PIXELS_PER_CHUNK", "_CPU_PIXELS_PER_BLOCK"])
def test_each_chunk_counts_its_own_cases_region_of_interest(setting: str, monkeypatch) -> None:
    monkeypatch.setattr(engine, setting, 20000)  # chunks (or blocks) of 6 cases of 48x64
    cases = [c for c in random_cases(40, seed=5, shape=(48, 64)) if c.num_classes == 2][:20]
    pred = np.stack([c.pred for c in cases])
    target = np.stack([c.target for c in cases])
    rng = np.random.default_rng(5)
    roi = np.zeros(pred.shape, bool)
    for r in roi:  # a different rectangle per case
        top, left = rng.integers(0, 20), rng.integers(0, 30)
        r[top:top + rng.integers(10, 28), left:left + rng.integers(10, 34)] = True
    out = metrics.compute(pred, target, ["tn", "fp", "specificity", "hd95"], roi=roi)
    tn = ((pred == 0) & (target == 0) & roi).sum((1, 2))
    fp = ((pred == 1) & (target == 0) & roi).sum((1, 2))
    np.testing.assert_array_equal(out["tn"][:, 0].numpy(), tn)
    np.testing.assert_array_equal(out["fp"][:, 0].numpy(), fp)
    for i in range(len(cases)):
        single = metrics.compute(pred[i], target[i], ["specificity", "hd95"], roi=roi[i])
        for name in ("specificity", "hd95"):
            torch.testing.assert_close(out[name][i], single[name][0], rtol=0, atol=0, equal_nan=True)


def test_row_sums_are_numpys_pairwise_sums_bit_for_bit() -> None:
    # Values spread over many orders of magnitude: a sum taken in another order differs in the last bits.
    from medseg_eval.metrics.percentiles import _numpy_row_sums

    rng = np.random.default_rng(7)
    for _ in range(60):
        rows, length = int(rng.integers(1, 30)), int(rng.integers(1, 3000))
        w = np.exp(rng.normal(0, 8, (rows, length)))
        count = rng.integers(0, length + 1, rows)
        count[0] = length
        got = _numpy_row_sums(torch.from_numpy(w), torch.from_numpy(count)).numpy()
        want = np.array([np.sum(w[i, :c]) for i, c in enumerate(count)])
        np.testing.assert_array_equal(got, want)


def test_weighted_percentile_at_exact_length_shares_matches_numpy() -> None:
    # Rows of up to 4000 contour lengths (four values, so many cumulative shares tie across rows) and
    # percentiles set exactly at one of NumPy's shares cumsum / numpy.sum, where the total's rounding
    # decides the side: the engine forms NumPy's pairwise total only for rows with a share that close.
    from medseg_eval.metrics.percentiles import _weighted_percentile

    rng = np.random.default_rng(1)
    for _ in range(100):
        rows, length = int(rng.integers(1, 12)), int(rng.integers(1, 4000))
        sy, sx = rng.choice([0.3, 0.7, 1.0, 1.3, 2.9], 2)
        w = np.array([0.5 * np.hypot(sy, sx), sx, sy, np.hypot(sy, sx)])[rng.integers(0, 4, (rows, length))]
        count = rng.integers(1, length + 1, rows)
        w[np.arange(length) >= count[:, None]] = 0.0
        d = np.sort(rng.integers(0, 50, (rows, length)).astype(float), 1)
        shares = [np.cumsum(w[i, :c]) / np.sum(w[i, :c]) for i, c in enumerate(count)]
        row = rng.integers(rows)
        for q in [float(rng.choice(shares[row])), float(rng.random())]:
            got = _weighted_percentile(*(torch.from_numpy(x) for x in (d, w, count)), q).numpy()
            want = [d[i, min(np.searchsorted(s, q), c - 1)] for i, (s, c) in enumerate(zip(shares, count))]
            np.testing.assert_array_equal(got, want)
