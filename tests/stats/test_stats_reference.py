"""medseg_eval.stats against scipy.stats, scikit-posthocs, statsmodels and Demšar (2006)'s worked example."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scikit_posthocs as sp
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from medseg_eval import stats
from medseg_eval.stats import PairedValues

SEEDS = range(100)


def _sample(seed: int, *, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """Paired Dice-like samples; with ``ties``, values on a coarse grid give tied and zero differences."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    x = np.clip(rng.normal(0.8, 0.1, n), 0, 1)
    y = np.clip(x + rng.normal(rng.normal(0, 0.03), 0.05, n), 0, 1)
    if ties:
        x, y = np.round(x, 1), np.round(y, 1)
    return x, y


@pytest.mark.parametrize("seed", SEEDS)
def test_wilcoxon_exact_matches_scipy_without_ties(seed):
    x, y = _sample(seed, ties=False)
    x, y = x[:50], y[:50]
    for alternative in ("two-sided", "greater", "less"):
        ours = stats.wilcoxon(x, y, method="exact", alternative=alternative)
        ref = sps.wilcoxon(x, y, method="exact", alternative=alternative)
        assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_normal_approximation_matches_scipy(seed, zero_method):
    x, y = _sample(seed, ties=seed % 2 == 0)
    if np.all(x == y):
        return
    for correction in (False, True):
        ours = stats.wilcoxon(x, y, method="approx", zero_method=zero_method, correction=correction)
        ref = sps.wilcoxon(x, y, method="asymptotic", zero_method=zero_method, correction=correction)
        assert ours.statistic == pytest.approx(ref.statistic, rel=1e-12)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
        assert ours.details["z"] == pytest.approx(-abs(ref.zstatistic), rel=1e-9) or ours.details["z"] > 0


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_exact_with_ties_and_zeros_matches_full_enumeration(seed, zero_method):
    # scipy's permutation method enumerates all 2**n sign flips: the exact conditional distribution.
    rng = np.random.default_rng(seed)
    n = int(rng.integers(4, 11))
    x = np.round(rng.uniform(0.5, 1, n), 1)
    y = np.round(np.clip(x + rng.normal(0.02, 0.1, n), 0, 1), 1)
    if np.all(x == y):
        return
    ours = stats.wilcoxon(x, y, method="exact", zero_method=zero_method)
    ref = sps.wilcoxon(x, y, zero_method=zero_method, method=sps.PermutationMethod(n_resamples=2**10))
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_auto_is_exact_up_to_the_limit_and_approximate_beyond():
    rng = np.random.default_rng(0)
    small, large = rng.random((2, 40)), rng.random((2, stats.paired.EXACT_WILCOXON_MAX_N + 1))
    assert stats.wilcoxon(*small).method == "exact"
    assert stats.wilcoxon(*large).method == "normal approximation"


def test_wilcoxon_of_identical_samples_is_not_significant():
    x = np.array([0.5, 0.7, 0.9])
    assert stats.wilcoxon(x, x).p_value == 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_paired_t_matches_scipy(seed):
    x, y = _sample(seed, ties=False)
    for alternative in ("two-sided", "greater", "less"):
        ours = stats.paired_t(x, y, alternative=alternative)
        ref = sps.ttest_rel(x, y, alternative=alternative)
        assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
def test_exact_permutation_test_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 13))
    x, y = rng.random(n), rng.random(n)
    for alternative in ("two-sided", "greater", "less"):
        ours = stats.permutation_test(x, y, alternative=alternative)
        ref = sps.permutation_test((x, y), lambda a, b, axis: np.mean(a - b, axis=axis), vectorized=True,
                                   permutation_type="samples", alternative=alternative)
        assert ours.method == "exact"
        assert ours.statistic == pytest.approx(ref.statistic)
        assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_monte_carlo_permutation_test_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(7)
    x, y = rng.random(16), rng.random(16) + 0.1
    exact = stats.permutation_test(x, y, n_resamples=2**16)
    assert exact.method == "exact"
    mc = stats.permutation_test(x, y, n_resamples=9999, seed=3)
    assert mc.method == "monte carlo" and mc.details["seed"] == 3
    assert mc.p_value == stats.permutation_test(x, y, n_resamples=9999, seed=3).p_value
    assert mc.p_value == pytest.approx(exact.p_value, abs=0.015)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("statistic", ["mean", "median"])
def test_bootstrap_ci_matches_scipy_percentile_bootstrap(seed, statistic):
    x, y = _sample(seed, ties=False)
    reduce = {"mean": np.mean, "median": np.median}[statistic]
    est, low, high = stats.bootstrap_ci(x, y, statistic=statistic, n_boot=999, seed=seed, confidence=0.9)
    ref = sps.bootstrap((x - y,), reduce, n_resamples=999, method="percentile", confidence_level=0.9,
                        rng=np.random.default_rng(seed))
    assert est == pytest.approx(reduce(x - y))
    assert (low, high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), rel=1e-12)


def test_effect_sizes_match_their_definitions():
    rng = np.random.default_rng(1)
    for _ in range(50):
        x, y = rng.random(20), rng.random(20)
        d = x - y
        ranks = sps.rankdata(np.abs(d))
        assert stats.rank_biserial(x, y) == pytest.approx((ranks[d > 0].sum() - ranks[d < 0].sum()) / ranks.sum())
        assert stats.cohen_dz(x, y) == pytest.approx(d.mean() / d.std(ddof=1))
    assert stats.rank_biserial([1, 2, 3], [0, 0, 0]) == 1.0
    assert stats.cohen_dz([1, 1], [1, 1]) == 0.0


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_corrections_match_statsmodels(method):
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 20, 55):
        p = rng.random(size) ** 3
        p[: size // 4] = p[0]  # ties
        assert stats.adjust_p(p, method) == pytest.approx(multipletests(p, method=method)[1], rel=1e-12)


def test_correction_leaves_nan_out_of_the_family():
    adjusted = stats.adjust_p([0.01, np.nan, 0.02], "holm")
    assert np.isnan(adjusted[1]) and adjusted[[0, 2]] == pytest.approx([0.02, 0.02])


def _block(seed: int, *, higher: bool = True) -> PairedValues:
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 40)), int(rng.integers(3, 8))
    values = np.round(rng.random((n, k)) + rng.random(k) * 0.5, 1)  # ties within blocks
    return PairedValues("dice" if higher else "hd95", "1", [f"m{i}" for i in range(k)],
                        [str(i) for i in range(n)], values, higher)


@pytest.mark.parametrize("seed", range(50))
def test_friedman_matches_scipy(seed):
    block = _block(seed, higher=seed % 2 == 0)
    ours = stats.friedman(block)
    ref = sps.friedmanchisquare(*block.values.T)
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    n, k = block.values.shape
    assert ours.iman_davenport == pytest.approx((n - 1) * ref.statistic / (n * (k - 1) - ref.statistic), rel=1e-10)


@pytest.mark.parametrize("seed", range(30))
def test_nemenyi_matches_scikit_posthocs(seed):
    block = _block(seed)
    ours = stats.nemenyi(block)
    ref = sp.posthoc_nemenyi_friedman(block.values)
    for row in ours.iter_rows(named=True):
        i, j = (block.models.index(row[m]) for m in ("model_a", "model_b"))
        assert row["p_value"] == pytest.approx(ref.iloc[i, j], rel=1e-9)


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize(("ours_correction", "theirs"),
                         [("holm", "holm"), ("fdr_bh", "fdr_bh"), ("none", None), ("single-step", "single-step")])
def test_conover_matches_scikit_posthocs(seed, ours_correction, theirs):
    block = _block(seed)
    ours = stats.conover(block, correction=ours_correction)
    ref = sp.posthoc_conover_friedman(block.values, p_adjust=theirs)
    for row in ours.iter_rows(named=True):
        i, j = (block.models.index(row[m]) for m in ("model_a", "model_b"))
        assert row["p_adjusted"] == pytest.approx(ref.iloc[i, j], rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("seed", range(10))
def test_pairwise_wilcoxon_with_holm_matches_scipy_and_statsmodels(seed):
    block = _block(seed)
    ours = stats.pairwise_tests(block, test="wilcoxon", correction="holm", test_options={"method": "approx"})
    pairs = itertools.combinations(range(len(block.models)), 2)
    raw = [sps.wilcoxon(block.values[:, i], block.values[:, j], method="asymptotic").pvalue for i, j in pairs]
    assert ours["p_value"].to_numpy() == pytest.approx(raw, rel=1e-9)
    assert ours["p_adjusted"].to_numpy() == pytest.approx(multipletests(raw, method="holm")[1], rel=1e-9)


# Demšar (2006), Table 6: AUC of C4.5 (m = 0, cf = 0.25), C4.5+m, C4.5+cf and C4.5+m+cf on 14 UCI data sets.
# On "voting" the table prints 0.975 for both C4.5+cf and C4.5+m+cf but ranks them 2 and 3 (the unrounded
# values differ); 0.9751 and 0.9749 keep the paper's ranks.
DEMSAR_MODELS = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
DEMSAR_AUC = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.9751, 0.9749], [0.957, 0.978, 0.946, 0.970],
])


@pytest.fixture()
def demsar() -> PairedValues:
    # AUC, higher is better; "dice" stands in for any higher-is-better score.
    return PairedValues("dice", "1", DEMSAR_MODELS, [str(i) for i in range(14)], DEMSAR_AUC, True)


def test_demsar_friedman_example(demsar):
    result = stats.friedman(demsar)
    # "C4.5+m and C4.5+m+cf ranked the second (with ranks 2.000 and 1.964, respectively), and C4.5 and C4.5+cf
    # the third (3.143 and 2.893)"
    assert [round(result.mean_ranks[m], 3) for m in DEMSAR_MODELS] == [3.143, 2.000, 2.893, 1.964]
    # chi2_F = 9.28 and F_F = 3.69 (the paper ignores the tie correction; its ranks are averaged for ties as here)
    uncorrected = 12 * 14 / (4 * 5) * (sum(r**2 for r in result.mean_ranks.values()) - 4 * 5**2 / 4)
    assert round(uncorrected, 2) == 9.28
    assert round((13 * uncorrected) / (14 * 3 - uncorrected), 2) == 3.69
    # "The critical value of F(3, 39) for alpha = 0.05 is 2.85, so we reject the null-hypothesis."
    assert round(sps.f.ppf(0.95, 3, 39), 2) == 2.85 and result.iman_davenport > 2.85 and result.iman_davenport_p < 0.05


def test_demsar_critical_differences_and_groups(demsar):
    # Table 5(a): critical values q_alpha of the Nemenyi test for 2..10 classifiers.
    q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]
    # (the printed table comes from older tables and is off by up to 1 in the third decimal)
    assert [stats.nemenyi_q(k, 0.05) for k in range(2, 11)] == pytest.approx(q05, abs=1.5e-3)
    assert [stats.nemenyi_q(k, 0.10) for k in range(2, 11)] == pytest.approx(q10, abs=1.5e-3)
    # "CD = 2.569 sqrt(4*5 / (6*14)) = 1.25": no pair differs at 0.05 ...
    assert round(stats.critical_difference(4, 14, alpha=0.05), 2) == 1.25
    assert not (stats.nemenyi(demsar)["p_value"] < 0.05).any()
    # ... "At p = 0.10, CD is 1.12": pure C4.5 is worse than C4.5+m and C4.5+m+cf; C4.5+cf is undecided.
    assert round(stats.critical_difference(4, 14, alpha=0.10), 2) == 1.12
    significant = {frozenset((r["model_a"], r["model_b"])) for r in stats.nemenyi(demsar).iter_rows(named=True)
                   if r["p_value"] < 0.10}
    assert significant == {frozenset(("C4.5", "C4.5+m")), frozenset(("C4.5", "C4.5+m+cf"))}
    mean_ranks = stats.friedman(demsar).mean_ranks
    groups = stats.cliques(mean_ranks, stats.critical_difference(4, 14, alpha=0.10))
    assert [set(g) for g in groups] == [{"C4.5+m+cf", "C4.5+m", "C4.5+cf"}, {"C4.5+cf", "C4.5"}]


def test_demsar_comparisons_with_a_control(demsar):
    # Section 3.2.2: C4.5 as the control; z = (R_0 - R_i) / SE with SE = 0.488.
    table = stats.versus_control(demsar, control="C4.5", correction="holm")
    by_model = {r["model_b"]: r for r in table.iter_rows(named=True)}
    for model, z, p in (("C4.5+m+cf", 2.416, 0.016), ("C4.5+m", 2.342, 0.019), ("C4.5+cf", 0.512, 0.607)):
        # the paper rounds the mean ranks to 3 decimals before dividing
        assert abs(by_model[model]["statistic"]) == pytest.approx(z, abs=0.005)
        assert by_model[model]["p_value"] == pytest.approx(p, abs=0.002)
    # "The Holm procedure rejects the first and then the second hypothesis ... The third cannot be rejected"
    assert [by_model[m]["p_adjusted"] < 0.05 for m in ("C4.5+m+cf", "C4.5+m", "C4.5+cf")] == [True, True, False]


def test_demsar_wilcoxon_example():
    # Section 3.1.3, C4.5 vs C4.5+m: "R+ = 93 ... R- = 12", ties at zero split between both sums; the smaller
    # sum is at most the critical value 21 for N = 14, so the difference is significant at 0.05.
    result = stats.wilcoxon(DEMSAR_AUC[:, 1], DEMSAR_AUC[:, 0], zero_method="zsplit")
    assert (result.details["r_plus"], result.details["r_minus"], result.statistic) == (93.0, 12.0, 12.0)
    assert result.p_value < 0.05
    assert sps.wilcoxon(DEMSAR_AUC[:, 1], DEMSAR_AUC[:, 0], zero_method="zsplit").statistic == 12.0
